"""Token selectors: one file per method, and the registry.

Adding a selector is one file (a :class:`Selector` subclass, the algorithm, with its name and, for a
learned one, its weights and loader; and beside it a ``DESCRIPTOR``: label, description, the artifacts it
needs shipped) plus one line in :data:`_ENTRIES` below. The app, the command line, evaluation, benchmarks
and the saliency report take every selector from here (:data:`SELECTORS`: name -> :class:`SelectorInfo`).
"""

from __future__ import annotations

from importlib import import_module

from ..artifacts import REGIMES
from .base import Descriptor, LearnedSelector, Selection, SelectionContext, Selector, SelectorInfo, keep_top_k

_ENTRIES = (
    "coreset:CoresetSelector",
    "attention:AttentionSelector",
    "random_k:RandomSelector",
    "first_k:FirstKSelector",
    "adapler:AdaplerSelector",
    "trbert:TrbertSelector",
    "token_dropping:TokenDroppingSelector",
    "ltp:LtpSelector",
    "tome:TomeSelector",
    "coreset_pool:CoresetPoolSelector",
)
"""``module:Class`` of every selector, in the order menus and legends show them: one line each."""

PALETTE = ("#1f77b4", "#d62728", "#7f7f7f", "#9467bd", "#2ca02c", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#393b79", "#8c6d31", "#843c39")
"""Plot colours, assigned in registry order (the explorer's kept/dropped colours are blue/orange)."""

_MODULES = [import_module(f"{__name__}.{e.split(':')[0]}") for e in _ENTRIES]

REGISTRY: tuple[type[Selector], ...] = tuple(getattr(m, e.split(":")[1]) for m, e in zip(_MODULES, _ENTRIES))
"""Every selector class, in registry order."""

SELECTORS: dict[str, SelectorInfo] = {
    cls.name: SelectorInfo(cls.name, cls, module.DESCRIPTOR, PALETTE[i % len(PALETTE)])
    for i, (cls, module) in enumerate(zip(REGISTRY, _MODULES))}
"""Every registered selector by name: its class, descriptor and colour (:class:`SelectorInfo`)."""

__all__ = [
    "REGISTRY", "SELECTORS", "PALETTE", "REGIMES", "Selector", "LearnedSelector", "Selection", "SelectionContext",
    "Descriptor", "SelectorInfo",
    "keep_top_k", "get_selector", "full_length_selector", "selector_label",
]


def get_selector(name: str | Selector, regime: str = "inference") -> Selector:
    """Build the selector registered under ``name`` for a regime (an instance is returned as it is).

    Raises:
        KeyError: unknown name (the message lists the known ones).
        ValueError: unknown regime, or a learned selector whose shipped artifact is missing or
            corrupt (a subclass of ``ValueError`` per method).
    """
    if isinstance(name, Selector):
        return name
    if name not in SELECTORS:
        raise KeyError(f"unknown selector '{name}'; choose one of: {', '.join(SELECTORS)}")
    return SELECTORS[name].cls(regime=regime)


def full_length_selector() -> Selector:
    """A fixed-length selector for full-length runs: with ``Schedule(retention=1.0)`` it drops nothing.

    (A per-example-length selector such as AdapLeR ignores the schedule, so it cannot stand in.)
    """
    return next(cls for cls in REGISTRY if cls.fixed_length and cls.reads == "states" and cls.routing == "drop")()


def selector_label(name: str, short: bool = False) -> str:
    """A registered selector's display name (``label``, or ``short``); the name itself if unknown."""
    cls = SELECTORS.get(name)
    if cls is None:
        return name
    return cls.short if short else cls.label
