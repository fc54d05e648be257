"""Command line: ``python -m pyramid <command> ...``.

Commands:
    trace     run the pyramid encoder on one text and print the trace as one JSON object.
    train     fine-tune a LoRA sentiment head (optionally with the pyramid in the loop).
    evaluate  accuracy, agreement and FLOPs speedup per selector and retention on a data set.
    train-adapler  train AdapLeR's contribution predictors and thresholds for a head.
    train-trbert   train TR-BERT's policy networks with REINFORCE for a head.
    train-token-dropping  fit an MLM head and build Token Dropping's importance table.
    saliency-report  over a data set: AdapLeR predictors vs gradient x input; top-k salient kept.
    bench     measured vs FLOPs-predicted speedup (and training memory) of the pyramid.

Errors (empty text, missing file, bad model, bad schedule) print one line to stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from .loading import DEFAULT_MODEL, ModelLoadError
from .schedule import Schedule, ScheduleError
from .selectors import SELECTORS


def _quiet_transformers() -> None:
    """Keep stdout/stderr clean for scripts: no progress bars or advisory warnings from transformers."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _read_text(args) -> str:
    if args.file is not None and args.text is not None:
        raise ValueError("give either TEXT or --file, not both")
    if args.file is not None:
        if args.file == "-":
            return sys.stdin.read()
        with open(args.file, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    if args.text is None:
        raise ValueError("give a TEXT argument or --file PATH")
    return args.text


def cmd_trace(args) -> int:
    """``trace``: print the trace JSON of one text."""
    from .loading import load_encoder
    from .trace import trace_text

    text = _read_text(args)
    schedule = Schedule(retention=args.retention, start_layer=args.start_layer)
    _quiet_transformers()
    encoder = load_encoder(args.model)
    schedule.validate(encoder.num_layers)
    from .classifier import encoder_for_selector
    from .selectors import get_selector

    selector = get_selector(args.selector)
    # A learned selector (AdapLeR) runs on the fine-tuned encoder its predictors were trained on.
    trace = trace_text(encoder_for_selector(selector, encoder), text, selector, schedule, seed=args.seed,
                       max_length=args.max_length)
    if trace.truncated:
        print(f"note: the text has {trace.original_length} tokens; truncated to {trace.max_length}.",
              file=sys.stderr)
    result = trace.to_json(hidden=args.hidden)
    if args.head and args.head.lower() != "none":
        from .classifier import HeadLoadError, load_classifier, predict_ids

        try:
            classifier = load_classifier(args.head, encoder)
        except HeadLoadError as exc:
            print(f"note: no prediction: {exc}", file=sys.stderr)
            result["prediction"] = None
        else:
            sel_head = getattr(selector, "head", None)
            if sel_head is not None and sel_head != classifier.config.name:
                print(f"note: no prediction: the {selector.name} predictors belong to the head '{sel_head}', "
                      f"not '{classifier.config.name}'", file=sys.stderr)
                result["prediction"] = None
            else:
                result["prediction"] = predict_ids(classifier, trace.input_ids, selector, schedule,
                                                   seed=args.seed).to_json()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


DEFAULT_TRAIN = "../shared/data/sst2/train.tsv"
DEFAULT_DEV = "../shared/data/sst2/dev.tsv"


def cmd_train(args) -> int:
    """``train``: fine-tune LoRA adapters and a head; write the artifact and its model card."""
    from .classifier import DEFAULT_HEAD, HEADS_DIR, PYRAMID_HEAD
    from .loading import load_encoder
    from .training import TrainSettings, train_classifier

    name = args.name or (PYRAMID_HEAD if args.selector else DEFAULT_HEAD)
    out = args.out or str(HEADS_DIR / name)
    if args.selector and args.selector not in SELECTORS:
        raise ValueError(f"unknown selector '{args.selector}'")
    Schedule(retention=args.retention, start_layer=args.start_layer)
    _quiet_transformers()
    encoder = load_encoder(args.model)
    settings = TrainSettings(
        data=args.data, dev=args.dev or None, out=out, name=name, selector=args.selector,
        retention=args.retention, start_layer=args.start_layer, epochs=args.epochs, limit=args.limit,
        batch_size=args.batch_size, lr=args.lr, head_lr=args.head_lr, lora_r=args.lora_r,
        lora_alpha=args.lora_alpha, max_length=args.max_length, seed=args.seed,
        command=_command_line(args) if args.command_line is None else args.command_line,
        retention_range=_range(args.retention_range) if args.retention_range else None,
        sandwich=args.sandwich, init_head=args.init_head,
    )
    classifier = train_classifier(encoder, settings, progress=not args.quiet)
    print(json.dumps({"head": name, "out": out, "metrics": classifier.config.metrics}))
    return 0


def cmd_train_adapler(args) -> int:
    """``train-adapler``: distil AdapLeR's contribution predictors and thresholds for a head."""
    from .adapler import ADAPLER_DIR, DEFAULT_ADAPLER, AdaplerSettings, train_adapler
    from .classifier import load_classifier
    from .loading import load_encoder

    name = args.name or DEFAULT_ADAPLER
    out = args.out or str(ADAPLER_DIR / name)
    if args.epochs < 1:
        raise ValueError("--epochs must be at least 1")
    _quiet_transformers()
    encoder = load_encoder(args.model)
    classifier = load_classifier(args.head, encoder)
    settings = AdaplerSettings(
        data=args.data, dev=args.dev or None, out=out, name=name, head=classifier.config.name, epochs=args.epochs,
        limit=args.limit if args.limit and args.limit > 0 else None, batch_size=args.batch_size,
        max_length=args.max_length, lr=args.lr, eta_lr=args.eta_lr, gamma=args.gamma, phi=args.phi,
        seed=args.seed, command=_command_line(args),
    )
    _, config = train_adapler(classifier, settings, progress=not args.quiet)
    print(json.dumps({"adapler": name, "out": out, "eta": config.training["eta"], "metrics": config.metrics}))
    return 0


def cmd_train_trbert(args) -> int:
    """``train-trbert``: train TR-BERT's policy networks with REINFORCE for a head."""
    from .classifier import load_classifier
    from .loading import load_encoder
    from .trbert import DEFAULT_TRBERT, TRBERT_DIR, TrbertSettings, train_trbert

    name = args.name or DEFAULT_TRBERT
    out = args.out or str(TRBERT_DIR / name)
    if args.epochs < 1 or args.samples < 2:
        raise ValueError("--epochs must be at least 1 and --samples at least 2 (the baseline is their mean)")
    if args.alpha < 0:
        raise ValueError("--alpha must be >= 0")
    _quiet_transformers()
    encoder = load_encoder(args.model)
    classifier = load_classifier(args.head, encoder)
    settings = TrbertSettings(
        data=args.data, dev=args.dev or None, out=out, name=name, head=classifier.config.name, alpha=args.alpha,
        epochs=args.epochs, limit=args.limit if args.limit and args.limit > 0 else None, batch_size=args.batch_size,
        samples=args.samples, max_length=args.max_length, lr=args.lr, guide_rate=args.guide_rate, seed=args.seed,
        command=_command_line(args),
    )
    _, config = train_trbert(classifier, settings, progress=not args.quiet)
    print(json.dumps({"trbert": name, "out": out, "metrics": config.metrics}))
    return 0


def cmd_train_token_dropping(args) -> int:
    """``train-token-dropping``: fit an MLM head on the frozen encoder, then build the importance table."""
    from .loading import load_encoder
    from .token_dropping import DEFAULT_TOKEN_DROPPING, TOKEN_DROPPING_DIR, TokenDroppingSettings, train_token_dropping

    name = args.name or DEFAULT_TOKEN_DROPPING
    out = args.out or str(TOKEN_DROPPING_DIR / name)
    data = [d.strip() for d in args.data.split(",") if d.strip()]
    if not data:
        raise ValueError("--data needs at least one file")
    if args.head_steps < 1:
        raise ValueError("--head-steps must be at least 1")
    _quiet_transformers()
    encoder = load_encoder(args.model)
    settings = TokenDroppingSettings(
        data=data, out=out, name=name, limit=args.limit if args.limit and args.limit > 0 else None,
        max_length=args.max_length, head_steps=args.head_steps, batch_size=args.batch_size, lr=args.lr,
        table_passes=args.table_passes, seed=args.seed, command=_command_line(args),
    )
    _, config = train_token_dropping(encoder, settings, progress=not args.quiet)
    print(json.dumps({"token_dropping": name, "out": out, "metrics": config.metrics}))
    return 0


def _range(text: str) -> tuple[float, float]:
    vals = _floats(text)
    if len(vals) != 2 or not 0 < vals[0] <= vals[1] <= 1:
        raise ValueError(f"--retention-range takes LO,HI with 0 < LO <= HI <= 1, got '{text}'")
    return vals[0], vals[1]


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got '{text}'") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got '{text}'") from None


def _names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in SELECTORS]
    if unknown or not names:
        raise ValueError(f"unknown selector(s) {unknown or text!r}; choose from {', '.join(SELECTORS)}")
    return names


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


def cmd_evaluate(args) -> int:
    """``evaluate``: one row per (selector, retention) on a labelled data set."""
    import csv

    from .classifier import load_classifier
    from .data import read_labelled
    from .evaluation import ROW_KEYS, evaluate
    from .loading import load_encoder

    selectors = _names(args.selectors)
    retentions = _floats(args.retention)
    for r in retentions:
        Schedule(retention=r, start_layer=args.start_layer)
    _quiet_transformers()
    encoder = load_encoder(args.model)
    classifier = load_classifier(args.head, encoder)
    data = read_labelled(args.data, args.text_column, args.label_column, classifier.labels).head(args.limit)
    rows = evaluate(classifier, data, selectors, retentions, start_layer=args.start_layer,
                    batch_size=args.batch_size, seed=args.seed, progress=not args.quiet)
    if args.out:
        with open(args.out, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(ROW_KEYS))
            writer.writeheader()
            writer.writerows(rows)
        _write_meta(args.out, {
            "command": _command_line(args), "data": args.data, "head": classifier.config.name,
            "model": encoder.name, "start_layer": args.start_layer, "limit": args.limit, "n": len(data),
            "seed": args.seed,
        })
    _print_rows(rows, args.json)
    return 0


def cmd_saliency_report(args) -> int:
    """``saliency-report``: CP-vs-saliency Spearman per layer, and top-k salient tokens kept per selector."""
    import csv

    from .classifier import load_classifier
    from .data import read_labelled
    from .loading import load_encoder
    from .saliency_eval import REPORT_KEYS, saliency_agreement
    from .selectors import get_selector, unavailable_reason

    selectors = _names(args.selectors)
    Schedule(retention=args.retention, start_layer=args.start_layer)
    if args.k < 1:
        raise ValueError("--k must be at least 1")
    _quiet_transformers()
    encoder = load_encoder(args.model)
    classifier = load_classifier(args.head, encoder)
    data = read_labelled(args.data, args.text_column, args.label_column, classifier.labels).head(args.limit)
    predictors = None
    if unavailable_reason("adapler", encoder.name) is None:
        adapler = get_selector("adapler")
        if adapler.head == classifier.config.name:
            predictors = adapler.predictors
    if predictors is None:
        print("note: no AdapLeR predictors for this head: no Spearman rows", file=sys.stderr)
        selectors = [s for s in selectors if s != "adapler"]
    report = saliency_agreement(classifier, data, selectors, retention=args.retention, start_layer=args.start_layer,
                                k=args.k, predictors=predictors, batch_size=args.batch_size, progress=not args.quiet)
    rows = report.rows()
    if args.out:
        with open(args.out, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(REPORT_KEYS))
            writer.writeheader()
            writer.writerows(rows)
        _write_meta(args.out, {"command": _command_line(args), "data": args.data, "head": classifier.config.name,
                               "retention": args.retention, "k": args.k, "n": len(data)})
    if args.json:
        _print_rows(rows, True)
        return 0
    import pandas as pd

    table = pd.DataFrame(rows)
    print(f"{len(data)} examples; explained class: the gold label; fixed-length selectors at retention "
          f"{args.retention}, start layer {args.start_layer}.")
    if report.cp_spearman:
        print("\nMean Spearman correlation, AdapLeR CP_l (scores the tokens entering layer l+1) vs gradient x input:")
        print(table[table.kind == "cp_spearman"][["layer", "value"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nMean share of the top-{args.k} salient tokens still kept after each layer "
          f"({report.n_topk} texts with at least {args.k + 2} tokens):")
    wide = table[table.kind != "cp_spearman"].pivot(index="selector", columns="layer", values="value")
    wide.columns = [f"after L{c}" for c in wide.columns]
    print(wide.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_bench(args) -> int:
    """``bench``: measured vs FLOPs-predicted speedup; ``--memory`` adds training-step peak memory."""
    from .bench import run_bench, run_memory

    configs = [c.strip() for c in args.config.split(",") if c.strip()]
    if any(c not in ("default", "bert-base") for c in configs) or not configs:
        raise ValueError(f"--config takes default, bert-base or both (comma-separated), got '{args.config}'")
    selectors = _names(args.selectors)
    variable = [n for n in selectors if not SELECTORS[n].fixed_length]
    if variable:
        raise ValueError(f"bench times fixed-length selectors against a schedule; {', '.join(variable)} sets its own "
                         "lengths per text (see the wall_s column of `evaluate` for its measured time)")
    retentions = _floats(args.retention)
    for r in retentions:
        Schedule(retention=r, start_layer=args.start_layer)
    _quiet_transformers()
    say = (lambda row: print(json.dumps(row), file=sys.stderr)) if not args.quiet else None
    rows = run_bench(configs, _ints(args.seq_len), _ints(args.batch_size), selectors, retentions,
                     args.start_layer, args.repeats, progress=say)
    mem = []
    if args.memory:
        mem_configs = [c.strip() for c in args.memory_config.split(",") if c.strip()]
        if any(c not in ("default", "bert-base") for c in mem_configs) or not mem_configs:
            raise ValueError(f"--memory-config takes default, bert-base or both, got '{args.memory_config}'")
        mem = run_memory(mem_configs, args.memory_seq_len, args.memory_batch_size, selectors, retentions,
                         args.start_layer, progress=say)
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m pyramid``."""
    parser = argparse.ArgumentParser(prog="python -m pyramid", description="Pyramid Lens: token reduction in BERT encoders.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("trace", help="run the pyramid on one text and print its trace as JSON")
    p.add_argument("text", nargs="?", help="the text (or use --file)")
    p.add_argument("--file", help="read the text from this file ('-' for stdin)")
    p.add_argument("--selector", default="coreset", choices=sorted(SELECTORS), help="token selector (default coreset)")
    p.add_argument("--retention", type=float, default=0.5, help="final retention ratio in (0, 1] (default 0.5)")
    p.add_argument("--start-layer", type=int, default=1, help="first layer after whose output selection happens (default 1)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"local folder or hub id of a BERT-family encoder (default {DEFAULT_MODEL})")
    p.add_argument("--seed", type=int, default=0, help="seed of the random selector (default 0)")
    p.add_argument("--max-length", type=int, default=None, help="token limit, [CLS]/[SEP] included (default: the model's, 512)")
    p.add_argument("--hidden", action="store_true", help="include every layer's hidden states")
    p.add_argument("--head", default="sst2-lora",
                   help="classifier head for the prediction: shipped name, folder, or 'none' (default sst2-lora)")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("train", help="fine-tune a LoRA sentiment head on SST-2 (or any labelled TSV/CSV)")
    p.add_argument("--data", default=DEFAULT_TRAIN, help=f"training file (default {DEFAULT_TRAIN})")
    p.add_argument("--dev", default=DEFAULT_DEV, help=f"evaluation file ('' for none; default {DEFAULT_DEV})")
    p.add_argument("--name", default=None, help="artifact name (default sst2-lora, or sst2-lora-pyramid with --selector)")
    p.add_argument("--out", default=None, help="artifact folder (default assets/heads/NAME)")
    p.add_argument("--selector", default=None, help="fine-tune with this selector in the loop (e.g. coreset)")
    p.add_argument("--retention", type=float, default=0.3, help="schedule used with --selector (default 0.3)")
    p.add_argument("--start-layer", type=int, default=1, help="schedule start layer with --selector (default 1)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the training rows (default 1)")
    p.add_argument("--limit", type=int, default=None, help="use only this many shuffled training rows")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4, help="LoRA learning rate (default 5e-4)")
    p.add_argument("--head-lr", type=float, default=1e-3, help="head learning rate (default 1e-3)")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128, help="truncation of training texts in tokens (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=DEFAULT_MODEL, help="base encoder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--retention-range", default=None,
                   help="LO,HI: with --selector, draw each pass's retention from this range (LengthDrop) "
                        "so that one model serves every retention in it")
    p.add_argument("--sandwich", type=int, default=2,
                   help="with --retention-range: LengthDrop's sandwich rule with N random sub-models plus the "
                        "full and the smallest one, distilled from the full model (default 2; -1 = one pass "
                        "per step at a random retention)")
    p.add_argument("--init-head", default=None,
                   help="start from this trained head's LoRA and head weights (shipped name or folder)")
    p.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-adapler", help="train AdapLeR's contribution predictors and thresholds for a head")
    p.add_argument("--data", default=DEFAULT_TRAIN, help=f"training file for the saliency targets (default {DEFAULT_TRAIN})")
    p.add_argument("--dev", default=DEFAULT_DEV, help=f"evaluation file ('' for none; default {DEFAULT_DEV})")
    p.add_argument("--head", default="sst2-lora", help="the frozen fine-tuned head (default sst2-lora)")
    p.add_argument("--name", default=None, help="artifact name (default sst2-lora-adapler)")
    p.add_argument("--out", default=None, help="artifact folder (default assets/adapler/NAME)")
    p.add_argument("--epochs", type=int, default=3, help="epochs; the soft-removal temperature rises each epoch (default 3)")
    p.add_argument("--limit", type=int, default=8000, help="shuffled training rows used (default 8000; 0 = all)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64, help="truncation of training texts in tokens (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="contribution predictors' learning rate (default 1e-3)")
    p.add_argument("--eta-lr", type=float, default=5e-3,
                   help="thresholds' learning rate (default 5e-3; the paper's 5e-4 barely moves eta in 750 steps)")
    p.add_argument("--gamma", type=float, default=0.005, help="KL weight gamma (default 0.005, the paper's SST-2 value)")
    p.add_argument("--phi", type=float, default=0.005,
                   help="length-loss weight phi: larger = fewer tokens (default 0.005; the paper's SST-2 value "
                        "0.0005 gives 88.3%% at 1.1x on our frozen model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=DEFAULT_MODEL, help="base encoder of the head")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train_adapler)

    p = sub.add_parser("train-trbert", help="train TR-BERT's policy networks (REINFORCE) for a head")
    p.add_argument("--data", default=DEFAULT_TRAIN, help=f"training file (default {DEFAULT_TRAIN})")
    p.add_argument("--dev", default=DEFAULT_DEV, help=f"evaluation file ('' for none; default {DEFAULT_DEV})")
    p.add_argument("--head", default="sst2-lora", help="the frozen fine-tuned head (default sst2-lora)")
    p.add_argument("--name", default=None, help="artifact name (default sst2-lora-trbert)")
    p.add_argument("--out", default=None, help="artifact folder (default assets/trbert/NAME)")
    p.add_argument("--alpha", type=float, default=1.0,
                   help="weight of the kept fraction in the reward: larger = fewer tokens (default 1, the paper's IMDB value)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--limit", type=int, default=4000, help="shuffled training rows used (default 4000; 0 = all)")
    p.add_argument("--batch-size", type=int, default=16, help="examples per step (each rolled out --samples times)")
    p.add_argument("--samples", type=int, default=8, help="rollouts K per example (default 8)")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="policy learning rate (default 1e-3)")
    p.add_argument("--guide-rate", type=float, default=0.5, help="share of steps with the heuristic imitation rollout")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=DEFAULT_MODEL, help="base encoder of the head")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train_trbert)

    p = sub.add_parser("train-token-dropping",
                       help="fit an MLM head on the frozen encoder and build Token Dropping's importance table")
    p.add_argument("--data", default=f"{DEFAULT_TRAIN},../shared/data/imdb/dev.csv",
                   help="comma-separated TSV/CSV files whose text column is used (default SST-2 train and the IMDB reviews)")
    p.add_argument("--name", default=None, help="artifact name (default minilm-mlm-importance)")
    p.add_argument("--out", default=None, help="artifact folder (default assets/token_dropping/NAME)")
    p.add_argument("--limit", type=int, default=20000, help="texts per file (default 20000; 0 = all)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--head-steps", type=int, default=600, help="MLM-head training steps (default 600)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="MLM-head learning rate (default 1e-3)")
    p.add_argument("--table-passes", type=int, default=1, help="passes over the texts to fill the table (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=DEFAULT_MODEL, help="encoder (default the shipped MiniLM-L6)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train_token_dropping)

    p = sub.add_parser("evaluate", help="accuracy / agreement / FLOPs speedup per selector and retention")
    p.add_argument("--data", required=True, help="labelled TSV or CSV (SST-2 dev, the IMDB reviews...)")
    p.add_argument("--text-column", default=None, help="text column (guessed: sentence, text, review...)")
    p.add_argument("--label-column", default=None, help="label column (guessed: label, sentiment...)")
    p.add_argument("--selectors", default="coreset,attention,random,first-k", help="comma-separated selectors")
    p.add_argument("--retention", default="1.0,0.5,0.3,0.2,0.1", help="comma-separated final retention ratios")
    p.add_argument("--start-layer", type=int, default=1)
    p.add_argument("--head", default="sst2-lora", help="classifier head: shipped name or folder (default sst2-lora)")
    p.add_argument("--limit", type=int, default=None, help="only the first N rows")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="seed of the random selector")
    p.add_argument("--model", default=DEFAULT_MODEL, help="base encoder the head belongs to")
    p.add_argument("--out", default=None, help="also write the rows to this CSV (and OUT.meta.json)")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("saliency-report",
                       help="over a data set: AdapLeR predictors vs gradient x input, and top-k salient tokens kept")
    p.add_argument("--data", default=DEFAULT_DEV, help=f"labelled TSV or CSV (default {DEFAULT_DEV})")
    p.add_argument("--text-column", default=None)
    p.add_argument("--label-column", default=None)
    p.add_argument("--selectors", default=",".join(SELECTORS), help="comma-separated selectors (default: all)")
    p.add_argument("--retention", type=float, default=0.3, help="final retention of the fixed-length selectors (default 0.3)")
    p.add_argument("--start-layer", type=int, default=1)
    p.add_argument("--k", type=int, default=5, help="top-k salient tokens to follow (default 5)")
    p.add_argument("--head", default="sst2-lora", help="classifier head (default sst2-lora)")
    p.add_argument("--limit", type=int, default=None, help="only the first N rows")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--out", default=None, help="also write the rows to this CSV (and OUT.meta.json)")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_saliency_report)

    p = sub.add_parser("bench", help="measured vs FLOPs-predicted speedup of the pyramid")
    p.add_argument("--seq-len", default="128,512", help="comma-separated sequence lengths (default 128,512)")
    p.add_argument("--batch-size", default="1,8", help="comma-separated batch sizes (default 1,8)")
    p.add_argument("--retention", default="0.3", help="comma-separated final retention ratios (default 0.3)")
    p.add_argument("--start-layer", type=int, default=1)
    p.add_argument("--selectors", default="coreset,attention,random,first-k")
    p.add_argument("--config", default="default,bert-base",
                   help="default (MiniLM-L6), bert-base (12-layer, random weights), or both (default)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed runs of full and pyramid per setting, alternating, after one warm-up (median; default 5)")
    p.add_argument("--memory", action="store_true", help="also measure one training step's peak memory")
    p.add_argument("--memory-config", default="default",
                   help="configs of the memory measurement (default: default; bert-base needs ~10 GB)")
    p.add_argument("--memory-seq-len", type=int, default=512)
    p.add_argument("--memory-batch-size", type=int, default=32)
    p.add_argument("--out", default=None, help="also write {speed, memory} rows to this JSON file (and OUT.meta.json)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON (with --memory: {speed, memory})")
    p.add_argument("--quiet", action="store_true", help="no per-row progress on stderr")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from .trace import EmptyTextError

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except (EmptyTextError, ModelLoadError, ScheduleError, ValueError, KeyError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
