"""The compute layer: what one pass of a pyramid encoder needs, and nothing about who asked for it.

:mod:`~pyramid.core.loading` (a model and its family, offline, safetensors only), :mod:`~pyramid.core.families`
(one adapter per architecture), :mod:`~pyramid.core.layers` and :mod:`~pyramid.core.attention` (a layer on the alive
tokens, the attention kernel), :mod:`~pyramid.core.encoder` (the loop) with its :mod:`~pyramid.core.observers`,
:mod:`~pyramid.core.selectors` (one file per method, and the registry), :mod:`~pyramid.core.routing` (drop, rejoin,
merge), :mod:`~pyramid.core.schedule` (lengths and FLOPs), :mod:`~pyramid.core.coverage` (coverage radii) and
:mod:`~pyramid.core.artifacts` (where the shipped weights live). Imports nothing else of :mod:`pyramid`
(tests/test_structure.py). See docs/architecture.md.
"""
