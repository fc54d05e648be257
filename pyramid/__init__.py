"""Pyramid Lens library: pyramid encoders, token selectors, coverage radii, traces.

No Streamlit here: the app, the command line and the tests all use this package.
"""

from .loading import DEFAULT_MODEL, LoadedEncoder, ModelLoadError, load_encoder
from .schedule import Schedule, ScheduleError, encoder_flops, flops_speedup
from .selectors import SELECTORS, Selection, SelectionContext, Selector, get_selector
from .encoder import PyramidEncoder, PyramidOutput

__all__ = [
    "DEFAULT_MODEL", "LoadedEncoder", "ModelLoadError", "load_encoder",
    "Schedule", "ScheduleError", "encoder_flops", "flops_speedup",
    "SELECTORS", "Selection", "SelectionContext", "Selector", "get_selector",
    "PyramidEncoder", "PyramidOutput",
]
