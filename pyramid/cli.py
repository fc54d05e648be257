"""Command line: ``python -m pyramid <command> ...``.

Commands:
    trace     run the pyramid encoder on one text and print the trace as one JSON object.
    train, train-adapler, train-trbert, ...   the trainers of :data:`pyramid.training.TRAINERS`
              (a sentiment head, with or without a selector in the loop; each learned selector).
    evaluate  accuracy, agreement and FLOPs speedup per regime, selector and retention on a data set.
    grid      train and evaluate every (model, selector, seed) of a grid file, one at a time or on Ray.
    saliency-report  over a data set: learned selectors' scores vs gradient x input; top-k salient kept.
    bench     measured vs FLOPs-predicted speedup (and training memory) of the pyramid.

Every option is checked when it is parsed (:mod:`pyramid.argtypes`); any error (bad value, empty text,
missing file, bad model, a selector that cannot run on the model) prints one ``error:`` line on
stderr and exits 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import argtypes as at
from .core.artifacts import REGIMES
from .core.loading import DEFAULT_MODEL, ModelLoadError
from .plan import plan_evaluation
from .core.schedule import Schedule, ScheduleError
from .core.selectors import SELECTORS

MAX_LAYERS = 256
"""Upper bound of --start-layer at parse time; the model's own depth is checked once it is loaded."""


class CliError(ValueError):
    """A problem with what the user asked for, reported as one ``error:`` line."""


def _read_text(args) -> str:
    if args.file is not None and args.text is not None:
        raise CliError("give either TEXT or --file, not both")
    if args.file is not None:
        if args.file == "-":
            return sys.stdin.read()
        with open(args.file, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    if args.text is None:
        raise CliError("give a TEXT argument or --file PATH")
    return args.text


def _check_start_layer(start_layer: int, num_layers: int) -> None:
    if not 1 <= start_layer <= num_layers - 1:
        raise CliError(f"--start-layer must be in 1..{num_layers - 1} for this {num_layers}-layer model "
                       f"(selection happens after layers s..L-1), got {start_layer}")


def _load(model: str):
    from .core.loading import load_encoder, quiet_transformers

    quiet_transformers()
    return load_encoder(model)


def _model(name: str):
    """The :class:`pyramid.api.Model` of ``--model`` (transformers kept quiet)."""
    from .api import Model

    return Model(_load(name))


def cmd_trace(args) -> int:
    """``trace``: print the trace JSON of one text, with the prediction of the same pass."""
    from .classifier import HeadLoadError

    text = _read_text(args)
    schedule = Schedule(retention=args.retention, start_layer=args.start_layer)
    model = _model(args.model)
    _check_start_layer(args.start_layer, model.num_layers)
    plan = model.plan(args.selector, args.regime)
    if not plan.runs:
        raise CliError(plan.refusal(model.name))
    selector = args.selector
    if args.tome_order != "positional":
        if args.selector != "tome":
            raise CliError("--tome-order applies to the tome selector only")
        selector = model.selector("tome", args.regime)  # a new instance; its plan says where it runs
        selector.order = args.tome_order
    try:
        trace = model.trace(text, selector, args.regime, schedule, seed=args.seed, max_length=args.max_length,
                            head=args.head, proportional_attention=args.proportional_attention)
    except HeadLoadError as exc:  # an explicit --head that does not load: the trace without a prediction
        print(f"note: no prediction: {exc}", file=sys.stderr)
        trace = model.trace(text, selector, args.regime, schedule, seed=args.seed, max_length=args.max_length,
                            head="none", proportional_attention=args.proportional_attention)
    if trace.truncated:
        print(f"note: the text has {trace.original_length} tokens; truncated to {trace.max_length}.", file=sys.stderr)
    if trace.prediction is None and trace.prediction_note:
        print(f"note: no prediction: {trace.prediction_note}", file=sys.stderr)
    json.dump(trace.to_json(hidden=args.hidden), sys.stdout)
    sys.stdout.write("\n")
    return 0


def cmd_train(args) -> int:
    """A ``train*`` command: build its settings from the options, train, print the JSON summary."""
    from .training.common import settings_from_args

    trainer = args.trainer
    if trainer.flush_denormals:  # before the first parallel op, so that torch's worker threads inherit it
        import torch

        torch.set_flush_denormal(True)
    settings = settings_from_args(trainer.settings, args,
                                  command=args.command_line if args.command_line is not None else _command_line(args))
    encoder = _load(args.model)
    if trainer.name != "train" and encoder.has_own_head:
        raise CliError(f"{trainer.name} trains weights for a project head (LoRA and a head on [CLS]) of an encoder; "
                       f"'{encoder.name}' is a fine-tuned classifier checkpoint with its own head, which it does not "
                       "take. Its Train-Select models: python -m pyramid train --model DIR --data FILE --selector S "
                       "(every fixed-schedule and merging selector)")
    print(json.dumps(trainer.run(settings, encoder, progress=not args.quiet)))
    return 0


def cmd_grid(args) -> int:
    """``grid``: train and evaluate every (model, selector, seed) of a grid file, then summarise the seeds."""
    from pathlib import Path

    from .grid import GridError, load_grid, print_summary, run_grid, write_summary
    from .analysis.results import RESULTS_DIR

    out = args.out or str(Path("grid-runs") / Path(args.grid).stem)
    grid = load_grid(args.grid, out)
    print(f"{len(grid.trials)} trials (models x selectors x seeds) in {out}, "
          + ("on Ray " + (args.ray if args.ray != "local" else "(a local Ray for this run)") if args.ray else
             "one at a time in this process"), flush=True)
    try:
        results, failures = run_grid(grid, use_ray=bool(args.ray), ray_address=None if args.ray in (None, "local")
                                     else args.ray, num_cpus=args.num_cpus,
                                     report=lambda line: print(line, flush=True), progress=False)
    except GridError as exc:
        raise CliError(str(exc)) from None
    if results:
        path, rows, diffs = write_summary(grid, results, args.results or str(RESULTS_DIR), _command_line(args),
                                          keep_others=None if args.results else out)
        print_summary(rows, diffs)
        print(f"wrote {path}" + ("" if args.results or path.parent == RESULTS_DIR else
                                 f" (the shipped results already hold {path.name} from elsewhere: not replaced; give "
                                 "--results to choose where it goes)"))
    if failures:
        print(f"{len(failures)} of {len(grid.trials)} trials failed (their error.txt under {out}/trials)", file=sys.stderr)
        return 1
    return 0


def _names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in SELECTORS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown selector(s) {', '.join(unknown) or repr(text)}; "
                                         f"choose from {', '.join(SELECTORS)}")
    return names


def _pairs(text: str) -> list[tuple[str, str]]:
    """``A:B,C:D`` -> ``[(A, B), (C, D)]``: selectors timed against baselines (``bench --pair``)."""
    pairs = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        parts = [x.strip() for x in item.split(":")]
        if len(parts) != 2 or not all(parts):
            raise argparse.ArgumentTypeError(f"--pair takes SELECTOR:BASELINE pairs separated by commas, got '{item}'")
        pairs.append(tuple(_names(",".join(parts))))
    if not pairs:
        raise argparse.ArgumentTypeError("--pair needs at least one SELECTOR:BASELINE pair")
    return pairs


def _print_rows(rows: list[dict], as_json: bool) -> None:
    if as_json:
        json.dump(rows, sys.stdout)
        sys.stdout.write("\n")
        return
    import pandas as pd

    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def _command_line(args) -> str:
    """The command as the user typed it (from the argv given to :func:`main`)."""
    import shlex

    return "python -m pyramid " + " ".join(shlex.quote(a) for a in args.argv)


def _regimes(regime: str) -> tuple[str, ...]:
    return REGIMES if regime == "both" else (regime,)


def cmd_evaluate(args) -> int:
    """``evaluate``: one row per (regime, selector, retention) on a labelled data set."""
    from .data import read_labelled
    from .analysis.evaluation import ROW_KEYS, evaluate_regimes

    regimes = _regimes(args.regime)
    model = _model(args.model)
    _check_start_layer(args.start_layer, model.num_layers)
    head = args.head or model.inference_head
    if "inference" in regimes and head is None:
        raise CliError(f"'{model.name}' has no classifier to evaluate: it is a plain encoder, not a fine-tuned "
                       "classifier checkpoint; give --head (a head trained on it)")
    plan = plan_evaluation(model, args.selectors, regimes, head)
    for p in plan.elsewhere:
        raise CliError(p.refusal(model.name))
    for p in plan.left_out:
        # --regime both: a selector with no Train-Select model installed keeps its inference rows
        if args.regime != "both" or p.regime == "inference":
            raise CliError(p.refusal(model.name))
        print(f"note: {p.refusal(model.name)}; its {p.regime} rows are left out", file=sys.stderr)
    labels = model.classifier(plan.first_head).labels if plan.first_head is not None else None
    data = read_labelled(args.data, args.text_column, args.label_column,
                         **({"label_names": labels} if labels else {})).head(args.limit)
    rows = []
    for run in plan.runs:
        rows += evaluate_regimes(model, data, run.selectors, args.retention, regimes=(run.regime,), head=run.head,
                                 start_layer=args.start_layer, batch_size=args.batch_size, seed=args.seed,
                                 max_length=args.max_length, progress=not args.quiet,
                                 proportional_attention=args.proportional_attention)
    if args.out:
        _write_rows(args.out, ROW_KEYS, rows, {
            "command": _command_line(args), "data": args.data, "regimes": list(regimes), "head": head,
            "model": model.name, "start_layer": args.start_layer, "limit": args.limit,
            "proportional_attention": args.proportional_attention, "n": len(data),
            "seed": args.seed, "labels": list(data.label_names),
        })
    # the terminal table leaves out the per-example bits (the JSON and the CSV keep them)
    _print_rows(rows if args.json else [{k: v for k, v in r.items() if k != "correct"} for r in rows], args.json)
    return 0


def cmd_saliency_report(args) -> int:
    """``saliency-report``: learned selectors' scores vs saliency (Spearman), and top-k salient kept per selector."""
    from .data import read_labelled
    from .analysis.saliency_eval import REPORT_KEYS, saliency_agreement

    model = _model(args.model)
    _check_start_layer(args.start_layer, model.num_layers)
    head = args.head or model.inference_head
    if head is None:
        raise CliError(f"'{model.name}' has no classifier to explain: it is a plain encoder, not a fine-tuned "
                       "classifier checkpoint; give --head (a head trained on it)")
    classifier = model.classifier(head)
    plan = plan_evaluation(model, args.selectors or model.selectors("inference"), ("inference",), classifier.name)
    for p in plan.left_out:
        raise CliError(p.refusal(model.name))
    for p in plan.elsewhere:
        print(f"note: {p.selector}: {p.reason}: left out", file=sys.stderr)
    selectors = [model.selector(n, "inference") for run in plan.runs for n in run.selectors]
    data = read_labelled(args.data, args.text_column, args.label_column, classifier.labels).head(args.limit)
    if args.faithfulness:
        return _faithfulness_report(args, model, classifier, head, [s.name for s in selectors], data)
    report = saliency_agreement(classifier, data, selectors, retention=args.retention, start_layer=args.start_layer,
                                k=args.k, batch_size=args.batch_size, progress=not args.quiet)
    rows = report.rows()
    if args.out:
        _write_rows(args.out, REPORT_KEYS, rows, {"command": _command_line(args), "data": args.data,
                                                  "head": classifier.name, "retention": args.retention, "k": args.k,
                                                  "n": len(data)})
    if args.json:
        _print_rows(rows, True)
        return 0
    import pandas as pd

    table = pd.DataFrame(rows)
    print(f"{len(data)} examples; explained class: the gold label; fixed-length selectors at retention "
          f"{args.retention}, start layer {args.start_layer}.")
    spear = table[table.kind == "score_spearman"]
    if len(spear):
        print("\nMean Spearman correlation between each learned selector's token scores (full-length states) and "
              "gradient x input saliency:")
        print(spear[["selector", "layer", "value"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nMean share of the top-{args.k} salient tokens still kept after each layer "
          f"({report.n_topk} texts with at least {args.k + 2} tokens):")
    wide = table[table.kind != "score_spearman"].pivot(index="selector", columns="layer", values="value")
    wide.columns = [f"after L{c}" for c in wide.columns]
    print(wide.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


def _faithfulness_report(args, model, classifier, head: str, names: list[str], data) -> int:
    """``saliency-report --faithfulness RHOS``: ERASER's comprehensiveness and sufficiency of every selector's kept
    set and of the same-size references, per retention (:mod:`pyramid.analysis.faithfulness`)."""

    from .analysis.faithfulness import FAITHFULNESS_KEYS, dataset_faithfulness

    ids = [model.tokenize(text, args.max_length).input_ids for text in data.texts]
    schedules = {}

    def trace_fn(input_ids, name, rho):
        sched = schedules.setdefault(rho, Schedule(retention=rho, start_layer=args.start_layer))
        return model.trace(input_ids, name, "inference", sched, head=head)  # "own" for a checkpoint

    rows = dataset_faithfulness(classifier, ids, trace_fn, names, args.faithfulness, ig_steps=args.ig_steps,
                                progress=not args.quiet)
    if args.out:
        _write_rows(args.out, FAITHFULNESS_KEYS, rows, {"command": _command_line(args), "data": args.data,
                                                        "head": classifier.name, "retentions": args.faithfulness,
                                                        "start_layer": args.start_layer, "ig_steps": args.ig_steps,
                                                        "n": len(data)})
    if args.json:
        _print_rows(rows, True)
        return 0
    print(f"{len(data)} texts; the class is the full-length prediction; sets: each selector's tokens kept to the last "
          "layer, and the same-size top-k of gradient x input, integrated gradients and a random draw (docs/methods.md "
          "11). Points of probability, 95% bootstrap intervals; vs random: the paired difference.")
    for r in rows:
        line = (f"  rho {r['retention']:.2f} {r['selector']:28s} k {r['mean_size']:5.1f}  comprehensiveness "
                f"{100 * r['comprehensiveness']:+6.1f} [{100 * r['comp_low']:+6.1f}, {100 * r['comp_high']:+6.1f}]  "
                f"sufficiency {100 * r['sufficiency']:+6.1f} [{100 * r['suff_low']:+6.1f}, {100 * r['suff_high']:+6.1f}]")
        if r["comp_vs_random"] != "":
            line += (f"  vs random: comp {100 * r['comp_vs_random']:+5.1f} [{100 * r['comp_vs_random_low']:+5.1f}, "
                     f"{100 * r['comp_vs_random_high']:+5.1f}], suff {100 * r['suff_vs_random']:+5.1f} "
                     f"[{100 * r['suff_vs_random_low']:+5.1f}, {100 * r['suff_vs_random_high']:+5.1f}]")
        print(line)
    return 0


def cmd_bench(args) -> int:
    """``bench``: measured vs FLOPs-predicted speedup; ``--memory`` adds training-step peak memory."""
    from .analysis.bench import CONFIGS, run_bench, run_memory

    if args.model:
        args.config = args.config + [args.model]
    for c in args.config + (args.memory_config if args.memory else []):
        if c not in CONFIGS and c != args.model:
            raise CliError(f"--config and --memory-config take {', '.join(CONFIGS)} (or use --model PATH), got '{c}'")
    if args.pair and args.memory:
        raise CliError("--pair times selections only; run --memory without it")
    names = [n for pair in args.pair for n in pair] if args.pair else args.selectors
    variable = [n for n in dict.fromkeys(names) if not SELECTORS[n].fixed_length]
    if variable:
        raise CliError(f"bench times fixed-length selectors against a schedule; {', '.join(variable)} sets its own "
                       "lengths per text (see the wall_s column of `evaluate` for its measured time)")
    for r in args.retention:
        Schedule(retention=r, start_layer=args.start_layer)
    from .core.loading import quiet_transformers

    quiet_transformers()
    if args.pair:
        from .analysis.bench import run_selection_pairs

        rows = run_selection_pairs(args.pair, args.config, args.seq_len, args.batch_size, args.retention,
                                   args.start_layer, args.repeats, progress=not args.quiet)
        if args.out:
            _write_with_meta(args.out, {"pairs": rows}, {"command": _command_line(args)})
        _print_rows(rows, args.json)
        return 0
    rows = run_bench(args.config, args.seq_len, args.batch_size, args.selectors, args.retention,
                     args.start_layer, args.repeats, progress=not args.quiet)
    mem = []
    if args.memory:
        mem = run_memory(args.memory_config, args.memory_seq_len, args.memory_batch_size, args.selectors,
                         args.retention, args.start_layer)
    if args.out:
        _write_with_meta(args.out, {"speed": rows, "memory": mem}, {"command": _command_line(args)})
    if args.json:
        json.dump({"speed": rows, "memory": mem} if args.memory else rows, sys.stdout)
        sys.stdout.write("\n")
        return 0
    _print_rows(rows, False)
    if mem:
        print()
        _print_rows(mem, False)
    return 0


def _write_with_meta(path: str, payload, meta: dict) -> None:
    """Write ``payload`` as JSON to ``path`` and ``meta`` (plus date and machine) to ``path.meta.json``."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1)
    _write_meta(path, meta)


def _write_rows(path: str, keys, rows: list[dict], meta: dict) -> None:
    """A result file: ``rows`` as CSV with the columns ``keys``, and ``path.meta.json`` (:func:`_write_meta`)."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(keys))
        writer.writeheader()
        writer.writerows(rows)
    _write_meta(path, meta)


def _write_meta(path: str, meta: dict) -> None:
    """``path.meta.json``: how a result file was made (command, date, machine)."""
    import datetime
    import os
    import platform

    import torch

    meta = {**meta, "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}"}
    with open(path + ".meta.json", "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: <message>`` on stderr, exit 2 (no usage dump)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"error: {message}\n")


def _model_option(p) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"local folder or hub id of a BERT-family encoder (default {DEFAULT_MODEL})")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m pyramid``: one function per subcommand below."""
    parser = _Parser(prog="python -m pyramid", description="Pyramid Lens: token reduction in BERT encoders.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_trace, _add_trainers, _add_grid, _add_evaluate, _add_saliency_report, _add_bench):
        add(sub)
    return parser


def _add_trace(sub) -> None:
    """The ``trace`` subcommand's options."""
    p = sub.add_parser("trace", help="run the pyramid on one text and print its trace as JSON")
    p.add_argument("text", nargs="?", help="the text (or use --file)")
    p.add_argument("--file", type=at.utf8_text_file, help="read the text from this UTF-8 file ('-' for stdin)")
    p.add_argument("--selector", default="coreset", choices=list(SELECTORS), help="token selector (default coreset)")
    p.add_argument("--regime", default="inference", choices=list(REGIMES),
                   help="inference: the model's full-length classifier (sst2-lora on the default model, a checkpoint's "
                        "own head); train-select: the model fine-tuned with the selector in the loop (default inference)")
    p.add_argument("--retention", type=at.retention, default=0.5, help="final retention ratio in (0, 1] (default 0.5)")
    p.add_argument("--start-layer", type=at.int_between(1, MAX_LAYERS, "--start-layer"), default=1,
                   help="first layer after whose output selection happens, 1..L-1 (default 1)")
    _model_option(p)
    p.add_argument("--seed", type=at.seed, default=0, help="seed of the random selector, 0..2^32-1 (default 0)")
    p.add_argument("--max-length", type=at.max_length, default=None,
                   help="token limit, [CLS]/[SEP] included, at least 3 (default: the model's, 512)")
    p.add_argument("--hidden", action="store_true", help="include every layer's hidden states")
    p.add_argument("--proportional-attention", type=at.boolean, default=True,
                   help="merging selectors (tome, coreset-pool): add log(size) to later attention logits (default true)")
    p.add_argument("--tome-order", default="positional", choices=["positional", "authors"],
                   help="tome: the token order its alternating split follows after a merge: the text's (positional, "
                        "the default) or ToMe's [unmerged A, all B] (authors); docs/methods.md 10.2")
    p.add_argument("--head", default=None,
                   help="classifier for the prediction: 'own' (a fine-tuned checkpoint's own head), a shipped head's "
                        "name or folder, or 'none' (trace the model as loaded, no prediction); default: the "
                        "selector's model in its regime, else the checkpoint's own head, else sst2-lora on the "
                        "default model")
    p.set_defaults(func=cmd_trace)


def _add_trainers(sub) -> None:
    """One subcommand per trainer (``train``, ``train-adapler``...), its options from the trainer's settings."""
    from .training import TRAINERS
    from .training.common import add_settings_arguments

    for trainer in TRAINERS:
        p = sub.add_parser(trainer.name, help=trainer.help)
        add_settings_arguments(p, trainer.settings)
        _model_option(p)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
        p.set_defaults(func=cmd_train, trainer=trainer)


def _add_grid(sub) -> None:
    """The ``grid`` subcommand's options."""
    p = sub.add_parser("grid", help="train and evaluate every (model, selector, seed) of a grid file, here or on Ray")
    p.add_argument("grid", type=at.existing_file, help="the grid file (TOML: models, selectors, seeds, train, dev, "
                   "and any option of train; see pyramid/grid.py)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the trials as Ray tasks: alone, on a local Ray started for the run; with an address "
                        "(auto, HOST:PORT, ray://HOST:PORT), on that cluster (default: one at a time in this process)")
    p.add_argument("--num-cpus", type=at.int_at_least(1, "--num-cpus"), default=None,
                   help="CPUs of the local Ray started by --ray (default: all)")
    p.add_argument("--out", default=None, help="folder of the trials (default grid-runs/GRID-NAME); a trial done "
                   "there is not run again")
    p.add_argument("--results", default=None, help="folder of the seed summary seeds__DATASET.json (default: the "
                   "shipped results the Benchmarks page reads, unless a summary of that data set made elsewhere is "
                   "there: then OUT)")
    p.set_defaults(func=cmd_grid)


def _add_evaluate(sub) -> None:
    """The ``evaluate`` subcommand's options."""
    p = sub.add_parser("evaluate", help="accuracy / agreement / FLOPs speedup per regime, selector and retention")
    p.add_argument("--data", required=True, type=at.existing_file, help="labelled TSV or CSV (SST-2 dev, the IMDB reviews...)")
    p.add_argument("--text-column", default=None, help="text column (guessed: sentence, text, review...)")
    p.add_argument("--label-column", default=None, help="label column (guessed: label, sentiment...)")
    p.add_argument("--selectors", type=_names, default=["coreset", "attention", "random", "first-k"],
                   help="comma-separated selectors (default coreset,attention,random,first-k)")
    p.add_argument("--retention", type=at.retention_list, default=[1.0, 0.5, 0.3, 0.2, 0.1],
                   help="comma-separated final retention ratios (default 1.0,0.5,0.3,0.2,0.1)")
    p.add_argument("--regime", default="both", choices=list(REGIMES) + ["both"],
                   help="inference: every selector on --head; train-select: each on the model fine-tuned with it; "
                        "both (default; a selector with no Train-Select model installed keeps its inference rows, with a note)")
    p.add_argument("--start-layer", type=at.int_between(1, MAX_LAYERS, "--start-layer"), default=1)
    p.add_argument("--head", default=None, help="the inference-only regime's classifier: 'own' (a fine-tuned "
                   "checkpoint's own head) or a head's name or folder (default: the checkpoint's own head, else "
                   "sst2-lora on the default model)")
    p.add_argument("--limit", type=at.int_at_least(1, "--limit"), default=None, help="only the first N rows (N >= 1)")
    p.add_argument("--batch-size", type=at.int_at_least(1, "--batch-size"), default=16)
    p.add_argument("--max-length", type=at.max_length, default=None, help="token limit (default: the model's)")
    p.add_argument("--seed", type=at.seed, default=0, help="seed of the random selector")
    _model_option(p)
    p.add_argument("--out", default=None, help="also write the rows to this CSV (and OUT.meta.json)")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--proportional-attention", type=at.boolean, default=True,
                   help="merging selectors (tome, coreset-pool): add log(size) to later attention logits (default true)")
    p.set_defaults(func=cmd_evaluate)


def _add_saliency_report(sub) -> None:
    """The ``saliency-report`` subcommand's options."""
    p = sub.add_parser("saliency-report",
                       help="over a data set: learned selectors vs gradient x input, and top-k salient tokens kept")
    p.add_argument("--data", default="../shared/data/sst2/dev.tsv", type=at.existing_file,
                   help="labelled TSV or CSV (default ../shared/data/sst2/dev.tsv)")
    p.add_argument("--text-column", default=None)
    p.add_argument("--label-column", default=None)
    p.add_argument("--selectors", type=_names, default=None,
                   help="comma-separated selectors (default: every one that runs on the model and head)")
    p.add_argument("--retention", type=at.retention, default=0.3,
                   help="final retention of the fixed-length selectors (default 0.3)")
    p.add_argument("--start-layer", type=at.int_between(1, MAX_LAYERS, "--start-layer"), default=1)
    p.add_argument("--k", type=at.int_at_least(1, "--k"), default=5, help="top-k salient tokens to follow (default 5)")
    p.add_argument("--head", default=None, help="classifier: 'own', a head's name or folder (default: the model's "
                   "own classifier, sst2-lora on the default model)")
    p.add_argument("--limit", type=at.int_at_least(1, "--limit"), default=None, help="only the first N rows")
    p.add_argument("--batch-size", type=at.int_at_least(1, "--batch-size"), default=16)
    p.add_argument("--faithfulness", type=at.retention_list, default=None, metavar="RHOS",
                   help="instead: ERASER's comprehensiveness and sufficiency of each selector's kept set at these "
                        "comma-separated retentions, beside same-size gradient x input, integrated gradients and "
                        "random sets (docs/methods.md 12)")
    p.add_argument("--ig-steps", type=at.int_at_least(2, "--ig-steps"), default=20,
                   help="integrated gradients steps of its reference set (--faithfulness; default 20)")
    p.add_argument("--max-length", type=at.max_length, default=None,
                   help="token limit with --faithfulness (default: the model's, 512)")
    _model_option(p)
    p.add_argument("--out", default=None, help="also write the rows to this CSV (and OUT.meta.json)")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_saliency_report)


def _add_bench(sub) -> None:
    """The ``bench`` subcommand's options."""
    p = sub.add_parser("bench", help="measured vs FLOPs-predicted speedup of the pyramid")
    p.add_argument("--seq-len", type=at.int_list_at_least(3, "sequence length"), default=[128, 512],
                   help="comma-separated sequence lengths, each >= 3 (default 128,512)")
    p.add_argument("--batch-size", type=at.int_list_at_least(1, "batch size"), default=[1, 8],
                   help="comma-separated batch sizes (default 1,8)")
    p.add_argument("--retention", type=at.retention_list, default=[0.3], help="comma-separated final retention ratios (default 0.3)")
    p.add_argument("--start-layer", type=at.int_between(1, MAX_LAYERS, "--start-layer"), default=1)
    p.add_argument("--selectors", type=_names, default=["coreset", "attention", "random", "first-k"])
    p.add_argument("--config", type=lambda t: [c.strip() for c in t.split(",") if c.strip()],
                   default=["default", "bert-base"],
                   help="default (MiniLM-L6), bert-base (12-layer, random weights), or both (default)")
    p.add_argument("--model", default=None, help="also time this model (a local folder or hub id)")
    p.add_argument("--repeats", type=at.int_at_least(1, "--repeats"), default=5,
                   help="timed runs of full and pyramid per setting, alternating, after one warm-up (median; default 5)")
    p.add_argument("--pair", type=_pairs, default=None,
                   help="SELECTOR:BASELINE[,...]: instead of the speedup rows (--selectors is then unused), time each "
                        "selector's selection against the baseline's in one alternating run (selection_ratio; e.g. "
                        "coreset-pool:coreset); --out then writes {pairs}")
    p.add_argument("--memory", action="store_true", help="also measure one training step's peak memory")
    p.add_argument("--memory-config", type=lambda t: [c.strip() for c in t.split(",") if c.strip()], default=["default"],
                   help="configs of the memory measurement (default: default; bert-base needs ~10 GB)")
    p.add_argument("--memory-seq-len", type=at.int_at_least(3, "--memory-seq-len"), default=512)
    p.add_argument("--memory-batch-size", type=at.int_at_least(1, "--memory-batch-size"), default=32)
    p.add_argument("--out", default=None, help="also write {speed, memory} rows ({pairs} with --pair) to this JSON file (and OUT.meta.json)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON (with --memory: {speed, memory})")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_bench)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0, or 2 after one ``error:`` line)."""
    from .tokenization import EmptyTextError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or an error line already printed (2)
        return int(exc.code or 0)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except (EmptyTextError, ModelLoadError, ScheduleError, ValueError, KeyError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {' '.join(str(msg).split())}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback (PYRAMID_DEBUG=1 shows it)
        import os

        if os.environ.get("PYRAMID_DEBUG"):
            raise
        print(f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())} "
              "(set PYRAMID_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2
