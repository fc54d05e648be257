"""Time a Train-Select training step: the default model's head against a classifier checkpoint's (the generic
step of ``train --model CHECKPOINT``), and optionally against an earlier checkout's trainer, alternately in one run.

    python scripts/bench_train_step.py [--old DIR] [--steps 10] [--batch-size 32] [--repeats 3]

Each measurement is one ``python -m pyramid train --selector coreset --retention-range 0.1,0.5`` process on the
first ``steps * batch-size`` shuffled rows of SST-2 train (no dev evaluation): the step time is the run's recorded
``train_seconds`` divided by its steps (loading and saving excluded); the peak memory is the process's peak
resident set (``ru_maxrss``, the model's load included, the same for every variant). Variants:

* ``head``: the default model with the project's LoRA head (``sst2-lora-ts-coreset``'s recipe), this checkout;
* ``checkpoint``: a ``BertForSequenceClassification`` made from the default model (its own fresh head, two labels)
  and saved to a temporary model cache, trained with ``--model`` (the generic step), this checkout;
* ``old``: ``head`` with the code of ``--old DIR`` (a checkout of an earlier commit, e.g. from ``git worktree add``).

The variants run in turn, ``--repeats`` rounds; the script prints each variant's median step time and peak memory,
and the ratios to ``head`` (or to ``old`` with ``--old``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRAP = ("import resource, sys, runpy; sys.argv = ['pyramid'] + sys.argv[1:]\ncode = 0\n"
        "try:\n    runpy.run_module('pyramid', run_name='__main__')\nexcept SystemExit as exc:\n    code = exc.code or 0\n"
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(code)")


def _run(code_dir: Path, args: list[str], out: Path) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    proc = subprocess.run([sys.executable, "-c", WRAP, *args, "--out", str(out), "--quiet"], cwd=str(ROOT), env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(args)} failed: {proc.stderr.strip()[-400:]}")
    peak = next(float(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_KB"))
    record = out / "train_select.json"
    training = (json.loads(record.read_text())["training"] if record.is_file()
                else json.loads((out / "head_config.json").read_text())["training"])
    return training["train_seconds"] / training["steps"], peak / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", default=None, help="a checkout of the earlier code to compare with")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default="../shared/data/sst2/train.tsv")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pyramid.core.loading import default_model_path

    tmp = Path(tempfile.mkdtemp(prefix="bench-train-step-"))
    ckpt = tmp / "models" / "minilm-sst2-fresh"
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        default_model_path(), num_labels=2, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1}, use_safetensors=True)
    model.save_pretrained(ckpt)
    AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(ckpt)
    common = ["train", "--data", args.data, "--dev", "", "--selector", "coreset", "--retention-range", "0.1,0.5",
              "--limit", str(args.steps * args.batch_size), "--batch-size", str(args.batch_size), "--epochs", "1"]
    variants = {"head": (ROOT, common), "checkpoint": (ROOT, common + ["--model", str(ckpt)])}
    if args.old:
        variants["old"] = (Path(args.old).resolve(), common)
    times: dict[str, list[float]] = {k: [] for k in variants}
    peaks: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.repeats):
        for name, (code, cmd) in variants.items():
            step, peak = _run(code, cmd, tmp / f"{name}-{r}")
            times[name].append(step)
            peaks[name].append(peak)
            print(f"round {r + 1} {name:<10} {1000 * step:8.0f} ms/step  peak {peak:7.0f} MB", flush=True)
    ref = "old" if args.old else "head"
    print(f"\n{args.steps} steps of {args.batch_size} SST-2 rows, core-set LengthDrop 0.1-0.5 (sandwich 2), "
          f"{torch.get_num_threads()} threads; medians over {args.repeats} rounds, alternating:")
    for name in variants:
        t, p = statistics.median(times[name]), statistics.median(peaks[name])
        tr, pr = statistics.median(times[ref]), statistics.median(peaks[ref])
        print(f"  {name:<10} {1000 * t:8.0f} ms/step ({t / tr:.3f}x {ref})   peak {p:7.0f} MB ({p / pr:.3f}x {ref})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
