"""Seed spread of trained heads: each head's own dev figures (``metrics`` in its ``head_config.json``, written by
``python -m pyramid train``), grouped by recipe, with the mean and standard deviation over seeds.

    python scripts/seed_summary.py assets/heads/sst2-lora assets/heads/sst2-lora-ts-coreset /work/seeds/*
    python scripts/seed_summary.py ... --out assets/results/seeds__sst2-dev.json --cards

``--cards`` writes a "Seeds" section into the model card (``README.md``) of every head folder given with seed 0
whose recipe has other seeds: each seed's figures, their mean and standard deviation, and how the others were
trained (they need not ship).

Heads group by name, a ``-sK`` suffix marking seed K of the head named without it (``sst2-lora-s1`` is seed 1
of ``sst2-lora``; ``sst2-lora-ts-coreset-s1``, trained from ``sst2-lora-s1``, seed 1 of ``sst2-lora-ts-coreset``).
A warning is printed when the members of a group differ in a setting of the recipe (``RECIPE_KEYS``). Figures are
accuracies on the head's dev file (SST-2 dev, 872 sentences), in percent; the standard deviation is the sample one
(n - 1), over the seeds present.

Differences between selectors (``differences`` in the JSON): for two recipes trained with different selectors, at
each retention both were measured at (``SEL_rhoR`` figures), the difference of their means over seeds with a 95%
Welch interval over the seeds (``scipy.stats.ttest_ind(..., equal_var=False)``), and in how many seeds (same seed
number on both sides) the first is ahead. Every seed is measured on the same sentences, so the interval counts the
training's variation between seeds, not the sampling of the sentences (the paired bootstrap intervals of the
result files count that).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import sys
import warnings
from pathlib import Path

RECIPE_KEYS = ("data", "selector", "retention_range", "sandwich", "epochs", "limit", "batch_size", "lr", "head_lr",
               "weight_decay", "warmup", "lora_r", "lora_alpha", "lora_dropout", "max_length")
"""Training settings the seeds of one recipe share (``head_config.json``'s ``training``)."""


def group_name(name: str) -> str:
    """The head's name without a ``-sK`` seed suffix."""
    return re.sub(r"-s\d+$", "", name)


def read_head(folder: Path) -> dict:
    """``{"name", "seed", "recipe", "selector", "metrics": {column: accuracy %}}`` of one head folder.

    Raises:
        FileNotFoundError: no ``head_config.json`` in ``folder``.
    """
    cfg = json.loads((folder / "head_config.json").read_text(encoding="utf-8"))
    training = cfg.get("training", {})
    metrics = {k.removeprefix("dev_accuracy_"): 100.0 * v for k, v in cfg.get("metrics", {}).items()
               if k.startswith("dev_accuracy_") and isinstance(v, (int, float))}
    selector = (cfg.get("trained_with") or {}).get("selector") or "none (full length)"
    name = cfg.get("name", folder.name)
    return {"name": name, "seed": training.get("seed"), "selector": selector, "recipe": group_name(name),
            "settings": {k: training.get(k) for k in RECIPE_KEYS}, "metrics": metrics, "folder": str(folder),
            "card": {k: training.get(k) for k in ("command", "seed", "init_head", "train_seconds", "torch")}}


def summarize(heads: list[dict]) -> list[dict]:
    """One row per (recipe, figure): the seeds' values, their mean and standard deviation."""
    groups: dict[str, list[dict]] = {}
    for h in heads:
        groups.setdefault(h["recipe"], []).append(h)
    rows = []
    for rec, members in groups.items():
        members.sort(key=lambda h: (h["seed"] is None, h["seed"]))
        for key in RECIPE_KEYS:
            seen = {json.dumps(h["settings"][key]) for h in members}
            if len(seen) > 1:
                print(f"warning: {rec}: the seeds differ in {key}: {sorted(seen)}", file=sys.stderr)
        columns = list(dict.fromkeys(c for h in members for c in h["metrics"]))
        for col in columns:
            values = {h["seed"]: h["metrics"][col] for h in members if col in h["metrics"]}
            vals = list(values.values())
            rows.append({"recipe": rec, "selector": members[0]["selector"], "figure": col,
                         "seeds": sorted(values), "values": [round(v, 2) for v in vals],
                         "mean": round(statistics.fmean(vals), 2),
                         "std": round(statistics.stdev(vals), 2) if len(vals) > 1 else None,
                         "heads": [h["name"] for h in members if col in h["metrics"]]})
    return rows


def differences(rows: list[dict]) -> list[dict]:
    """Selector against selector over seeds, at every retention both recipes were measured at.

    Args:
        rows: :func:`summarize`'s rows.

    Returns:
        One dict per (recipe a, recipe b, retention) where both have at least two seeds: ``a, b, selector_a,
        selector_b, retention, seeds_a, seeds_b, diff`` (mean of a minus mean of b, points), ``low, high`` (95%
        Welch interval of that difference over the seeds; None when every seed of both scored the same), ``a_ahead`` (seeds, by number, where a is ahead) and
        ``paired_seeds`` (seed numbers both have).
    """
    from scipy import stats

    at: dict[tuple[str, float], dict] = {}
    for r in rows:
        m = re.fullmatch(r"(.+)_rho([0-9.]+)", r["figure"])
        if m and r["std"] is not None and m.group(1) == r["selector"]:
            at[(r["recipe"], float(m.group(2)))] = r
    recipes = list(dict.fromkeys(rec for rec, _ in at))
    out = []
    for i, a in enumerate(recipes):
        for b in recipes[i + 1:]:
            for rho in sorted({x for rec, x in at if rec == a} & {x for rec, x in at if rec == b}, reverse=True):
                ra, rb = at[(a, rho)], at[(b, rho)]
                if ra["selector"] == rb["selector"]:
                    continue
                if ra["std"] == 0 and rb["std"] == 0:  # no spread on either side: no interval
                    low = high = None
                else:
                    with warnings.catch_warnings():  # one side without spread: scipy warns of precision loss
                        warnings.simplefilter("ignore", RuntimeWarning)
                        ci = stats.ttest_ind(ra["values"], rb["values"], equal_var=False).confidence_interval(0.95)
                    low, high = round(float(ci.low), 2), round(float(ci.high), 2)
                va, vb = dict(zip(ra["seeds"], ra["values"])), dict(zip(rb["seeds"], rb["values"]))
                both = [k for k in va if k in vb]
                out.append({"a": a, "b": b, "selector_a": ra["selector"], "selector_b": rb["selector"],
                            "retention": rho, "seeds_a": ra["seeds"], "seeds_b": rb["seeds"],
                            "diff": round(ra["mean"] - rb["mean"], 2), "low": low, "high": high,
                            "a_ahead": sum(va[k] > vb[k] for k in both),
                            "paired_seeds": len(both)})
    return out


CARD_SECTION = "## Seeds"


def card_section(members: list[dict], rows: list[dict], command: str) -> str:
    """The model card's "Seeds" section (markdown) for one recipe: ``members`` its heads (:func:`read_head`),
    ``rows`` its :func:`summarize` rows, ``command`` the seed_summary command that made it."""
    seeds = sorted(h["seed"] for h in members if h["seed"] is not None)
    lines = [CARD_SECTION,
             f"The same recipe with seeds {', '.join(map(str, seeds))} (`--seed K`; only seed 0 ships). Each model's "
             "own accuracy on the dev set, %, and the mean and sample standard deviation over the seeds "
             f"(`{command}`; docs/methods.md 9):", "",
             "| figure | " + " | ".join(f"seed {k}" for k in seeds) + " | mean ± sd |",
             "|---|" + "---|" * len(seeds) + "---|"]
    for r in rows:
        by_seed = dict(zip(r["seeds"], r["values"]))
        spread = f"{r['mean']:.2f}" + (f" ± {r['std']:.2f}" if r["std"] is not None else "")
        lines.append(f"| {r['figure']} | " + " | ".join(f"{by_seed[k]:.2f}" if k in by_seed else "" for k in seeds)
                     + f" | {spread} |")
    lines.append("")
    for h in sorted(members, key=lambda h: (h["seed"] is None, h["seed"])):
        if h["seed"] != 0:
            c = h["card"]
            start = f"from `{c['init_head']}`" if c.get("init_head") else "from the pre-trained model"
            took = f"{c['train_seconds'] / 60:.0f} min of wall time" if isinstance(c.get("train_seconds"), (int, float)) else "time not recorded"
            lines.append(f"Seed {h['seed'] if h['seed'] is not None else '(not recorded)'}: "
                         f"`{c.get('command') or '?'}` ({start}, {took}, torch {c.get('torch') or '?'}).")
    return "\n".join(lines).rstrip() + "\n"


def write_card_section(card: Path, section: str) -> None:
    """Put ``section`` into the model card ``card``: in place of its "Seeds" section if it has one, else before
    "## Hyper-parameters" (or at the end)."""
    text = card.read_text(encoding="utf-8")
    start = text.find("\n" + CARD_SECTION + "\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start + 1] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    else:
        at = text.find("\n## Hyper-parameters")
        text = text[:at + 1] + section + "\n" + text[at + 1:] if at >= 0 else text.rstrip() + "\n\n" + section
    card.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="head folders (each with a head_config.json)")
    parser.add_argument("--out", help="also write the rows as JSON here")
    parser.add_argument("--cards", action="store_true",
                        help="write a Seeds section into the model card of each seed-0 head given whose recipe has other seeds")
    args = parser.parse_args(argv)
    heads = []
    for f in args.folders:
        try:
            heads.append(read_head(Path(f)))
        except (FileNotFoundError, json.JSONDecodeError) as exc:
            print(f"skipped {f}: {exc}", file=sys.stderr)
    rows = summarize(heads)
    for r in rows:
        spread = f"{r['mean']:.2f} +- {r['std']:.2f}" if r["std"] is not None else f"{r['mean']:.2f} (one seed)"
        print(f"{r['recipe']:>22}  {r['figure']:<22} seeds {','.join(map(str, r['seeds'])):<6} "
              f"{' / '.join(f'{v:.2f}' for v in r['values']):<24} {spread}")
    diffs = differences(rows)
    if diffs:
        print("\nselector minus selector over seeds (points, 95% Welch interval over the seeds; seeds where the "
              "first is ahead):")
    for d in diffs:
        ci = "[n/a]" if d["low"] is None else f"[{d['low']:+.2f}, {d['high']:+.2f}]"
        print(f"  {d['a']} - {d['b']}  rho {d['retention']:<4} {d['diff']:+6.2f} {ci}  "
              f"ahead in {d['a_ahead']} of {d['paired_seeds']} seeds")
    command = " ".join(["python", "scripts/seed_summary.py", *map(shlex.quote, argv if argv is not None else sys.argv[1:])])
    if args.cards:
        for h in heads:
            members = [m for m in heads if m["recipe"] == h["recipe"]]
            card = Path(h["folder"]) / "README.md"
            if h["seed"] == 0 and len(members) > 1:
                if not card.is_file():
                    print(f"warning: no model card {card}: its Seeds section is not written", file=sys.stderr)
                    continue
                write_card_section(card, card_section(members, [r for r in rows if r["recipe"] == h["recipe"]], command))
                print(f"wrote the Seeds section of {card}")
    if args.out:
        import datetime
        import platform

        Path(args.out).write_text(json.dumps({"rows": rows, "differences": diffs, "note": __doc__.strip().splitlines()[0]},
                                             indent=1),
                                  encoding="utf-8")
        meta = {"command": command,
                "date": datetime.date.today().isoformat(), "machine": platform.machine(),
                "heads": {h["name"]: {"folder": h["folder"], **h["card"]} for h in heads}}  # how each seed was made
        Path(args.out + ".meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
