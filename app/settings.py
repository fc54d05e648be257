"""App settings, read from environment variables (so a public demo can lock them down).

``PYRAMID_LENS_ALLOW_CUSTOM_MODELS``: "1" (default) lets users load another BERT-family model
from a local folder or a hub id; "0" for a public demo. Remote code is never trusted either way.
``PYRAMID_LENS_MAX_TOKENS``: token limit per text, [CLS]/[SEP] included (default 512, the
model's own limit; longer texts are truncated with a visible notice).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """Settings of one app process."""

    allow_custom_models: bool = True
    max_tokens: int = 512


def load_settings() -> Settings:
    """Settings from the environment (see the module docstring)."""
    try:
        max_tokens = int(os.environ.get("PYRAMID_LENS_MAX_TOKENS", "512"))
    except ValueError:
        max_tokens = 512
    return Settings(
        allow_custom_models=_flag("PYRAMID_LENS_ALLOW_CUSTOM_MODELS", True),
        max_tokens=max(8, max_tokens),
    )
