"""Pyramid Lens library: pyramid encoders, token selectors, coverage radii, traces, trainers.

Layout: :mod:`pyramid.selectors` (one file per selector, and the registry), :mod:`pyramid.training`
(one trainer per method), and the shared pieces at the top: loading a model (:mod:`~pyramid.loading`),
the attention kernel (:mod:`~pyramid.attention`), the layer loop (:mod:`~pyramid.layers`), the pyramid
encoder (:mod:`~pyramid.encoder`), schedules and FLOPs (:mod:`~pyramid.schedule`), coverage radii
(:mod:`~pyramid.coverage`), traces, evaluation, attributions. No Streamlit here: the app, the command
line and the tests all use this package.

The names below are imported on first use, so that importing one module (a selector, say) does not
load the rest of the package.
"""

from importlib import import_module

_EXPORTS = {
    "DEFAULT_MODEL": "loading", "LoadedEncoder": "loading", "ModelLoadError": "loading", "load_encoder": "loading",
    "Schedule": "schedule", "ScheduleError": "schedule", "encoder_flops": "schedule", "flops_speedup": "schedule",
    "SELECTORS": "selectors", "Selection": "selectors", "SelectionContext": "selectors", "Selector": "selectors",
    "get_selector": "selectors", "PyramidEncoder": "encoder", "PyramidOutput": "encoder",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'pyramid' has no attribute '{name}'")
