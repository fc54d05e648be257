"""What every trainer shares: settings that become command-line options, the learning-rate schedule,
freezing, data rows, and the one model-card writer.

Settings are dataclasses whose fields carry their help text (:func:`option`); the ``train*``
subcommands are built from them (:func:`add_settings_arguments`), so every default lives in one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from ..core.artifacts import files_table, key_value_rows

DEFAULT_TRAIN = "../shared/data/sst2/train.tsv"
"""SST-2 train, read from the shared data folder beside the project (never copied into it)."""
DEFAULT_DEV = "../shared/data/sst2/dev.tsv"
"""SST-2 dev, likewise: only ever measured on (model cards' figures, result files), never trained on."""
BBC_TRAIN = "../shared/data/bbc/train.csv"
"""BBC News train (long articles), a training text source; its dev split is an evaluation set."""
SST2_LABELS = ("negative", "positive")
"""What GLUE's SST-2 label ids 0 and 1 mean: the names the shipped sentiment heads give them."""
EVALUATION_FILES = ("../shared/data/sst2/dev.tsv", "../shared/data/imdb/dev.csv", "../shared/data/bbc/dev.csv")
"""The files the result tables and model cards measure on: no trainer reads them as training input
(``tests/test_structure.py`` checks every trainer's defaults and the result files' sidecars)."""


def option(default: Any, help: str = "", *, parse: Callable[[str], Any] | None = None, cli: bool = True,
           metavar: str | None = None):
    """A settings field with its command-line help.

    Args:
        default: the default value (the one place it is written).
        help: the option's help text.
        parse: turns the option's string into the value (default: the type of ``default``, or str).
        cli: False for fields the command line does not set (the command line itself, labels).
        metavar: shown in the usage line.
    """
    meta = {"help": help, "parse": parse, "cli": cli, "metavar": metavar}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parser_for(f: dataclasses.Field) -> Callable[[str], Any]:
    if f.metadata.get("parse"):
        return f.metadata["parse"]
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        return lambda text: text.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


def add_settings_arguments(parser: argparse.ArgumentParser, settings_cls: type) -> None:
    """Add one ``--option`` per command-line field of a settings dataclass (help and default from it)."""
    for f in dataclasses.fields(settings_cls):
        if not f.metadata.get("cli", False):
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = "none" if default is None else (",".join(map(str, default)) if isinstance(default, tuple) else default)
        text = f.metadata["help"] if "default" in f.metadata["help"] else f"{f.metadata['help']} (default: {shown})"
        parser.add_argument(_flag(f.name), dest=f.name, type=_parser_for(f), default=default,
                            metavar=f.metadata.get("metavar"), help=text)


def settings_from_args(settings_cls: type, args: argparse.Namespace, **overrides):
    """Build a settings dataclass from parsed options (fields the command line does not set keep
    their defaults unless given in ``overrides``)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(settings_cls)
              if f.metadata.get("cli", False) and hasattr(args, f.name)}
    values.update(overrides)
    return settings_cls(**values)


def comma_floats(text: str) -> tuple[float, ...]:
    """``"0.1,0.5"`` -> ``(0.1, 0.5)``; raises ``ValueError`` with the text on a bad number."""
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got '{text}'") from None


def comma_strings(text: str) -> tuple[str, ...]:
    """``"a.tsv, b.csv"`` -> ``("a.tsv", "b.csv")``."""
    return tuple(x.strip() for x in text.split(",") if x.strip())


def training_labels(data, given: Sequence[str] | None) -> list[str]:
    """The label names a head is trained with, from the training file as read (``data``, a
    :class:`pyramid.data.LabelledData` read with ``label_names=given``): ``given`` when set; SST-2's ``negative,
    positive`` for a file in an ``sst2`` folder whose labels are the ids 0 and 1; otherwise the names the file
    itself gives (:func:`pyramid.data.infer_label_names`: integer ids, or the distinct words in sorted order).
    Any number of labels; the ids do not change.

    Raises:
        DataError: fewer than two distinct labels in the file (nothing to classify).
    """
    from ..data import DataError

    present = sorted(set(data.labels))
    if len(present) < 2:
        raise DataError(f"{data.path}: every row has the label '{data.label_names[present[0]]}'; a classifier needs "
                        "at least two classes")
    if given:
        return list(given)
    if data.label_names == ["0", "1"] and Path(data.path).parent.name.lower() == "sst2":
        return list(SST2_LABELS)
    return list(data.label_names)


def none_or_int(text: str) -> int | None:
    """An integer option where ``0`` or ``none`` means "no limit"."""
    if text.strip().lower() in ("", "none", "0"):
        return None
    return int(text)


def linear_warmup_decay(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``
    (the GLUE recipe every method's code uses, docs/methods.md 8)."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def warmup_scheduler(optimizer: torch.optim.Optimizer, total: int, warmup_share: float):
    """A ``LambdaLR`` with :func:`linear_warmup_decay` over ``total`` steps, ``warmup_share`` of them warm-up."""
    warm = int(warmup_share * total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda st: linear_warmup_decay(st, total, warm))


DEVICE_HELP = ("torch device to train on: cpu, cuda, cuda:N or mps (the artifact is always saved from, and its "
               "dev figures computed on, the CPU)")
"""Help text of every trainer's ``--device`` option."""


@contextmanager
def on_device(device: str | torch.device, *modules: torch.nn.Module | None):
    """Move ``modules`` to ``device`` for the block and back to the CPU after it, so that training runs
    on a GPU when one is asked for while saving, evaluating and the app stay on the CPU. ``None``
    entries are skipped; with ``device == "cpu"`` nothing moves."""
    mods = [m for m in modules if m is not None]
    moved = torch.device(device).type != "cpu"
    if moved:
        for m in mods:
            m.to(device)
    try:
        yield torch.device(device)
    finally:
        if moved:
            for m in mods:
                m.to("cpu")


@contextmanager
def flushed_denormals():
    """Flush denormal floats to zero on the CPU inside the block; restore the default (keep them) after.

    Soft removal (AdapLeR's ``m * exp(S)`` with ``S`` down to -10000, LTP's sigmoid masks at high
    temperature) and the attention softmax over the additive penalty fill tensors with values below
    1.2e-38, which x86 CPUs process 10-100x slower than normal floats: an AdapLeR joint step at
    lambda = 1000 took ~10 s with them and ~3 s without on 2 cores (same batch, same losses to 3
    digits). Flushing changes no value above 1.2e-38. A no-op where the CPU lacks the flag (torch
    returns False) and for CUDA tensors.

    The flag lives in each thread's MXCSR register: this block sets it for the calling thread, and
    torch's intra-op worker threads take it only when they are created after it is set. The
    ``python -m pyramid`` trainers that need it (``TrainerCommand.flush_denormals``) therefore set it
    at process start, before the first parallel operation creates those threads (measured: a
    denormal multiply on 2 threads ran 6.1x slower than a normal one with no flag, 4.6x with the
    flag set after the threads existed, 1.1x with it set before).
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextmanager
def frozen(params: Iterable[torch.nn.Parameter]):
    """Turn off ``requires_grad`` for ``params`` inside the block and restore each flag after it."""
    params = list(params)
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def shuffled_rows(n: int, seed: int, limit: int | None) -> list[int]:
    """Row indices ``0..n-1`` shuffled with ``seed``, the first ``limit`` of them (all when None)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order if limit is None else order[:limit]


def mean_tail(values: Sequence[float], k: int = 50) -> float:
    """Mean of the last ``k`` values (0.0 when empty), for the "final loss" figures of a card."""
    tail = list(values)[-k:]
    return round(sum(tail) / len(tail), 4) if tail else 0.0


def card_data(t: dict, rows: str = "") -> str:
    """The Data line of a model card from a trainer's ``training`` record ``t``: the training file,
    the shuffle seed, ``rows`` (what was used, e.g. "8000 rows"), the token limit and the dev file."""
    used = f", {rows}" if rows else (f", {t['examples']} rows" if t.get("examples") is not None else "")
    return (f"Training: `{t.get('data')}` (shuffled with seed {t.get('seed')}{used}, truncated to "
            f"{t.get('max_length')} tokens). Evaluation: `{t.get('dev')}`.")


def card_hyper(t: dict, skip: Sequence[str] = ("command", "data", "dev", "out", "head_out")) -> dict:
    """The hyper-parameter rows of a model card: the ``training`` record without paths (``out``,
    ``head_out``: where the run wrote, not how it trained) and command."""
    return {k: v for k, v in t.items() if k not in skip}


@dataclass
class ModelCard:
    """The README written next to every trained artifact.

    Attributes:
        title: first heading (``name: what it is``).
        summary: what the artifact is and how it is used, in plain sentences (Markdown).
        method: how it was trained, with every deviation from the paper stated.
        data: where the training and evaluation data came from.
        metrics: metric name -> value. hyper: hyper-parameter name -> value.
        command: the command that made it. limits: what it is not for.
    """

    title: str
    summary: str
    method: str
    data: str
    metrics: dict = field(default_factory=dict)
    hyper: dict = field(default_factory=dict)
    command: str = ""
    limits: str = ""

    def render(self, folder: Path) -> str:
        """The card as Markdown, with the sizes of the files in ``folder``."""
        return f"""# {self.title}

{self.summary.strip()}

## How it was trained
{self.method.strip()}

## Data
{self.data.strip()}

## Metrics
| metric | value |
|---|---|
{key_value_rows(self.metrics)}

## Hyper-parameters
| name | value |
|---|---|
{key_value_rows(self.hyper)}

## Command
    {self.command or '(not recorded)'}
{self.output_note()}
## Files
| file | size |
|---|---|
{files_table(folder)}

## Limits
{self.limits.strip() or 'Trained on SST-2 movie-review phrases: English, short, lower-cased text. Not for decisions about people.'}
"""

    def output_note(self) -> str:
        """A line under the command when it named its output folders (``--out``, ``--head-out``): those
        are where that run wrote, and without them the same command writes into ``assets/``."""
        if not re.search(r"(^|\s)--(head-)?out(\s|=)", self.command):
            return ""
        return ("\nThe run wrote to the folders its `--out` / `--head-out` name; without those options the same "
                "command writes into `assets/`, as `scripts/make_artifacts.sh` runs it.\n")

    def write(self, folder: Path) -> None:
        """Write ``README.md`` into ``folder``."""
        (Path(folder) / "README.md").write_text(self.render(Path(folder)), encoding="utf-8")


@dataclass
class TrainerCommand:
    """One ``python -m pyramid train*`` subcommand: its name, help, settings and runner.

    ``run(settings, model_name, progress) -> dict`` trains, writes the artifact and returns the
    JSON summary the command prints.
    """

    name: str
    help: str
    settings: type
    run: Callable[..., dict]
    defaults: Callable[[Any], dict] | None = None
    """Fills settings the user left empty (output folder, name) from the others."""
    flush_denormals: bool = False
    """Flush denormal floats for the whole process, set before anything runs (see :func:`flushed_denormals`)."""


GROUP_MEGA_BATCHES = 50
"""Batches per length-sorted chunk when grouping by length (Hugging Face's ``LengthGroupedSampler``)."""


def epoch_batches(ids: Sequence[Sequence[int]], batch_size: int, rng: random.Random,
                  group_by_length: bool = True) -> list[list[int]]:
    """One epoch's batches of row indices.

    Shuffled; with ``group_by_length`` (the default, like Hugging Face's ``group_by_length``) the
    shuffled rows are cut into chunks of ``GROUP_MEGA_BATCHES * batch_size``, each chunk is sorted by
    length and cut into batches, and the batches are shuffled: batches hold texts of similar length,
    so little compute goes to padding (SST-2's phrases run from 3 to ~60 tokens), while every epoch
    still sees the rows in a new random order.
    """
    order = list(range(len(ids)))
    rng.shuffle(order)
    if not group_by_length:
        return [order[b: b + batch_size] for b in range(0, len(order), batch_size)]
    mega = GROUP_MEGA_BATCHES * batch_size
    batches = []
    for m in range(0, len(order), mega):
        chunk = sorted(order[m: m + mega], key=lambda i: len(ids[i]), reverse=True)
        batches += [chunk[b: b + batch_size] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches
