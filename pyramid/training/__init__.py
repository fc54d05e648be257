"""Trainers: the sentiment heads (with or without a selector in the loop) and every learned selector.

Each module holds one method's training loop, its settings (which become the options of its
``python -m pyramid train*`` command) and its model card; :data:`TRAINERS` lists the commands, one
line each.
"""

from __future__ import annotations

from importlib import import_module

from .common import TrainerCommand

_MODULES = (
    "heads",
    "adapler",
    "trbert",
    "token_dropping",
    "ltp",
)
"""Trainer modules, each with a ``COMMAND``: one line per training command."""

TRAINERS: tuple[TrainerCommand, ...] = tuple(import_module(f"{__name__}.{m}").COMMAND for m in _MODULES)
"""The ``train*`` commands of ``python -m pyramid``, in the order ``--help`` lists them."""

__all__ = ["TRAINERS", "TrainerCommand"]
