"""How one encoder layer's time scales with the number of tokens it sees.

Times ``pyramid.core.layers.run_layer`` (one MiniLM layer, batch 1) at the lengths the pyramid's geometric
schedule gives a 512-token text (rho = 0.3, start layer 1), interleaved, and prints the median time, the
time per token and the FLOPs per token (docs/methods.md 0.3) at each length. With ``--pad`` it also times
each length padded up to the next multiple of 16 with the pad slots masked (the additive mask the
pyramid encoder would pass). Used in the README's speed section to explain why measured speedups at batch
1 stay under the FLOPs prediction.

    python scripts/bench_layer_lengths.py [--tokens 512] [--retention 0.3] [--repeats 40] [--pad]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


from pyramid.analysis.bench import bench_encoder
from pyramid.core.layers import additive_mask, run_layer
from pyramid.core.schedule import Schedule, config_dims, layer_flops


def main() -> None:
    """Parse the options, time the layer at every length, print one row per case."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=512, help="real tokens of the text (default 512)")
    ap.add_argument("--retention", type=float, default=0.3, help="final retention of the schedule (default 0.3)")
    ap.add_argument("--repeats", type=int, default=40, help="timed rounds over every case (default 40)")
    ap.add_argument("--pad", action="store_true", help="also time each length padded to a multiple of 16")
    args = ap.parse_args()

    enc = bench_encoder("default")
    model, d = enc.model, enc.config.hidden_size
    lengths = [args.tokens] + Schedule(retention=args.retention).lengths(args.tokens, enc.num_layers)[:-1]
    cases = []  # (label, real tokens, hidden (1, n_slots, d), additive mask or None)
    for n in lengths:
        cases.append((f"{n}", n, torch.randn(1, n, d), None))
        padded = -(-n // 16) * 16
        if args.pad and padded != n:
            valid = torch.zeros(1, padded, dtype=torch.bool)
            valid[:, :n] = True
            cases.append((f"{n} padded to {padded}", n, torch.randn(1, padded, d), additive_mask(valid, torch.float32)))
    times = {label: [] for label, *_ in cases}
    with torch.inference_mode():
        for _, _, hidden, mask in cases:  # warm-up
            run_layer(model, 2, hidden, mask)
        for _ in range(args.repeats):
            for label, _, hidden, mask in cases:
                t0 = time.perf_counter()
                run_layer(model, 2, hidden, mask)
                times[label].append(time.perf_counter() - t0)
    dims = config_dims(enc.config)
    print(f"one layer of {enc.name}, batch 1, {torch.get_num_threads()} threads, median of {args.repeats} runs")
    print(f"{'case':>18}  {'ms':>7}  {'us/token':>8}  {'MFLOPs/token':>12}")
    for label, n, _, _ in cases:
        ms = statistics.median(times[label]) * 1e3
        print(f"{label:>18}  {ms:7.3f}  {ms * 1e3 / n:8.2f}  {layer_flops(n, *dims) / n / 1e6:12.2f}")


if __name__ == "__main__":
    main()
