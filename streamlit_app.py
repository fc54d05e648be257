"""Pyramid Lens: entry point of the Streamlit app (`streamlit run streamlit_app.py`).

The pages are in ``app/main.py``; this file serves them with Streamlit's ``st.App``, whose lifespan starts the
server's warm-up (imports, the default model, the first page's answer) in the background as the server starts,
so the first visitor does not wait for it (``app/warmup.py``; ``PYRAMID_LENS_WARM_UP=0`` turns it off).
"""

import streamlit as st

from app.warmup import lifespan

# `streamlit run` finds this st.App by its name; it is not the `app` package imported above.
app = st.App("app/main.py", lifespan=lifespan)
