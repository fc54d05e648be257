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
``PYRAMID_LENS_MAX_UPLOAD_MB``: largest file the Evaluate page takes (default 20 MB, the same as Streamlit's own
cap, ``server.maxUploadSize`` in ``.streamlit/config.toml``: raise both together).
``PYRAMID_LENS_MAX_EVAL_ROWS``: rows of a file the Evaluate page evaluates (the first ones; default 2,000).
``PYRAMID_LENS_CACHE_MB``: the memory the server's cache of traces and projections may hold (default 400 MB;
least recently used first out; ``app/cache.py``).
``PYRAMID_LENS_DATA_ROOT``: the folder whose CSV/TSV files the Evaluate page offers as data sets on this
server (default ``../shared/data`` beside the checkout, when it exists); nothing outside it is listed.

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
    max_upload_mb: float = 20.0
    max_eval_rows: int = 2000
    data_root: Path | None = None
    cache_mb: float = 400.0


def load_settings() -> Settings:
    """Settings from the environment (see the module docstring)."""
    try:
        max_tokens = int(os.environ.get("PYRAMID_LENS_MAX_TOKENS", "512"))
    except ValueError:
        max_tokens = 512
    root = os.environ.get("PYRAMID_LENS_MODEL_ROOT", "").strip()
    data = os.environ.get("PYRAMID_LENS_DATA_ROOT", "").strip()
    data_root = Path(data).expanduser() if data else (DEFAULT_DATA_ROOT if DEFAULT_DATA_ROOT.is_dir() else None)
    return Settings(
        allow_custom_models=_flag("PYRAMID_LENS_ALLOW_CUSTOM_MODELS", True),
        allow_hub=_flag("PYRAMID_LENS_ALLOW_HUB", False),
        model_root=Path(root).expanduser() if root else DEFAULT_MODEL_ROOT,
        max_tokens=max(8, max_tokens),
        max_upload_mb=max(0.1, _number("PYRAMID_LENS_MAX_UPLOAD_MB", 20.0)),
        max_eval_rows=max(10, int(_number("PYRAMID_LENS_MAX_EVAL_ROWS", 2000))),
        data_root=data_root,
        cache_mb=max(16.0, _number("PYRAMID_LENS_CACHE_MB", 400.0)),
    )


def _number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


DEFAULT_DATA_ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
"""``../shared/data`` beside the checkout: the data sets the project's documentation uses."""


def data_files(root: Path | None) -> list[str]:
    """CSV/TSV files under ``root`` (at most two folders deep), as paths relative to it, sorted; empty if
    none. Only these can be chosen on the Evaluate page, so no typed path is ever opened."""
    if root is None:
        return []
    try:
        found = [p for pattern in ("*.csv", "*.tsv", "*/*.csv", "*/*.tsv", "*/*/*.csv", "*/*/*.tsv")
                 for p in Path(root).glob(pattern) if p.is_file()]
    except OSError:
        return []
    return sorted(str(p.relative_to(root)) for p in found)


def local_models(root: Path) -> list[str]:
    """Names of the sub-folders of ``root`` that hold a ``config.json`` (sorted); empty if none. Hidden folders
    (a training run's temporary folder) are left out.

    Only these can be chosen, so no user-typed path is ever opened.
    """
    try:
        return sorted(p.name for p in Path(root).iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / "config.json").is_file())
    except OSError:
        return []
