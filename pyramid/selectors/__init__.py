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
    "keep_top_k", "get_selector", "full_length_selector", "unavailable_reason", "usable_selectors", "selector_label",
    "checkpoint_refusal",
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


def unavailable_reason(name: str, model_name: str | None = None, regime: str = "inference") -> str | None:
    """Why the registered selector ``name`` cannot run on the model ``model_name`` in ``regime``
    (None when it can): its learned weights or its head are missing, or belong to another model."""
    try:
        selector = get_selector(name, regime)
    except KeyError:
        raise
    except ValueError as exc:
        return str(exc)
    return selector.unavailable(model_name)


def checkpoint_refusal(selector: str | None) -> str | None:
    """Why ``train`` cannot fine-tune a classifier checkpoint with ``selector`` (None when it can).

    Only selectors without learned weights of their own train here (every fixed-schedule and merging
    selector): AdapLeR's predictors, TR-BERT's policies, LTP's thresholds and Token Dropping's table were
    made for the default model's ``sst2-lora`` head, and their trainers take a project head, not a
    checkpoint's own head.
    """
    if selector is None:
        return ("it is a fine-tuned classifier checkpoint: give --selector (and --retention-range LO,HI) to "
                "fine-tune its Train-Select model")
    cls = SELECTORS[selector]
    if cls.artifacts:
        return (f"{cls.short} needs weights of its own trained on the default model's sst2-lora head; its trainer "
                f"(python -m pyramid train-{selector.replace('-', '')}) does not take a checkpoint's own head. "
                "Every fixed-schedule and merging selector trains on a checkpoint")
    if not cls.uses_retention:
        return f"{cls.short} sets its own lengths; it does not train with a retention schedule"
    return None


def usable_selectors(model_name: str | None = None, regime: str = "inference") -> list[str]:
    """Registry names of the selectors that can run on ``model_name`` in ``regime``, in registry order.

    The one answer to "which selectors run on this model", shared by the app and the command line.
    """
    return [name for name in SELECTORS if unavailable_reason(name, model_name, regime) is None]


def selector_label(name: str, short: bool = False) -> str:
    """A registered selector's display name (``label``, or ``short``); the name itself if unknown."""
    cls = SELECTORS.get(name)
    if cls is None:
        return name
    return cls.short if short else cls.label
