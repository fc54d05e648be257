"""Compare the app from two checkouts in one run: old and new timed alternately, on the same machine at the same time.

Machine speed varies up to 3x between days (README "Speed"), so a change to the app is judged against the code
before it in one run. Usage, with the old code in a worktree (``git worktree add --detach ../old HEAD~1``)::

    python scripts/ab_app.py ../old . [--rounds 5] [--cold 4]

It starts one server per checkout (``streamlit run``, loopback, a free port) and opens each in the same Chromium,
then, with the browser at the server's priority and again at nice 19, Runs a new text of ~128 and ~512 tokens on
each server in turn (the order alternates between rounds), and prints for each checkout the medians of Run ->
every panel drawn and of the page's "Answered in", beside the same computations made in this process
(``bench_explorer.in_process_run``). Then it times cold starts (server start -> first answered page), alternating
the checkouts, each with a fresh browser (no cached frontend code, as a first visitor). Both servers use the model
cache and settings of this machine. Figures are seconds of wall time; nothing is written.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_explorer import _run_in_browser, in_process_run, text_of_tokens  # noqa: E402
from load_test import (CHROMIUM, IDLE, LAUNCH_ARGS, MARKERS, browser_processes, lower_priority,  # noqa: E402
                       start_server)


def runs(roots: dict[str, Path], rounds: int) -> None:
    """Runs on both servers, alternating, at 128 and 512 tokens, with the browser at nice 0 and then 19."""
    from playwright.sync_api import sync_playwright

    import pyramid

    model = pyramid.load()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        servers, pages = {}, {}
        try:
            for arm, root in roots.items():
                servers[arm] = start_server(root)
                page = browser.new_page(viewport={"width": 1400, "height": 1400})
                page.goto(servers[arm][1])
                page.wait_for_selector(".pl-row", state="attached", timeout=300_000)
                page.wait_for_selector(IDLE, timeout=300_000)
                pages[arm] = page
            time.sleep(15)  # UMAP's background warm-up after each server's first answer
            for nice in (0, 19):
                if nice:
                    lower_priority(browser_processes(), nice)
                for n in (128, 512):
                    text = text_of_tokens(model.encoder, n - 2)
                    for arm in pages:
                        _run_in_browser(pages[arm], f"warm{nice} {text}", MARKERS[0])
                    res: dict[str, list] = {arm: [] for arm in pages}
                    ref = []
                    for i in range(rounds):
                        ref.append(in_process_run(model, f"ref{i}{nice} {text}"))
                        order = list(pages) if i % 2 == 0 else list(pages)[::-1]
                        for j, arm in enumerate(order):
                            pages[arm].bring_to_front()
                            marker = MARKERS[(2 * i + j + n + nice) % len(MARKERS)]
                            res[arm].append(_run_in_browser(pages[arm], f"{marker}{i}{arm}{nice} {text}", marker))
                    print(f"browser at nice {nice:2d}, {n} tokens, medians of {rounds}: the same computations in "
                          f"process {1000 * statistics.median(ref):.0f} ms", flush=True)
                    for arm, rows in res.items():
                        print(f"    {arm:>4}: every panel drawn {1000 * statistics.median(d for d, _ in rows):4.0f} ms, "
                              f"'Answered in' {1000 * statistics.median(a for _, a in rows):4.0f} ms", flush=True)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)
            browser.close()


def cold_starts(roots: dict[str, Path], rounds: int) -> None:
    """Server start -> first answered page, alternating the checkouts, a fresh browser each time."""
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {arm: [] for arm in roots}
    with sync_playwright() as p:
        for i in range(rounds):
            for arm in (list(roots) if i % 2 == 0 else list(roots)[::-1]):
                browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1400})
                page.goto("about:blank")
                t0 = time.perf_counter()
                proc, url = start_server(roots[arm])
                try:
                    page.goto(url)
                    page.wait_for_selector(".pl-row", state="attached", timeout=300_000)
                    page.wait_for_selector(IDLE, timeout=300_000)
                    times[arm].append(time.perf_counter() - t0)
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                    browser.close()
                time.sleep(2)
    print(f"cold start (server start -> first answered page, a fresh browser each time), {rounds} each:")
    for arm, values in times.items():
        print(f"    {arm:>4}: {', '.join(f'{v:.2f}' for v in values)} s (median {statistics.median(values):.2f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", type=Path, help="checkout of the code before the change")
    ap.add_argument("new", type=Path, help="checkout of the code after it")
    ap.add_argument("--rounds", type=int, default=5, help="Runs per checkout, text length and browser priority")
    ap.add_argument("--cold", type=int, default=4, help="cold starts per checkout (0: none)")
    args = ap.parse_args()
    roots = {"old": args.old.resolve(), "new": args.new.resolve()}
    for arm, root in roots.items():
        if not (root / "streamlit_app.py").is_file():
            ap.error(f"{arm}: {root} has no streamlit_app.py")
    print(f"old: {roots['old']}\nnew: {roots['new']}")
    if args.rounds:
        runs(roots, args.rounds)
    if args.cold:
        cold_starts(roots, args.cold)


if __name__ == "__main__":
    main()
