"""Seed spread of trained heads: each head's own dev figures (``metrics`` in its ``head_config.json``, written by
``python -m pyramid train``), grouped by recipe, with the mean and standard deviation over seeds.

    python scripts/seed_summary.py assets/heads/sst2-lora assets/heads/sst2-lora-ts-coreset /work/seeds/*
    python scripts/seed_summary.py ... --out assets/results/seeds__sst2-dev.json --cards

``--cards`` writes a "Seeds" section into the model card (``README.md``) of every head folder given with seed 0
whose recipe has other seeds: each seed's figures, their mean and standard deviation, and how the others were
trained (they need not ship).

Heads group by name, a ``-sK`` suffix marking seed K of the head named without it (``sst2-lora-s1`` is seed 1
of ``sst2-lora``; ``sst2-lora-ts-coreset-s1``, seed 1 of ``sst2-lora-ts-coreset``, trained from the shipped
``sst2-lora`` like seed 0: the seeds of a LengthDrop recipe share their start).
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
import shlex
import sys
from pathlib import Path

from pyramid.analysis.seeds import RECIPE_KEYS, differences, group_name, read_head, summarize  # noqa: F401 (the script's API)

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
        print("\nselector minus selector over seeds (points; 95% Welch interval over the seeds; 95% paired interval "
              "over the seeds both have; seeds where the first is ahead):")
    for d in diffs:
        ci = "[n/a]" if d["low"] is None else f"[{d['low']:+.2f}, {d['high']:+.2f}]"
        paired = "[n/a]" if d.get("paired_low") is None else f"[{d['paired_low']:+.2f}, {d['paired_high']:+.2f}]"
        print(f"  {d['a']} - {d['b']}  rho {d['retention']:<4} {d['diff']:+6.2f} Welch {ci} paired {paired}  "
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
