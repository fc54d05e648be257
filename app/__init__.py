"""Pyramid Lens Streamlit app: pages and panels. Computation lives in :mod:`pyramid`."""
