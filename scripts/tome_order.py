"""ToMe's token order, paired (issue 40): the authors' ``[unmerged A, all B]`` after every merge against the
project's positional order, on the same examples, inference-only on the default model's ``sst2-lora`` head.

    python scripts/tome_order.py [--retentions 0.5,0.3,0.1] [--limit N] [--out assets/results/tome_order.csv]

The shipped assets/results/tome_order.csv came from ``--retentions 0.3,0.1 --out ...`` (2026-12-07).

For each data set (SST-2 dev, 872 sentences; IMDB, 600 reviews truncated to 512 tokens) and retention it
prints both orders' accuracies with their 95% intervals and n, the paired difference (authors minus
positional) with the 95% interval of the paired bootstrap (``pyramid.analysis.stats.paired_difference``), and how
many examples change their answer. Neither set is used to choose anything: the default stays positional
(docs/methods.md 10.2), whatever this prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import csv
import sys
from pathlib import Path

import torch

from pyramid.api import load
from pyramid.data import read_labelled
from pyramid.analysis.evaluation import evaluate, unpack_correct
from pyramid.core.selectors.tome import TomeSelector
from pyramid.analysis.stats import paired_difference

ROOT = Path(__file__).resolve().parent.parent
DATA = {"sst2-dev": ROOT.parent / "shared" / "data" / "sst2" / "dev.tsv",
        "imdb": ROOT.parent / "shared" / "data" / "imdb" / "dev.csv"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--retentions", default="0.5,0.3,0.1")
    ap.add_argument("--limit", type=int, default=None, help="first N examples of each set (default: all)")
    ap.add_argument("--datasets", default="sst2-dev,imdb")
    ap.add_argument("--out", default=None, help="also write the rows to this CSV")
    args = ap.parse_args()
    retentions = [float(x) for x in args.retentions.split(",")]
    model = load()
    clf = model.classifier(model.inference_head)
    out = []
    for name in args.datasets.split(","):
        data = read_labelled(str(DATA[name]), label_names=clf.labels)
        if args.limit:
            data = dataclasses.replace(data, texts=data.texts[:args.limit], labels=data.labels[:args.limit])
        rows = {}
        for order in TomeSelector.ORDERS:
            for row in evaluate(clf, data, [TomeSelector(order=order)], retentions, batch_size=16, progress=False,
                                max_length=512):
                rows[(order, row["retention"])] = row
        for rho in retentions:
            a, p = rows[("authors", rho)], rows[("positional", rho)]
            ca, cp = unpack_correct(a["correct"], a["n"]), unpack_correct(p["correct"], p["n"])
            d = paired_difference(ca, cp)
            changed = int(sum(x != y for x, y in zip(ca, cp)))
            line = {"dataset": name, "retention": rho, "n": a["n"],
                    "authors": a["accuracy"], "authors_low": a["ci_low"], "authors_high": a["ci_high"],
                    "positional": p["accuracy"], "positional_low": p["ci_low"], "positional_high": p["ci_high"],
                    "difference": d.value, "diff_low": d.low, "diff_high": d.high, "changed": changed,
                    "speedup_authors": a["flops_speedup"], "speedup_positional": p["flops_speedup"]}
            out.append(line)
            print(f"{name:8s} rho {rho:.2f} n {a['n']}: authors {100 * a['accuracy']:.2f}% "
                  f"[{100 * a['ci_low']:.2f}, {100 * a['ci_high']:.2f}], positional {100 * p['accuracy']:.2f}% "
                  f"[{100 * p['ci_low']:.2f}, {100 * p['ci_high']:.2f}]; authors - positional "
                  f"{100 * d.value:+.2f} points [{100 * d.low:+.2f}, {100 * d.high:+.2f}] (paired bootstrap); "
                  f"{changed} examples answered differently", flush=True)
    if args.out:
        with open(args.out, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(out[0]))
            w.writeheader()
            w.writerows(out)
        meta = {"command": "python " + " ".join(["scripts/tome_order.py", *sys.argv[1:]]),
                "model": model.name, "head": clf.name, "datasets": {n: str(DATA[n]) for n in args.datasets.split(",")},
                "retentions": retentions, "limit": args.limit, "date": datetime.date.today().isoformat(),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}"}
        Path(args.out + ".meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
