"""App settings, read from environment variables, safe by default.

``PYRAMID_LENS_MODEL_ROOT``: the only folder other models load from (each sub-folder holding a
``config.json`` is offered in the sidebar). Default: ``~/.cache/pyramid-lens/models``, the project's
own model cache (``scripts/get_mpnet.sh`` fills it). Nothing outside it is ever opened, so the model
menu cannot be used to probe the server's file system.
``PYRAMID_LENS_ALLOW_CUSTOM_MODELS``: "1" (default) offers the models under the root; "0" shows the
default model only.
``PYRAMID_LENS_ALLOW_HUB``: "1" also accepts a Hugging Face hub id (needs network; an unreachable hub
fails within a few seconds). Default "0".
``PYRAMID_LENS_MAX_TOKENS``: token limit per text, [CLS]/[SEP] included (default 512, the model's own
limit; longer texts are truncated with a visible notice).

Remote code is never trusted, whatever the settings. The server listens on 127.0.0.1 unless started
with ``--server.address`` (``.streamlit/config.toml``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


DEFAULT_MODEL_ROOT = Path.home() / ".cache" / "pyramid-lens" / "models"
"""The project's own model cache, the default (and only) place other models load from."""


@dataclass(frozen=True)
class Settings:
    """Settings of one app process (see the module docstring)."""

    allow_custom_models: bool = True
    allow_hub: bool = False
    model_root: Path = DEFAULT_MODEL_ROOT
    max_tokens: int = 512


def load_settings() -> Settings:
    """Settings from the environment (see the module docstring)."""
    try:
        max_tokens = int(os.environ.get("PYRAMID_LENS_MAX_TOKENS", "512"))
    except ValueError:
        max_tokens = 512
    root = os.environ.get("PYRAMID_LENS_MODEL_ROOT", "").strip()
    return Settings(
        allow_custom_models=_flag("PYRAMID_LENS_ALLOW_CUSTOM_MODELS", True),
        allow_hub=_flag("PYRAMID_LENS_ALLOW_HUB", False),
        model_root=Path(root).expanduser() if root else DEFAULT_MODEL_ROOT,
        max_tokens=max(8, max_tokens),
    )


def local_models(root: Path) -> list[str]:
    """Names of the sub-folders of ``root`` that hold a ``config.json`` (sorted); empty if none.

    Only these can be chosen, so no user-typed path is ever opened.
    """
    try:
        return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and (p / "config.json").is_file())
    except OSError:
        return []
