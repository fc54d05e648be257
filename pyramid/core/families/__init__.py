"""Encoder families: one small layer adapter per family, chosen from the config's ``model_type``.

Adding a family is one file (a :class:`~pyramid.core.families.base.Family`) and one line in ``_ENTRIES``.
"""

from __future__ import annotations

from importlib import import_module

from .base import Family

_ENTRIES = (
    "bert:BertFamily",
    "distilbert:DistilBertFamily",
    "albert:AlbertFamily",
    "mpnet:MPNetFamily",
    "deberta_v2:DebertaV2Family",
)
"""``module:Class`` of every family: one line each."""

FAMILIES: dict[str, Family] = {}
for _entry in _ENTRIES:
    _module, _cls = _entry.split(":")
    _family = getattr(import_module(f"{__name__}.{_module}"), _cls)()
    for _type in _family.model_types:
        FAMILIES[_type] = _family

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(FAMILIES)
"""``config.model_type`` values the pyramid encoder can run."""


def family_of(config_or_type) -> Family:
    """The family of a model config (or a ``model_type`` string).

    Raises:
        KeyError: an unsupported family (the message names the supported ones).
    """
    model_type = config_or_type if isinstance(config_or_type, str) else getattr(config_or_type, "model_type", None)
    if model_type not in FAMILIES:
        raise KeyError(f"'{model_type}' models are not supported; Pyramid Lens runs {', '.join(SUPPORTED_MODEL_TYPES)}")
    return FAMILIES[model_type]
