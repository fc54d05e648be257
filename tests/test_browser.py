"""The app in a real browser: Playwright driving Debian's Chromium against `streamlit run`.

Skipped when /usr/bin/chromium is missing (``.ci/run`` installs it). A screenshot of the page is
saved to ``test-artifacts/`` for a person to look at.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts.load_test import CHROMIUM, LAUNCH_ARGS  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")]


@pytest.fixture(scope="module")
def server():
    from scripts.load_test import start_server

    proc, url = start_server()
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield b
        b.close()


def wait_idle(page, timeout=300_000):
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)


def test_explorer_in_a_real_browser(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(server)
    wait_idle(page)
    page.wait_for_selector("[data-testid='stPlotlyChart']", state="attached", timeout=300_000)
    assert page.get_by_test_id("stException").count() == 0
    assert page.locator(".pl-row").count() >= 6
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)

    # a hostile text appears as text and never runs
    hostile = "<img src=x onerror=alert(1)> <script>alert(2)</script> a fine film"
    page.get_by_role("textbox", name="Text").fill(hostile)
    page.get_by_role("button", name="Run").click()
    time.sleep(1)
    wait_idle(page)
    page.wait_for_function("document.querySelectorAll('.pl-row').length >= 6")
    assert page.get_by_test_id("stException").count() == 0
    pyramid = page.locator(".pl-pyr").first.inner_text()
    assert "script" in pyramid and "<" in pyramid
    assert page.locator(".pl-pyr img, .pl-pyr script").count() == 0
    time.sleep(1)
    assert dialogs == []

    # every tab draws
    for tab in ("Core-set coverage", "Embeddings", "Compare selectors"):
        page.get_by_role("tab", name=tab).click()
        time.sleep(0.5)
    assert page.locator("[data-testid='stPlotlyChart']").count() == 3
    page.screenshot(path=str(ARTIFACTS / "explorer-compare.png"), full_page=True)
    page.close()


def test_selector_retention_url_and_every_page(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    wait_idle(page)
    page.wait_for_selector(".pl-row", state="attached", timeout=300_000)

    # switch selector and retention, run; the address bar then holds the view
    page.get_by_role("combobox", name="Selector").click()
    page.get_by_role("option", name="Attention (PoWER-BERT significance)").click()
    thumb = page.locator("[data-testid='stSlider']").filter(has_text="Final retention").get_by_role("slider")
    thumb.focus()
    for _ in range(4):
        thumb.press("ArrowRight")  # 0.30 -> 0.50
    page.get_by_role("button", name="Run").click()
    time.sleep(1)
    wait_idle(page)
    page.wait_for_function("window.location.search.includes('selector=attention')", timeout=60_000)
    assert "retention=0.5" in page.url
    assert page.get_by_test_id("stException").count() == 0

    # a copied link reopens the same view in a new tab
    other = browser.new_page(viewport={"width": 1400, "height": 1400})
    other.goto(page.url)
    wait_idle(other)
    other.wait_for_selector(".pl-row", state="attached", timeout=300_000)
    assert "Attention" in other.get_by_role("combobox", name="Selector").input_value() or \
        "Attention" in other.locator("[data-testid='stSelectbox']").first.inner_text()
    other.close()

    # every page renders without an exception, with its charts
    ARTIFACTS.mkdir(exist_ok=True)
    for path, min_charts in (("saliency", 3), ("benchmarks", 2), ("learn", 0)):
        page.goto(f"{server}/{path}")
        wait_idle(page)
        if min_charts:
            page.wait_for_function(
                f"document.querySelectorAll(\"[data-testid='stPlotlyChart']\").length >= {min_charts}",
                timeout=300_000)
        assert page.get_by_test_id("stException").count() == 0, path
        page.screenshot(path=str(ARTIFACTS / f"{path}.png"), full_page=True)
    assert errors == []
    page.close()


def test_eight_concurrent_sessions_on_a_fresh_server():
    """8 sessions arrive together on a freshly started app, each runs its own text: each gets its own
    result, none another's, no exception (scripts/load_test.py; it also prints p50/p95 and memory)."""
    import asyncio

    from scripts.load_test import run_load, start_server, summarize

    proc, url = start_server()
    try:
        # In its own thread: the module's sync Playwright keeps an event loop in this one.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            results = pool.submit(lambda: asyncio.run(run_load(url, sessions=8, rounds=1, timeout_s=400))).result()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    s = summarize(results)
    assert s["sessions"] == 8
    assert s["all_own"], results
    assert s["cross_talk"] == 0 and s["exceptions"] == 0, results
