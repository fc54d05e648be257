"""Argument types for the command line: each turns one option's text into a checked value or raises
``argparse.ArgumentTypeError`` with a one-line reason (argparse then prints ``error: ...`` and exits 2).

No torch or transformers here: parsing stays instant.
"""

from __future__ import annotations

import argparse
import math

SEED_LIMIT = 2 ** 32
"""Seeds are in ``[0, 2^32)`` (what NumPy and the app accept)."""


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if math.isnan(value) or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def int_at_least(low: int, what: str = "value"):
    """An integer type that must be ``>= low``."""
    def parse(text: str) -> int:
        value = _int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{what} must be at least {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def int_between(low: int, high: int, what: str = "value"):
    """An integer type in ``[low, high]``."""
    def parse(text: str) -> int:
        value = _int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be in {low}..{high}, got {value}")
        return value
    parse.__name__ = f"integer in {low}..{high}"
    return parse


def seed(text: str) -> int:
    """A seed in ``[0, 2^32)``."""
    value = _int(text)
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"the seed must be in 0..{SEED_LIMIT - 1}, got {value}")
    return value


def positive_float(text: str) -> float:
    """A number ``> 0``."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value:g}")
    return value


def nonneg_float(text: str) -> float:
    """A number ``>= 0``."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value:g}")
    return value


def share(text: str) -> float:
    """A share in ``[0, 1]``."""
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1], got {value:g}")
    return value


def retention(text: str) -> float:
    """A final retention ratio in ``(0, 1]``."""
    value = _float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"the retention ratio must be in (0, 1], got {value:g}")
    return value


def retention_list(text: str) -> list[float]:
    """Comma-separated retention ratios, each in ``(0, 1]``."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("give at least one retention ratio")
    return [retention(p.strip()) for p in parts]


def int_list_at_least(low: int, what: str):
    """Comma-separated integers, each ``>= low``."""
    one = int_at_least(low, what)

    def parse(text: str) -> list[int]:
        parts = [p for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"give at least one {what}")
        return [one(p.strip()) for p in parts]
    return parse


def max_length(text: str) -> int:
    """A token limit ``>= 3``: [CLS] and [SEP] take two, so fewer leaves no room for the text."""
    value = _int(text)
    if value < 3:
        raise argparse.ArgumentTypeError(f"--max-length must be at least 3 ([CLS] and [SEP] take two tokens), got {value}")
    return value


def utf8_text_file(path: str) -> str:
    """A readable UTF-8 text file (or ``-`` for standard input); returns the path.

    Refuses binary files (a NUL byte, or bytes that are not UTF-8) with a clear message.
    """
    if path == "-":
        return path
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read '{path}': {exc.strerror or exc}") from None
    if b"\x00" in head:
        raise argparse.ArgumentTypeError(f"'{path}' is a binary file, not text")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the 1 MB boundary
            raise argparse.ArgumentTypeError(f"'{path}' is not UTF-8 text (byte {exc.start})") from None
    return path


def existing_file(path: str) -> str:
    """A file that exists (data files are read later, with their own clear errors)."""
    import os

    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"no file '{path}'")
    return path


def boolean(text: str) -> bool:
    """``true/false``, ``yes/no``, ``1/0``, ``on/off``."""
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def retention_range(text: str) -> tuple[float, float]:
    """``LO,HI`` with ``0 < LO <= HI <= 1``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two retention ratios), got '{text}'")
    lo, hi = retention(parts[0]), retention(parts[1])
    if lo > hi:
        raise argparse.ArgumentTypeError(f"LO must not exceed HI, got {lo:g},{hi:g}")
    return lo, hi


def limit_or_all(text: str) -> int | None:
    """A row limit ``>= 1``, or ``0``/``all``/``none`` for no limit."""
    t = text.strip().lower()
    if t in ("0", "all", "none"):
        return None
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"the limit must be at least 1 (or 0 for all rows), got {value}")
    return value


def selector_name(text: str) -> str:
    """A registered selector's name."""
    from .core.selectors import SELECTORS

    if text not in SELECTORS:
        raise argparse.ArgumentTypeError(f"unknown selector '{text}'; choose from {', '.join(SELECTORS)}")
    return text


def choice(*values: str):
    """One of ``values``."""
    def parse(text: str) -> str:
        if text not in values:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(values)}, got '{text}'")
        return text
    return parse


def float_list(text: str) -> tuple[float, ...]:
    """Comma-separated positive numbers."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("give at least one number")
    return tuple(positive_float(p) for p in parts)


def device(text: str) -> str:
    """A torch device to train on: ``cpu`` (the default), ``cuda``, ``cuda:N`` or ``mps``, refused
    when this machine's torch cannot use it (a CPU-only wheel has no CUDA)."""
    value = text.strip().lower()
    if value == "cpu":
        return value
    import torch  # only when a device other than the CPU is asked for

    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a torch device such as cpu, cuda, cuda:1 or mps, got '{text}'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"--device {value}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"--device {value}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise argparse.ArgumentTypeError(f"--device {value}: MPS is not available here; use --device cpu")
    else:
        raise argparse.ArgumentTypeError(f"--device takes cpu, cuda, cuda:N or mps, got '{text}'")
    return value
