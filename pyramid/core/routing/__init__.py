"""Routings: what happens to the tokens a selector does not keep (drop, park and rejoin, merge).

Adding a routing style is one file (a :class:`~pyramid.core.routing.base.Routing`) plus one line in
:data:`_ENTRIES`; a selector names the routing its method uses (``Selector.routing``).
"""

from __future__ import annotations

from importlib import import_module

from .base import RouteState, Routing, compact, gather_rows, shrink

_ENTRIES = (
    "drop:DropRouting",
    "rejoin:RejoinRouting",
    "merge:MergeRouting",
)
"""``module:Class`` of every routing: one line each."""

ROUTINGS: dict[str, type[Routing]] = {}
for _entry in _ENTRIES:
    _module, _cls = _entry.split(":")
    _class = getattr(import_module(f"{__name__}.{_module}"), _cls)
    ROUTINGS[_class.name] = _class

__all__ = ["ROUTINGS", "RouteState", "Routing", "compact", "gather_rows", "shrink", "make_routing"]


def make_routing(name: str, **options) -> Routing:
    """A new routing of the registered kind ``name`` for one forward pass.

    Raises:
        KeyError: unknown routing (the message lists the known ones).
    """
    if name not in ROUTINGS:
        raise KeyError(f"unknown routing '{name}'; choose one of: {', '.join(ROUTINGS)}")
    return ROUTINGS[name](**options)
