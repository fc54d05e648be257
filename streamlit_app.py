"""Pyramid Lens: entry point of the Streamlit app (`streamlit run streamlit_app.py`)."""

import streamlit as st

from app import benchmarks, explorer, learn, saliency

st.set_page_config(page_title="Pyramid Lens", page_icon="🔺", layout="wide")

pages = [
    st.Page(explorer.render, title="Explorer", icon="🔺", url_path="explorer", default=True),
    st.Page(saliency.render, title="Saliency", icon="🔥", url_path="saliency"),
    st.Page(benchmarks.render, title="Benchmarks", icon="📈", url_path="benchmarks"),
    st.Page(learn.render, title="Learn", icon="🎓", url_path="learn"),
]
st.navigation(pages).run()
