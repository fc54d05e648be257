"""Pyramid Lens library: pyramid encoders, token selectors, coverage radii, traces, trainers.

Layout: :mod:`pyramid.selectors` (one file per selector, and the registry), :mod:`pyramid.training`
(one trainer per method), and the shared pieces at the top: loading a model (:mod:`~pyramid.loading`),
the attention kernel (:mod:`~pyramid.attention`), the layer loop (:mod:`~pyramid.layers`), the pyramid
encoder (:mod:`~pyramid.encoder`), schedules and FLOPs (:mod:`~pyramid.schedule`), coverage radii
(:mod:`~pyramid.coverage`), traces, evaluation, attributions. No Streamlit here: the app, the command
line and the tests all use this package.

The Python API for notebooks and scripts is :func:`run` (a text -> its :class:`~pyramid.trace.Trace`
with the prediction from the same pass), :func:`load` (a :class:`~pyramid.api.Model`: the default
model, a plain encoder folder, or a fine-tuned classifier checkpoint) and :func:`show` (a trace's figure)::

    import pyramid
    trace = pyramid.run("A gripping, funny film.", selector="coreset", retention=0.3)
    trace.prediction.label

The names below are imported on first use, so that importing one module (a selector, say) does not
load the rest of the package.
"""

from importlib import import_module

_EXPORTS = {
    "DEFAULT_MODEL": "loading", "LoadedEncoder": "loading", "ModelLoadError": "loading", "load_encoder": "loading",
    "Schedule": "schedule", "ScheduleError": "schedule", "encoder_flops": "schedule", "flops_speedup": "schedule",
    "SELECTORS": "selectors", "Selection": "selectors", "SelectionContext": "selectors", "Selector": "selectors",
    "get_selector": "selectors", "PyramidEncoder": "encoder", "PyramidOutput": "encoder",
    "run": "api", "load": "api", "show": "api", "Model": "api", "Trace": "trace", "Prediction": "classifier",
    "OWN_HEAD": "classifier",
}
_SUBMODULES = ("figures", "api", "trace", "classifier", "evaluation", "loading", "selectors", "schedule")

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    if name in _SUBMODULES:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'pyramid' has no attribute '{name}'")
