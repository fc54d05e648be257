"""Time a small grid run one trial at a time in one process against the same grid on a local Ray with 2 workers,
alternately in one run, and estimate Ray's overhead per trial.

    python scripts/bench_grid.py [--rows 400] [--repeats 2]

The grid: one tiny random BERT classifier (3 layers, hidden size 32, three labels; a real checkpoint folder made
here), core-set and attention, seeds 0 and 1 (4 trials), each trial a LengthDrop ``train`` on ``--rows`` synthetic
rows and its evaluation on 120. Every measurement is a fresh ``python -m pyramid grid`` process (imports
included, as a user runs it) into a new output folder:

* ``sequential``: ``grid GRID.toml`` (one trial after the other, torch on every core);
* ``ray``: ``grid GRID.toml --ray --num-cpus 2`` (a local Ray started for the run, one CPU per trial, 2 at once);
* ``ray start/stop``: ``ray.init(num_cpus=2)`` then ``ray.shutdown()`` alone, the fixed cost of a Ray run.

Ray's overhead per trial = (ray wall time - ray start/stop - the trials' own time / 2 workers) / (trials / 2), the
trials' own time being what each trial measured inside its task (``seconds`` in its ``result.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = {"sport": ["goal", "match", "team"], "politics": ["vote", "minister", "party"],
         "weather": ["rain", "storm", "sunny"]}


def _data(path: Path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = ["text,label"]
    for i in range(n):
        y = list(WORDS)[i % 3]
        filler = " ".join(rng.choice(["the", "a", "today", "news", "and", "said"]) for _ in range(rng.randint(5, 30)))
        lines.append(f"\"{filler} {rng.choice(WORDS[y])} {filler}\",{y}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _timed(cmd: list[str]) -> float:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=str(ROOT), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed: {proc.stderr.strip()[-600:]}")
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=400, help="training rows per trial")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

    from pyramid.core.loading import default_model_path

    tmp = Path(tempfile.mkdtemp(prefix="bench-grid-"))
    labels = {i: n for i, n in enumerate(WORDS)}
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                     max_position_embeddings=512, num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(tmp / "models" / "tiny-news")
    AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(tmp / "models" / "tiny-news")
    grid = tmp / "grid.toml"
    grid.write_text(f'models = ["{tmp / "models" / "tiny-news"}"]\nselectors = ["coreset", "attention"]\n'
                    f'seeds = [0, 1]\ntrain = "{_data(tmp / "train.csv", args.rows, 0)}"\n'
                    f'dev = "{_data(tmp / "dev.csv", 120, 1)}"\ndataset = "bench"\nretentions = [1.0, 0.5, 0.3]\n'
                    'retention_range = [0.1, 0.5]\nepochs = 1\nbatch_size = 16\nmax_length = 64\n', encoding="utf-8")
    init = ("import ray; ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, "
            "_node_ip_address='127.0.0.1'); ray.shutdown()")
    walls: dict[str, list[float]] = {"sequential": [], "ray": [], "ray start/stop": []}
    own: list[float] = []
    for r in range(args.repeats):
        base = [sys.executable, "-m", "pyramid", "grid", str(grid), "--results", str(tmp / "results")]
        walls["sequential"].append(_timed(base + ["--out", str(tmp / f"seq-{r}")]))
        out = tmp / f"ray-{r}"
        walls["ray"].append(_timed(base + ["--ray", "--num-cpus", "2", "--out", str(out)]))
        own.append(sum(json.loads(p.read_text())["seconds"] for p in out.glob("trials/*/result.json")))
        walls["ray start/stop"].append(_timed([sys.executable, "-c", init]))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in walls.items())
              + f"; trials' own time on Ray {own[-1]:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    per_trial = (med["ray"] - med["ray start/stop"] - statistics.median(own) / 2) / 2
    print(f"\n4 trials ({args.rows} rows each), medians over {args.repeats} rounds, alternating:")
    print(f"  sequential (one process) {med['sequential']:.1f} s")
    print(f"  local Ray, 2 workers     {med['ray']:.1f} s ({med['ray'] / med['sequential']:.2f}x sequential; "
          "target <= 1.10x)")
    print(f"  Ray start and stop       {med['ray start/stop']:.1f} s")
    print(f"  Ray overhead per trial   {per_trial:.1f} s (target <= 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
