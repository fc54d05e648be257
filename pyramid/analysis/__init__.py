"""The analysis layer: measuring what the core computes, on the front's models and data.

:mod:`~pyramid.analysis.evaluation` (accuracy and FLOPs per selector and retention), :mod:`~pyramid.analysis.stats`
(confidence intervals, paired tests), :mod:`~pyramid.analysis.attribution` (gradient saliency),
:mod:`~pyramid.analysis.faithfulness` (ERASER comprehensiveness and sufficiency),
:mod:`~pyramid.analysis.saliency_eval`, :mod:`~pyramid.analysis.survival` (how deep each word goes),
:mod:`~pyramid.analysis.bench` (timing and memory), :mod:`~pyramid.analysis.results` and
:mod:`~pyramid.analysis.seeds` (shipped result files). Imports the core and the front, never the presentation,
the trainers or the command line (tests/test_structure.py). See docs/architecture.md.
"""
