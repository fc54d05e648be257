"""Speed of evaluation on long documents, measured and printed next to each target (not a test).

    python scripts/bench_evaluate.py [--model ~/.cache/pyramid-lens/models/minilm-bbc-news]
                                     [--data ../shared/data/bbc/dev.csv] [--repeats 3] [--skip browser]
                                     [--browser-nice 19]

1. On BBC dev, batch 16, length-sorted batches (what ``evaluate`` runs): the pyramid at retention 1.0 against
   ``AutoModelForSequenceClassification`` on the same batches (target: within 5%, i.e. no overhead of our
   own), and at retention 0.3 (core-set) the measured speedup over the full model against the FLOPs
   prediction (target >= 0.9); full and pyramid alternate batch by batch, median of ``--repeats`` rounds.
2. A sweep of 4 selectors x 4 retentions (1.0, 0.5, 0.3, 0.1) over BBC dev: examples per second of
   ``evaluate`` (the command line's code, in process, the model loaded) and of the Evaluate page in Chromium
   (a fresh server; the rate the page reports for its background sweep); target: within 10%. It also prints the
   CPU seconds of the server and of Chromium during the sweep: here the browser shares the server's 2 cores
   (its progress bar redraws every second); ``--browser-nice 19`` lowers its priority, as if it ran on the
   user's own machine.

Run it on a quiet machine (wall times).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = Path.home() / ".cache" / "pyramid-lens" / "models" / "minilm-bbc-news"
SELECTORS = ["coreset", "attention", "random", "first-k"]
RETENTIONS = [1.0, 0.5, 0.3, 0.1]


def verdict(value: float, target: float, at_most: bool = True) -> str:
    ok = value <= target if at_most else value >= target
    return f"target {'<=' if at_most else '>='} {target:g}: {'met' if ok else 'MISSED'}"


def batches_speed(model, data, repeats: int) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    from pyramid.batching import encode_texts, length_sorted_batches, pad_id_of
    from pyramid.analysis.evaluation import example_speedups
    from pyramid.core.schedule import Schedule
    from pyramid.core.selectors import full_length_selector, get_selector

    clf = model.classifier(model.inference_head)
    ref = AutoModelForSequenceClassification.from_pretrained(model.encoder.path, use_safetensors=True).eval()
    ids = encode_texts(clf.encoder, data.texts)
    batches = list(length_sorted_batches(ids, 16, pad_id_of(clf.encoder)))
    full_sel, core = full_length_selector(), get_selector("coreset")
    one, third = Schedule(retention=1.0), Schedule(retention=0.3)
    print(f"\n[1] {len(data)} texts ({sum(map(len, ids)) / len(ids):.0f} tokens on average), {len(batches)} batches of 16:")
    rounds = {"auto": [], "pyramid 1.0": [], "pyramid 0.3": []}
    speedups = []
    with torch.inference_mode():
        for b in batches[:2]:  # warm-up
            ref(input_ids=b.input_ids, attention_mask=b.attention_mask)
            clf.predict(b.input_ids, b.attention_mask, core, third)
        for _ in range(repeats):
            t = {k: 0.0 for k in rounds}
            for b in batches:
                t0 = time.perf_counter()
                ref(input_ids=b.input_ids, attention_mask=b.attention_mask)
                t1 = time.perf_counter()
                clf.predict(b.input_ids, b.attention_mask, full_sel, one)
                t2 = time.perf_counter()
                _, out = clf.predict(b.input_ids, b.attention_mask, core, third)
                t3 = time.perf_counter()
                t["auto"] += t1 - t0
                t["pyramid 1.0"] += t2 - t1
                t["pyramid 0.3"] += t3 - t2
                if len(speedups) < len(data):
                    speedups += example_speedups(out, clf.encoder.config)[0].tolist()
            for k in rounds:
                rounds[k].append(t[k])
    med = {k: statistics.median(v) for k, v in rounds.items()}
    overhead = med["pyramid 1.0"] / med["auto"]
    flops = statistics.mean(speedups)
    measured = med["auto"] / med["pyramid 0.3"]
    print(f"    AutoModelForSequenceClassification {med['auto']:.2f} s, the pyramid at retention 1.0 "
          f"{med['pyramid 1.0']:.2f} s: ratio {overhead:.3f} ({verdict(overhead, 1.05)})")
    print(f"    core-set at retention 0.3: {med['pyramid 0.3']:.2f} s, measured speedup {measured:.2f}x against the FLOPs "
          f"prediction {flops:.2f}x: measured / FLOPs {measured / flops:.2f} ({verdict(measured / flops, 0.9, False)})")


def cli_rate(model, data) -> float:
    from pyramid.analysis.evaluation import evaluate
    from pyramid.core.selectors import get_selector

    clf = model.classifier(model.inference_head)
    sels = [get_selector(s) for s in SELECTORS]
    passes = len(data) * (1 + len(SELECTORS) * (len(RETENTIONS) - 1))
    t0, c0 = time.perf_counter(), time.process_time()
    evaluate(clf, data, sels, RETENTIONS, batch_size=16, progress=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    rate = passes / seconds
    print(f"\n[2] evaluate, {len(SELECTORS)} selectors x {len(RETENTIONS)} retentions: {passes} example passes in "
          f"{seconds:.1f} s, {rate:.1f} examples/s ({cpu:.1f} CPU s)")
    return rate


def browser_rate(model_dir: Path, data_file: Path, browser_nice: int = 0) -> float:
    import psutil
    from playwright.sync_api import sync_playwright

    from load_test import CHROMIUM, IDLE, LAUNCH_ARGS, browser_processes, cpu_seconds, lower_priority, start_server

    env = {"PYRAMID_LENS_MODEL_ROOT": str(model_dir.parent), "PYRAMID_LENS_DATA_ROOT": str(data_file.parent.parent)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    proc, url = start_server()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"{url}/evaluate")
            page.wait_for_selector(IDLE, timeout=300_000)
            page.get_by_test_id("stSidebar").get_by_role("combobox").first.click()
            page.get_by_role("option", name=model_dir.name).click()
            page.wait_for_selector(IDLE, timeout=300_000)
            page.get_by_text("A data set on this server").click()
            page.wait_for_selector(IDLE, timeout=120_000)
            page.get_by_test_id("stSelectbox").filter(has_text="Data set").get_by_role("combobox").click()
            page.get_by_role("option", name=f"{data_file.parent.name}/{data_file.name}").click()
            page.wait_for_selector(IDLE, timeout=120_000)
            # the page's defaults are the sweep measured in process: the four fixed-schedule selectors, retentions
            # 0.5, 0.3 and 0.1 (1.0 always added), the inference-only regime
            browsers, server = browser_processes(), [psutil.Process(proc.pid)]
            if browser_nice:
                lower_priority(browsers, browser_nice)
            before = time.perf_counter(), cpu_seconds(server), cpu_seconds(browsers)
            page.get_by_role("button", name="Run the sweep").click()
            page.wait_for_function("() => document.body.innerText.includes('examples/s); model')", timeout=1_800_000)
            after = time.perf_counter(), cpu_seconds(server), cpu_seconds(browsers)
            text = page.inner_text("body")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    m = re.search(r"([\d,]+) example passes in ([\d.]+) s \(([\d.]+) examples/s\)", text)
    rate = float(m.group(3))
    wall, server_s, browser_s = (a - b for a, b in zip(after, before))
    print(f"    the Evaluate page in Chromium: {m.group(1)} example passes in {m.group(2)} s, {rate:.1f} examples/s")
    print(f"    from the press to the results: {wall:.1f} s wall ({os.cpu_count()} cores); server {server_s:.1f} CPU s, "
          f"browser {browser_s:.1f} CPU s (at nice {browser_nice})")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "bbc" / "dev.csv"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated: batches,sweep,browser")
    parser.add_argument("--browser-nice", type=int, default=0,
                        help="CPU priority (nice, 0-19) of Chromium during the sweep; 19 approximates a browser on the "
                             "user's own machine (here it shares the server's 2 cores)")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    from pyramid.api import Model
    from pyramid.data import read_labelled
    from pyramid.core.loading import quiet_transformers

    quiet_transformers()
    model = Model.load(args.model)
    data = read_labelled(args.data, label_names=model.classifier(model.inference_head).labels)
    if "batches" not in skip:
        batches_speed(model, data, args.repeats)
    cli = cli_rate(model, data) if "sweep" not in skip else None
    if "browser" not in skip:
        if cli is None:
            print("\n[2] the in-process sweep skipped (--skip sweep): the page's rate alone")
        page = browser_rate(Path(args.model).expanduser(), Path(args.data), args.browser_nice)
        if cli is not None:
            print(f"    page / command line: {page / cli:.2f} (|difference| {abs(page / cli - 1):.2f}, "
                  f"{verdict(abs(page / cli - 1), 0.10)})")


if __name__ == "__main__":
    main()
