"""Where the explorer's time goes when a user presses Run: a sampling profile of the Streamlit server.

    pip install py-spy
    python scripts/profile_app.py [--tokens 128] [--runs 5] [--tree PATH]

Starts the app of ``--tree`` (default: this checkout) on loopback, opens it in Chromium, waits for the
first answer, then samples the server with py-spy (every thread, 200 Hz) while the browser presses Run
``--runs`` times, each with a new text of about ``--tokens`` word pieces (nothing cached). Prints the
median time from the click to the idle page and the server's busy time split by what it was doing:
tokenising, the pyramid encoder traces, the sentiment predictions, coverage radii, UMAP, building
Plotly figures, Streamlit (script runner, widget and protobuf serialisation, the garbage collection
it runs after each script run), the app's own page code and the rest. A sample
counts once, for the first category found from the leaf of its stack upwards. Run it on a quiet
machine (it measures wall time).
"""

from __future__ import annotations

import argparse
import collections
import re
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from load_test import CHROMIUM, IDLE, LAUNCH_ARGS, MARKERS, start_server

CATEGORIES = [  # (name, pattern on "function (file:line)" frames), tested from the leaf upwards
    ("UMAP", re.compile(r"umap|pynndescent|projection\.py")),
    ("Plotly figures", re.compile(r"plotly|figures\.py")),
    ("coverage radii", re.compile(r"coverage")),
    ("sentiment predictions", re.compile(r"classifier\.py|predict")),
    ("pyramid encoder traces", re.compile(r"pyramid/core/(encoder|observers|layers|attention)\.py|"
                                          r"pyramid/trace\.py|pyramid/core/(selectors|routing|families)/")),
    ("tokenising", re.compile(r"tokeniz")),
    ("Streamlit serialisation (protobuf, JSON, arrow)", re.compile(r"protobuf|_pb2|json|arrow|marshall|dataframe_util")),
    ("Streamlit's gc.collect after each run (runner.postScriptGC)", re.compile(r"_on_script_finished")),
    ("Streamlit script runner and widgets", re.compile(r"streamlit/")),
    ("app pages and panels (own code)", re.compile(r"/app/\w+\.py|streamlit_app\.py")),
]


def categorise(raw: str) -> collections.Counter:
    """py-spy ``--format raw`` lines (``frame;frame;... count``, root first) -> samples per category."""
    counts: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")[::-1]  # leaf first
        name = "other"
        for frame in frames:
            hit = next((c for c, pat in CATEGORIES if pat.search(frame)), None)
            if hit:
                name = hit
                break
        counts[name] += int(n)
    return counts


def text_of_tokens(n_tokens: int) -> str:
    """Review text from the shipped examples, cut to about ``n_tokens`` word pieces."""
    import json

    from pyramid.core.loading import load_encoder

    enc = load_encoder()
    examples = json.loads((ROOT / "assets" / "examples.json").read_text(encoding="utf-8"))["examples"]
    text = " ".join([e["text"] for e in examples if len(e["text"]) > 400 and "<" not in e["text"]] * 4)
    ids = enc.tokenizer(text, add_special_tokens=False)["input_ids"][: n_tokens - 4]
    return enc.tokenizer.decode(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", default=str(ROOT), help="checkout whose streamlit_app.py to profile")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    text = text_of_tokens(args.tokens)
    server, url = start_server(Path(args.tree))
    spy = None
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.goto(url)
            page.get_by_role("button", name="Run", exact=True).wait_for(timeout=300_000)
            page.wait_for_selector(IDLE, timeout=300_000)
            time.sleep(30)  # the first answer, the UMAP warm-up thread and the caches settle
            out = Path(tempfile.mkdtemp()) / "profile.txt"
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.pid), "--rate", "200", "--format", "raw",
                                    "--output", str(out), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2)
            times = []
            for i in range(args.runs):
                marker = MARKERS[i % len(MARKERS)]
                page.get_by_role("textbox", name="Text").fill(f"{marker} {marker} {text}")
                t = time.perf_counter()
                page.get_by_role("button", name="Run", exact=True).click()
                try:  # the rerun starts, then ends
                    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='running']", timeout=5_000)
                except Exception:  # noqa: BLE001 - already over
                    pass
                page.wait_for_selector(IDLE, timeout=120_000)
                times.append(time.perf_counter() - t)
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            browser.close()
        counts = categorise(out.read_text(encoding="utf-8"))
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        server.terminate()
        server.wait(timeout=30)
    total = sum(counts.values())
    busy = total / 200.0 / args.runs
    print(f"tree {args.tree}: {args.runs} runs of ~{args.tokens} tokens; click -> idle page: median "
          f"{statistics.median(times):.2f} s (each: {', '.join(f'{t:.2f}' for t in times)})")
    print(f"server busy {busy:.2f} s per run (py-spy samples of every thread at 200 Hz), of which:")
    for name, n in counts.most_common():
        print(f"  {name:50s} {n / 200.0 / args.runs:6.2f} s  {100.0 * n / max(1, total):5.1f}%")


if __name__ == "__main__":
    main()
