"""The pyramid encoder's forward time, old code against new, alternating in one run (issue 41's "within noise").

    python scripts/bench_old_new.py --old DIR [--rounds 3] [--repeats 7]

``DIR`` is a checkout of the old code (``git worktree add /tmp/old COMMIT``). Each round runs one subprocess on
the old checkout, then one on this one; each times ``PyramidEncoder.forward`` for every selector in the
inference-only regime on the default model (the encoder its plan runs on), at 128 tokens (batch 8) and 512 tokens
(batch 1), retention 0.3, median of ``repeats`` runs after one warm-up, in ``torch.inference_mode``. Prints, per
setting, the median over rounds of each side's time and the ratio new / old (1.00 = the same), and the ratio of
the medians' geometric mean. Rounds alternate so that drifts of a shared machine hit both sides alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import json, statistics, sys, time
import torch
torch.manual_seed(0)
from pyramid.api import Model
try:
    from pyramid.core.encoder import PyramidEncoder
    from pyramid.core.schedule import Schedule
    from pyramid.core.selectors import SELECTORS
except ImportError:  # the layout before issue 41
    from pyramid.encoder import PyramidEncoder
    from pyramid.schedule import Schedule
    from pyramid.selectors import SELECTORS
repeats = int(sys.argv[1])
model = Model.load()
text = open(sys.argv[2], encoding="utf-8").read()
out = {}
for name in SELECTORS:
    sel, clf, runs_on, _ = model._resolve(name, "inference", None)
    enc = (clf or runs_on).encoder if (clf or runs_on) is not None else model.encoder
    for n, b in ((128, 8), (512, 1)):
        ids = enc.tokenizer([text] * b, truncation=True, max_length=n, return_tensors="pt")
        pyr = PyramidEncoder(enc, sel, Schedule(retention=0.3))
        times = []
        with torch.inference_mode():
            for i in range(repeats + 1):
                t0 = time.perf_counter()
                pyr(ids["input_ids"], ids["attention_mask"])
                if i:
                    times.append(time.perf_counter() - t0)
        out[f"{name} n={n} b={b}"] = statistics.median(times) * 1000
print(json.dumps(out))
'''


def run_side(checkout: Path, repeats: int, text_file: str) -> dict:
    """One subprocess on ``checkout``'s code: ``{"<selector> n=<tokens> b=<batch>": median ms}``. Exits with the
    child's error when it fails."""
    env = dict(os.environ, PYTHONPATH=str(checkout), TRANSFORMERS_VERBOSITY="error", HF_HUB_OFFLINE="1")
    res = subprocess.run([sys.executable, "-c", CHILD, str(repeats), text_file], cwd=checkout, env=env,
                         capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise SystemExit(f"{checkout}: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    """Alternate old and new rounds, then print the table and the geometric mean of new / old."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, type=Path, help="a checkout of the old code")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import pandas as pd

    text = " ".join(pd.read_csv(ROOT.parent / "shared" / "data" / "imdb" / "dev.csv").iloc[:6, 0])
    text_file = "/tmp/bench_old_new.txt"
    Path(text_file).write_text(text, encoding="utf-8")
    old, new = [], []
    for r in range(args.rounds):
        old.append(run_side(args.old.resolve(), args.repeats, text_file))
        new.append(run_side(ROOT, args.repeats, text_file))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{'setting':<34} {'old ms':>9} {'new ms':>9} {'new/old':>8}")
    ratios = []
    for key in new[0]:
        o = statistics.median(x[key] for x in old)
        n = statistics.median(x[key] for x in new)
        ratios.append(n / o)
        print(f"{key:<34} {o:9.2f} {n:9.2f} {n / o:8.3f}")
    geo = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
    print(f"geometric mean of new/old over {len(ratios)} settings: {geo:.3f} (min {min(ratios):.3f}, "
          f"max {max(ratios):.3f}); {args.rounds} alternating rounds, each side's median of {args.repeats} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
