"""Shared plumbing of the artifacts in ``assets/`` (sentiment heads, AdapLeR predictors, TR-BERT
policies, LTP thresholds, the Token Dropping table): where they live, JSON configs, finding a shipped
folder, checking its files, and the tables of a model card. Weights are always safetensors (never
pickles).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

_PACKAGE = Path(__file__).resolve().parents[1]  # pyramid/
_INSTALLED_ASSETS = _PACKAGE / "assets"
ASSETS_DIR = _INSTALLED_ASSETS if _INSTALLED_ASSETS.is_dir() else _PACKAGE.parent / "assets"
"""The project's shipped artifacts: ``assets/`` of the checkout, or ``pyramid/assets`` inside an installed
package (``pip install .`` copies them there, pyproject.toml)."""
HEADS_DIR = ASSETS_DIR / "heads"
"""Shipped sentiment heads (LoRA adapter + classification head), one folder each."""
DEFAULT_HEAD = "sst2-lora"
"""Head fine-tuned at full length; the model of the inference-only regime."""
REGIMES = ("inference", "train-select")
"""How a selector's model was trained: ``inference`` = the full-length ``sst2-lora`` model with
selection added at inference only; ``train-select`` = a model fine-tuned with that selector in the
loop (docs/methods.md 8)."""


def train_select_head_name(selector: str) -> str:
    """The shipped Train-Select head of a selector: ``sst2-lora-ts-<selector>``."""
    return f"{DEFAULT_HEAD}-ts-{selector}"


TRAIN_SELECT_FILE = "train_select.json"
"""In a checkpoint's Train-Select model folder: which checkpoint and selector it was fine-tuned from and with,
the training settings and the dev figures (:mod:`pyramid.training.checkpoint`)."""


def checkpoint_train_select_name(checkpoint: str, selector: str) -> str:
    """The folder name of a classifier checkpoint's Train-Select model: ``<checkpoint>-ts-<selector>``."""
    return f"{checkpoint}-ts-{selector}"


def checkpoint_train_select(model_path: str | Path, model_name: str, selector: str) -> Path | None:
    """The Train-Select model of the checkpoint ``model_name`` (at ``model_path``) for ``selector``: the folder
    ``<checkpoint>-ts-<selector>`` beside the checkpoint (the model cache), when it holds a ``config.json`` and a
    ``train_select.json`` naming this checkpoint and selector; None otherwise (missing, incomplete, or made
    from another checkpoint). Reads two small JSON files, no weights."""
    if not Path(model_path).is_dir():  # a hub id: no folder beside it
        return None
    folder = Path(model_path).parent / checkpoint_train_select_name(model_name, selector)
    meta = folder / TRAIN_SELECT_FILE
    if not (meta.is_file() and (folder / "config.json").is_file()):
        return None
    try:
        record = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("base_model") != model_name or record.get("selector") != selector:
        return None
    return folder


def _head_config(name: str) -> dict | None:
    """A head's ``head_config.json`` (a shipped name or a folder) as a dict, or None when missing or unreadable.
    Loads no weights."""
    for folder in (Path(name), HEADS_DIR / str(name)):
        cfg = folder / "head_config.json"
        if cfg.is_file():
            try:
                data = json.loads(cfg.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            return data if isinstance(data, dict) else None
    return None


def head_identity(name: str) -> str:
    """The name a head calls itself (``name`` in its ``head_config.json``: ``assets/heads/sst2-lora`` ->
    ``sst2-lora``), so that a shipped name and its folder compare equal; ``name`` itself when unreadable."""
    found = (_head_config(name) or {}).get("name")
    return str(found) if found is not None else str(name)


def head_base_model(name: str) -> str | None:
    """The ``base_model`` recorded in a head's ``head_config.json`` (a shipped name or a folder), or
    None when the head is missing or unreadable. A cheap check that loads no weights."""
    found = (_head_config(name) or {}).get("base_model")
    return str(found) if found is not None else None


def head_train_select_name(head: str, selector: str) -> str:
    """The folder name of the Train-Select head fine-tuned from the head ``head`` with ``selector``:
    ``<head's name>-ts-<selector>`` (``sst2-lora-ts-coreset`` for the default head)."""
    return f"{head_identity(head)}-ts-{selector}"


def head_train_select(head: str, selector: str) -> str | None:
    """The Train-Select head fine-tuned from the head ``head`` (a shipped name or a folder) with ``selector``:
    the folder :func:`head_train_select_name` beside ``head`` (a folder) or among the shipped heads, when its
    ``head_config.json`` records that selector and that head as its ``init_head``; None otherwise (missing,
    unreadable, or made from another head or with another selector). Reads small JSON files, no weights."""
    name = head_train_select_name(head, selector)
    folders = [Path(head).parent / name] if Path(head).is_dir() else []
    folders.append(HEADS_DIR / name)
    for folder in folders:
        init = head_made_with(str(folder), selector)
        if init is not None and head_identity(init) == head_identity(head):
            return str(folder)
    return None


def head_made_with(head: str, selector: str) -> str | None:
    """The head that ``head`` was fine-tuned from with ``selector`` in the loop (``trained_with.init_head`` in its
    ``head_config.json``, when ``trained_with.selector`` is ``selector``), or None: not a Train-Select head of that
    selector, or unreadable."""
    made = (_head_config(head) or {}).get("trained_with") or {}
    init = made.get("init_head")
    return str(init) if made.get("selector") == selector and init is not None else None


class JsonConfig:
    """Mixin for dataclass configs written as JSON next to the weights."""

    def to_json(self) -> str:
        """Indented JSON of every field."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str):
        """Rebuild from :meth:`to_json` output (unknown keys are ignored)."""
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def resolve_artifact(name: str | Path, shipped_dir: Path, what: str, command: str, error: type[Exception]) -> Path:
    """A shipped artifact's name or a folder -> the folder.

    Args:
        name: a folder, or the name of a folder inside ``shipped_dir``.
        what: how to call it in the message ("AdapLeR predictors"). command: the CLI that makes it.
        error: the exception class to raise.

    Raises:
        error: neither exists.
    """
    p = Path(name)
    if p.is_dir():
        return p
    shipped = shipped_dir / str(name)
    if shipped.is_dir():
        return shipped
    raise error(f"No {what} '{name}': not a folder and not shipped in assets/{shipped_dir.name}. "
                f"Make them with `{command}`.")


def require_files(path: Path, files: Sequence[str], what: str, error: type[Exception]) -> None:
    """Raise ``error`` naming the missing files when ``path`` lacks any of ``files``."""
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise error(f"The {what} folder '{path}' is incomplete: missing {', '.join(missing)}.")


def load_weights_artifact(name: str | Path, *, shipped_dir: Path, what: str, command: str,
                          error: type[Exception], config_cls: type, config_file: str, weights_file: str,
                          build: Callable[[object, dict], object]) -> tuple[object, object]:
    """Load a ``<config>.json`` + ``<weights>.safetensors`` artifact (AdapLeR predictors, TR-BERT
    policies, LTP thresholds, the Token Dropping table): find the folder, check both files, parse
    the config with ``config_cls.from_json``, read the tensors and hand them to ``build``.

    Args:
        name: a folder, or the name of a folder in ``shipped_dir``.
        what: how messages name it ("TR-BERT policy"). command: the CLI that makes it.
        error: the exception class raised for every failure.
        build: ``(config, state_dict) -> object``; may raise ``error`` itself (kept as is).

    Returns:
        ``(object, config)``.

    Raises:
        error: the folder is missing or lacks a file, or the config or weights cannot be read or
            do not fit ``build``.
    """
    path = resolve_artifact(name, shipped_dir, what, command, error)
    require_files(path, (weights_file, config_file), what, error)
    try:
        from safetensors.torch import load_file

        config = config_cls.from_json((path / config_file).read_text(encoding="utf-8"))
        obj = build(config, load_file(str(path / weights_file)))
    except error:
        raise
    except Exception as exc:  # noqa: BLE001 - every other failure is a corrupt artifact
        raise error(f"Could not load the {what} '{path}': {exc}") from exc
    return obj, config


def freeze(module):
    """Eval mode and no gradients (a loaded artifact is only used for inference); returns ``module``."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def files_table(folder: Path) -> str:
    """Markdown rows ``| `file` | size MB |`` of the artifact's files (the card itself excluded)."""
    return "\n".join(f"| `{p.name}` | {p.stat().st_size / 1e6:.2f} MB |" for p in sorted(folder.iterdir())
                     if p.is_file() and p.name != "README.md")


def key_value_rows(items: dict, skip: Sequence[str] = ()) -> str:
    """Markdown rows ``| key | value |`` (``(none)`` when empty).

    A value of ``None`` (an option left at its unset default, such as ``limit`` for all rows) is written
    as ``not set`` rather than Python's ``None``.
    """
    rows = "\n".join(f"| {k} | {'not set' if v is None else v} |" for k, v in items.items() if k not in skip)
    return rows or "| (none) | |"
