"""Server memory under a class's worth of distinct texts (issue 31): resident memory every 25 Runs.

    python scripts/soak.py [--runs 300] [--tokens 512] [--embeddings-every 3]

Starts ``streamlit run`` on a free loopback port, opens one Chromium page, and presses Run ``--runs`` times,
each with a different ~``--tokens``-token text (real reviews, shuffled with the run's number), opening the
Embeddings tab (UMAP) on every ``--embeddings-every``-th Run. Prints the server's resident memory (RSS) at
the start, after the first Embeddings view (UMAP loaded) and every 25 Runs (``PYRAMID_LENS_CACHE_MB`` bounds
the traces and projections the server keeps); then clears the caches through Streamlit's menu (the "Clear
caches" command, which also drops the models) and prints the memory once more, 5 s later. Run it on a quiet
machine.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import psutil

from load_test import CHROMIUM, IDLE, LAUNCH_ARGS, MARKERS, ROOT, start_server


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1e6


def texts(n: int, tokens: int) -> list[str]:
    examples = json.loads((ROOT / "assets" / "examples.json").read_text(encoding="utf-8"))["examples"]
    words = " ".join(e["text"] for e in examples).split()
    out = []
    for i in range(n):
        rng = random.Random(i)
        pick = [words[rng.randrange(len(words))] for _ in range(int(tokens * 0.72))]
        out.append(f"{MARKERS[i % len(MARKERS)]} {' '.join(pick)}")
    return out


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--embeddings-every", type=int, default=3)
    args = parser.parse_args()
    proc, url = start_server()
    t0 = time.perf_counter()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1400})
            page.goto(url)
            page.wait_for_selector(".pl-row", state="attached", timeout=300_000)
            page.wait_for_selector(IDLE, timeout=300_000)
            print(f"start (model loaded, one Run answered): {rss_mb(proc.pid):.0f} MB", flush=True)
            for i, text in enumerate(texts(args.runs, args.tokens), start=1):
                page.get_by_role("textbox", name="Text").fill(text)
                page.get_by_role("button", name="Run", exact=True).click()
                time.sleep(0.3)
                page.wait_for_selector(IDLE, timeout=300_000)
                if i % args.embeddings_every == 0:
                    page.get_by_role("tab", name="Embeddings").click()
                    time.sleep(0.3)
                    page.wait_for_selector(IDLE, timeout=300_000)
                    page.get_by_role("tab", name="Kept tokens per layer").click()
                    time.sleep(0.2)
                    page.wait_for_selector(IDLE, timeout=300_000)
                if i == args.embeddings_every:
                    print(f"after the first Embeddings view (UMAP loaded): {rss_mb(proc.pid):.0f} MB", flush=True)
                if i % 25 == 0:
                    print(f"after {i:3d} Runs ({time.perf_counter() - t0:5.0f} s): {rss_mb(proc.pid):.0f} MB", flush=True)
            page.keyboard.press("c")  # Streamlit's "Clear caches" command
            page.get_by_role("button", name="Clear caches").click()
            time.sleep(5)
            print(f"after clearing the caches (5 s later): {rss_mb(proc.pid):.0f} MB")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
