"""Benchmark of the explorer's computations on the default model (prints figures; not a test).

    python scripts/bench_explorer.py [--repeats 10]

Measures, warm, on this machine's CPU threads:
1. a full trace of a 128-token text for the explorer: every selector's trace with hidden states,
   coverage radii and per-token coverage, plus the comparison (all four panels' data except UMAP);
2. core-set selection time as a share of the encoder's time at 512 tokens (batch 1 and 8);
3. the UMAP projection of a trace after warm-up (128 and 512 tokens).
Medians over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from pyramid.bench import median_seconds  # noqa: E402
from pyramid.encoder import PyramidEncoder  # noqa: E402
from pyramid.loading import load_encoder  # noqa: E402
from pyramid.projection import project_trace, warm_up  # noqa: E402
from pyramid.schedule import Schedule  # noqa: E402
from pyramid.selectors import SELECTORS, get_selector  # noqa: E402

FIXED = [n for n, c in SELECTORS.items() if c.fixed_length]  # the explorer runs AdapLeR on the head's encoder
from pyramid.trace import compare_traces, tokenize, trace_text  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "imdb" / "dev.csv"


def text_of_tokens(encoder, n_tokens: int) -> str:
    """A real review cut to exactly ``n_tokens`` tokens ([CLS]/[SEP] included)."""
    import csv

    with open(os.environ.get("PYRAMID_LENS_IMDB", DATA), encoding="utf-8") as fh:
        reviews = [r["review"] for r in csv.DictReader(fh)]
    text = " ".join(reviews)
    ids = encoder.tokenizer(text, add_special_tokens=False)["input_ids"][: n_tokens - 2]
    return encoder.tokenizer.decode(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    from pyramid.loading import quiet_transformers

    quiet_transformers()
    enc = load_encoder()
    print(f"model {enc.name}: {enc.num_layers} layers, torch {torch.__version__}, {torch.get_num_threads()} threads")

    # 1. the explorer's data for a 128-token text
    text = text_of_tokens(enc, 128)
    tok = tokenize(enc, text)
    sch = Schedule(retention=0.3, start_layer=1)

    def explorer_data():
        traces = {name: trace_text(enc, text, name, sch, tokenized=tok) for name in FIXED}
        compare_traces(traces["coreset"], traces["attention"])
        return traces

    t = median_seconds(explorer_data, args.repeats)
    print(f"\n[1] explorer data, {len(tok.input_ids)} tokens, rho=0.3, the {len(FIXED)} fixed-length selectors "
          f"(traces, coverage, comparison): median {t * 1000:.0f} ms (target < 300 ms)")
    t1 = median_seconds(lambda: trace_text(enc, text, "coreset", sch, tokenized=tok), args.repeats)
    print(f"    one core-set trace alone: median {t1 * 1000:.0f} ms")

    # 2. core-set selection share at 512 tokens
    print("\n[2] core-set selection time / encoder time at 512 tokens (pyramid forward, no coverage):")
    text512 = text_of_tokens(enc, 512)
    for batch in (1, 8):
        for rho in (0.5, 0.3, 0.1):
            b = enc.tokenizer([text512] * batch, return_tensors="pt", truncation=True, max_length=512)
            pyr = PyramidEncoder(enc, get_selector("coreset"), Schedule(retention=rho))
            shares, sel_ms, enc_ms = [], [], []
            with torch.inference_mode():
                pyr(b["input_ids"], b["attention_mask"])
                for _ in range(args.repeats):
                    out = pyr(b["input_ids"], b["attention_mask"])
                    s = sum(lo.selection_seconds for lo in out.layers)
                    e = sum(lo.layer_seconds for lo in out.layers)
                    shares.append(s / e)
                    sel_ms.append(s * 1000)
                    enc_ms.append(e * 1000)
            print(f"    batch {batch:2d}, rho={rho}: selection {statistics.median(sel_ms):6.1f} ms, "
                  f"encoder layers {statistics.median(enc_ms):7.1f} ms, share {statistics.median(shares) * 100:4.1f}% "
                  f"(target < 10%)")

    # 3. UMAP after warm-up
    t0 = time.perf_counter()
    warm_up()
    print(f"\n[3] UMAP warm-up (once per process, in the background in the app): {time.perf_counter() - t0:.1f} s")
    for n, txt in ((128, text), (512, text512)):
        tr = trace_text(enc, txt, "coreset", sch)
        points = tr.n_tokens + sum(tr.alive_counts())
        t = median_seconds(lambda: project_trace(tr), max(3, args.repeats // 3))
        print(f"    {n} tokens ({points} points over 7 layers): median {t:.2f} s (target < 2 s)")


if __name__ == "__main__":
    main()
