"""Pyramid Lens: the pages (served by `streamlit run streamlit_app.py`; tests run this script with AppTest)."""

import streamlit as st

from app import benchmarks, evaluate, explorer, learn, saliency

st.set_page_config(page_title="Pyramid Lens", page_icon=":material/change_history:", layout="wide")

pages = [
    st.Page(explorer.render, title="Explorer", icon=":material/change_history:", url_path="explorer", default=True),
    st.Page(saliency.render, title="Saliency", icon=":material/local_fire_department:", url_path="saliency"),
    st.Page(evaluate.render, title="Evaluate", icon=":material/fact_check:", url_path="evaluate"),
    st.Page(benchmarks.render, title="Benchmarks", icon=":material/monitoring:", url_path="benchmarks"),
    st.Page(learn.render, title="Learn", icon=":material/school:", url_path="learn"),
]
st.navigation(pages).run()
