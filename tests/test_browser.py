"""The app in a real browser: Playwright driving Debian's Chromium against `streamlit run`.

Skipped when /usr/bin/chromium is missing (``.ci/run`` installs it). A screenshot of the page is
saved to ``test-artifacts/`` for a person to look at.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from scripts.load_test import CHROMIUM, LAUNCH_ARGS

ROOT = Path(__file__).resolve().parent.parent

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


def run_and_wait(page):
    page.get_by_role("button", name="Run", exact=True).click()
    time.sleep(1)
    wait_idle(page)


def open_tab(page, name):
    page.get_by_role("tab", name=name).click()
    time.sleep(1)
    wait_idle(page)


def long_review() -> str:
    """A real IMDB review of ~500 word pieces, read from ../shared/data at test time (never copied here)."""
    import csv

    path = ROOT.parent / "shared" / "data" / "imdb" / "dev.csv"
    if not path.is_file():
        pytest.skip("../shared/data/imdb/dev.csv is not present")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return rows[137]["review"].replace("<br />", " ")  # 495 word pieces


def test_explorer_in_a_real_browser(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(server)
    wait_idle(page)
    page.wait_for_selector(".pl-strip-cols", state="attached", timeout=300_000)
    assert page.get_by_test_id("stException").count() == 0
    assert page.locator(".pl-row").count() >= 6
    assert page.get_by_test_id("stPlotlyChart").count() == 0  # the first page needs no chart library
    columns = page.evaluate("""() => [...document.querySelectorAll('.pl-strip-cols')[0].children]
        .map(c => [c.getBoundingClientRect().width, c.getBoundingClientRect().height, c.title])""")
    assert len(columns) > 10 and all(w > 1 and h > 90 for w, h, _ in columns)  # the strip is drawn, not stripped
    assert columns[0][2].startswith("#0 [CLS]: layers 1-6 kept")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)

    # a hostile text appears as text and never runs
    hostile = "<img src=x onerror=alert(1)> <script>alert(2)</script> a fine film"
    page.get_by_role("textbox", name="Text").fill(hostile)
    run_and_wait(page)
    page.wait_for_function("document.querySelectorAll('.pl-row').length >= 6")
    assert page.get_by_test_id("stException").count() == 0
    pyramid = page.locator(".pl-pyr").first.inner_text()
    assert "script" in pyramid and "<" in pyramid
    assert page.locator(".pl-pyr img, .pl-pyr script").count() == 0
    time.sleep(1)
    assert dialogs == []

    # every tab draws
    for tab, name in (("Coverage radius", "coverage"), ("Embeddings", "embeddings"), ("Compare", "compare")):
        open_tab(page, tab)
        page.wait_for_selector("[data-testid='stPlotlyChart']", state="attached", timeout=300_000)
        assert page.get_by_test_id("stException").count() == 0, tab
        page.screenshot(path=str(ARTIFACTS / f"explorer-{name}.png"), full_page=True)
    page.close()


def test_a_500_token_review_fits_the_panel(server, browser):
    """The pyramid of a 500-token review fits the panel's width (no 20,000 px rows); so do the compared
    pyramids, stacked; word view too."""
    text = long_review()
    page = browser.new_page(viewport={"width": 1400, "height": 3200})
    page.goto(server)
    wait_idle(page)
    page.wait_for_selector(".pl-row", state="attached", timeout=300_000)
    page.get_by_role("textbox", name="Text").fill(text)
    run_and_wait(page)
    page.wait_for_function("document.querySelectorAll('.pl-row').length >= 6")
    fits = page.evaluate("""() => [...document.querySelectorAll('.pl-pyr')].map(e => {
        const panel = e.closest('[data-testid="stVerticalBlock"]') || e.parentElement;
        return {scroll: e.scrollWidth, client: e.clientWidth, panel: panel.clientWidth,
                right: e.getBoundingClientRect().right, viewport: window.innerWidth};
    })""")
    assert fits, "no pyramid drawn"
    for f in fits:
        assert f["scroll"] <= f["client"] + 1, f  # nothing hidden to the right
        assert f["right"] <= f["viewport"], f
    strips = page.evaluate("""() => [...document.querySelectorAll(".pl-strip-cols")]
        .map(e => {const r = e.getBoundingClientRect(); return [r.right, r.width];})""")
    assert strips and max(r for r, _ in strips) <= 1400 and min(w for _, w in strips) > 600  # fits, and fills
    page.get_by_text("Zoomable strip").click()  # the strip as a chart to drag on
    page.wait_for_selector("[data-testid='stPlotlyChart']", state="attached", timeout=60_000)
    wait_idle(page)
    charts = page.evaluate("""() => [...document.querySelectorAll("[data-testid='stPlotlyChart']")]
        .map(e => e.getBoundingClientRect().right)""")
    assert charts and max(charts) <= 1400
    page.get_by_text("Zoomable strip").click()
    wait_idle(page)
    page.screenshot(path=str(ARTIFACTS / "explorer-500-tokens.png"), full_page=True)
    page.get_by_text("Words, not word pieces").click()
    time.sleep(1)
    wait_idle(page)
    assert page.get_by_test_id("stException").count() == 0
    page.screenshot(path=str(ARTIFACTS / "explorer-500-words.png"), full_page=True)
    open_tab(page, "Compare")
    page.wait_for_selector("[data-testid='stPlotlyChart']", state="attached", timeout=60_000)
    boxes = page.evaluate("""() => [...document.querySelectorAll(".pl-strip-cols")]
        .map(e => {const r = e.getBoundingClientRect(); return [r.left, r.right, r.top];})""")
    assert len(boxes) == 2 and page.get_by_test_id("stPlotlyChart").count() == 1  # the overlap chart, both strips
    assert boxes[0][2] < boxes[1][2] and abs(boxes[0][0] - boxes[1][0]) < 2  # stacked, not side by side
    page.screenshot(path=str(ARTIFACTS / "explorer-500-compare.png"), full_page=True)
    open_tab(page, "Kept tokens per layer")

    # the Saliency page starts from this text, and its matrices print readable numbers
    page.get_by_role("link", name="Saliency").click()
    time.sleep(1)
    wait_idle(page)
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stPlotlyChart']\").length >= 3",
                           timeout=300_000)
    assert text[:40] in page.get_by_role("textbox", name="Text").input_value()
    overlaps = page.evaluate("""() => {
        const charts = [...document.querySelectorAll("[data-testid='stPlotlyChart']")].slice(1, 3);
        let bad = 0, seen = 0, pairs = [];
        for (const c of charts) {
            const els = [...c.querySelectorAll('text')].filter(t => t.textContent.trim() && t.getBoundingClientRect().width > 0);
            const texts = els.map(t => t.textContent);
            const boxes = els.map(t => t.getBoundingClientRect());
            seen += boxes.length;
            for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
                const a = boxes[i], b = boxes[j];
                const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
                const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
                if (w > 1 && h > 1) { bad++; if (pairs.length < 5) pairs.push([texts[i], texts[j]]); }
            }
        }
        return {bad, seen, pairs};
    }""")
    page.screenshot(path=str(ARTIFACTS / "saliency-500-tokens.png"), full_page=True)
    assert overlaps["seen"] > 20 and overlaps["bad"] == 0, overlaps
    page.close()


def test_text_and_results_agree_after_a_page_change(server, browser):
    """Leave the explorer and come back: the text box still shows the text the results describe."""
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(server)
    wait_idle(page)
    page.wait_for_selector(".pl-row", state="attached", timeout=300_000)
    mine = "a tender , funny and quietly devastating film about a lighthouse keeper ."
    page.get_by_role("textbox", name="Text").fill(mine)
    run_and_wait(page)
    page.wait_for_function("document.querySelector('.pl-pyr').innerText.includes('lighthouse')", timeout=120_000)
    for name in ("Benchmarks", "Explorer"):
        page.get_by_role("link", name=name).click()
        time.sleep(1)
        wait_idle(page)
    page.wait_for_selector(".pl-row", state="attached", timeout=300_000)
    assert page.get_by_role("textbox", name="Text").input_value() == mine
    assert "lighthouse" in page.locator(".pl-pyr").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "explorer-after-page-change.png"), full_page=True)
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
    run_and_wait(page)
    page.wait_for_function("window.location.search.includes('selector=attention')", timeout=60_000)
    assert "retention=0.5" in page.url
    assert page.get_by_test_id("stException").count() == 0

    # a copied link reopens the same view in a new tab
    other = browser.new_page(viewport={"width": 1400, "height": 1400})
    other.goto(page.url)
    wait_idle(other)
    other.wait_for_selector(".pl-row", state="attached", timeout=300_000)
    box = other.locator("[data-testid='stSelectbox']").filter(has_text="Selector").first
    shown = box.inner_text() + " " + " ".join(box.locator("input").evaluate_all("els => els.map(e => e.value)"))
    assert "Attention" in shown
    other.close()

    # every page renders without an exception, with its charts
    ARTIFACTS.mkdir(exist_ok=True)
    for path, min_charts in (("saliency", 3), ("benchmarks", 1), ("learn", 0)):
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
            cpu: dict = {}
            results = pool.submit(lambda: asyncio.run(run_load(url, sessions=8, rounds=1, timeout_s=400,
                                                               server_pid=proc.pid, cpu=cpu))).result()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    s = summarize(results)
    assert s["sessions"] == 8
    assert s["all_own"], results
    assert s["cross_talk"] == 0 and s["exceptions"] == 0, results
    # the server's own answer time is part of the browser's Run-to-result time
    assert all(0 < r["server_seconds"] <= r["seconds"] + 0.5 for r in results), results
    # where the CPU went while the 8 Runs were answered: both the server and the 8 pages worked, and
    # together they cannot have used more than the machine's cores for that long
    assert cpu["wall_s"] >= max(r["seconds"] for r in results) - 0.5
    assert cpu["server_s"] > 0.1 and cpu["browser_s"] > 0.1, cpu
    assert cpu["server_s"] + cpu["browser_s"] <= (os.cpu_count() or 1) * cpu["wall_s"] * 1.1, cpu
