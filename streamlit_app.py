"""Pyramid Lens: entry point of the Streamlit app (`streamlit run streamlit_app.py`)."""

import streamlit as st

from app import explorer

st.set_page_config(page_title="Pyramid Lens", page_icon="🔺", layout="wide")

pages = [st.Page(explorer.render, title="Explorer", icon="🔺", url_path="explorer", default=True)]
st.navigation(pages).run()
