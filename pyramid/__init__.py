"""Pyramid Lens library: pyramid encoders, token selectors, coverage radii, traces, trainers.

Layout (docs/architecture.md): :mod:`pyramid.core` computes a pass (loading, families, layers, attention, the
encoder loop and its observers, selectors, routing, schedule, coverage, artifacts); the front at the top turns
texts into passes and answers (:mod:`~pyramid.api`, :mod:`~pyramid.plan`, :mod:`~pyramid.classifier`,
:mod:`~pyramid.trace`, :mod:`~pyramid.tokenization`, :mod:`~pyramid.words`, :mod:`~pyramid.data`,
:mod:`~pyramid.batching`); :mod:`pyramid.analysis` measures (evaluation, statistics, attributions, faithfulness,
benchmarks); :mod:`pyramid.training` trains (one trainer per method); :mod:`pyramid.present` draws (figures,
projection, teaching views, :func:`show`); :mod:`~pyramid.cli` and :mod:`~pyramid.grid` are the command line.
No Streamlit here: the app, the command line and the tests all use this package.

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
    "DEFAULT_MODEL": "core.loading", "LoadedEncoder": "core.loading", "ModelLoadError": "core.loading",
    "load_encoder": "core.loading", "Schedule": "core.schedule", "ScheduleError": "core.schedule",
    "encoder_flops": "core.schedule", "flops_speedup": "core.schedule", "SELECTORS": "core.selectors",
    "Selection": "core.selectors", "SelectionContext": "core.selectors", "Selector": "core.selectors",
    "get_selector": "core.selectors", "PyramidEncoder": "core.encoder", "PyramidOutput": "core.encoder",
    "run": "api", "load": "api", "show": "present.notebook", "Model": "api", "Trace": "trace",
    "Prediction": "classifier", "OWN_HEAD": "classifier", "RunPlan": "plan",
}
_SUBMODULES = ("core", "analysis", "present", "training", "api", "plan", "trace", "classifier")

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    if name in _SUBMODULES:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'pyramid' has no attribute '{name}'")
