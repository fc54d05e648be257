"""Drop: the tokens a selector does not keep leave the sequence for good (docs/methods.md 0.2)."""

from __future__ import annotations

from .base import Routing


class DropRouting(Routing):
    """Dropped tokens are gone: the kept rows are gathered into shorter tensors (the base behaviour)."""

    name = "drop"
