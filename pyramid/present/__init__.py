"""The presentation layer: figures and views of computed results, for the app and notebooks (no Streamlit).

:mod:`~pyramid.present.figures` (the token pyramid, heat strips, coverage and survival charts),
:mod:`~pyramid.present.projection` (UMAP of token states), :mod:`~pyramid.present.teaching` (the Learn page's worked
examples) and :mod:`~pyramid.present.notebook` (:func:`pyramid.show`). Imports any layer below it, never the command
line (tests/test_structure.py). See docs/architecture.md.
"""
