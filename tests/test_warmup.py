"""The server's warm-up (app/warmup.py): `streamlit run streamlit_app.py` serves the pages with st.App, whose
lifespan computes the first page's answer before the first visitor asks for it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_streamlit_run_finds_the_app_and_its_warm_up(monkeypatch):
    from streamlit.web.server.app_discovery import discover_asgi_app

    found = discover_asgi_app(ROOT / "streamlit_app.py")
    assert found.is_asgi_app and found.import_string == "streamlit_app:app"

    import importlib.util

    spec = importlib.util.spec_from_file_location("streamlit_app_under_test", ROOT / "streamlit_app.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.syspath_prepend(str(ROOT))
    spec.loader.exec_module(module)
    from app.warmup import lifespan

    assert module.app._user_lifespan is lifespan
    assert (ROOT / module.app._script_path).resolve() == (ROOT / "app" / "main.py").resolve()


def test_the_warm_up_can_be_turned_off(monkeypatch):
    from app import warmup

    monkeypatch.setenv("PYRAMID_LENS_WARM_UP", "0")
    assert not warmup.enabled() and warmup.start_warm_up() is None
    monkeypatch.setenv("PYRAMID_LENS_WARM_UP", "1")
    assert warmup.enabled()


@pytest.mark.slow
def test_after_the_warm_up_the_first_page_makes_no_encoder_pass(monkeypatch):
    """The warm-up computes exactly what a new visitor's Explorer page needs: drawing it afterwards runs the
    encoder zero times (if the page's first run or its prediction table changes, app.explorer.precompute must
    follow, or this fails)."""
    from streamlit.testing.v1 import AppTest

    from app import warmup
    from pyramid.core.encoder import PyramidEncoder

    seconds = warmup.warm_up()
    assert set(seconds) == {"imports", "model", "first page"}
    passes = []
    forward = PyramidEncoder.forward

    def counting(self, *args, **kwargs):
        passes.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(PyramidEncoder, "forward", counting)
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=300).run()
    assert not at.exception
    assert any("pl-row" in el.proto.body for el in at.get("html"))  # the first page's answer is drawn
    assert passes == []
    table = next(df.value for df in at.dataframe if "run" in df.value.columns)
    assert len(table) >= 3  # full length and the two selectors shown, each with its predictions
