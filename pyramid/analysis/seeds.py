"""Seeds of a training recipe: each trained model's own dev figures, grouped by recipe, with the mean and
standard deviation over seeds, and selector-minus-selector differences over seeds (docs/methods.md 9).

Used by ``python -m pyramid grid`` (its closing summary) and ``scripts/seed_summary.py``. A trained model is a
head folder (``head_config.json``, from ``python -m pyramid train``) or a checkpoint's Train-Select model
(``train_select.json``, from ``train --model CHECKPOINT``); :func:`read_head` reads either, and the grid builds
the same records from its trials' evaluations.

Heads group by name, a ``-sK`` suffix marking seed K of the head named without it. Figures are accuracies on the
dev file in percent; the standard deviation is the sample one (n - 1), over the seeds present.

Differences between selectors: for two recipes trained with different selectors, at each retention both were
measured at (``SEL_rhoR`` figures), the difference of their means over seeds with a 95% Welch interval over the
seeds (``scipy.stats.ttest_ind(..., equal_var=False)``), a 95% paired t interval over the seeds both have
(``scipy.stats.ttest_rel``: seeds with the same number share their data order and length draws, and the recipes
their start), and in how many seeds the first is ahead. Every seed is measured on the same examples, so the
intervals count the training's variation between seeds, not the sampling of the examples.
"""

from __future__ import annotations

import json
import re
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
    """``{"name", "seed", "recipe", "selector", "metrics": {column: accuracy %}}`` of one head folder, or of a
    checkpoint's Train-Select model folder (``train_select.json``).

    Raises:
        FileNotFoundError: neither ``head_config.json`` nor ``train_select.json`` in ``folder``.
    """
    folder = Path(folder)
    if not (folder / "head_config.json").is_file() and (folder / "train_select.json").is_file():
        rec = json.loads((folder / "train_select.json").read_text(encoding="utf-8"))
        training = rec.get("training", {})
        metrics = {k.removeprefix("dev_accuracy_"): 100.0 * v for k, v in rec.get("metrics", {}).items()
                   if k.startswith("dev_accuracy_") and isinstance(v, (int, float))}
        return {"name": folder.name, "seed": training.get("seed"), "selector": rec.get("selector"),
                "recipe": group_name(folder.name), "settings": {k: training.get(k) for k in RECIPE_KEYS},
                "metrics": metrics, "folder": str(folder),
                "card": {"command": rec.get("command"), "seed": training.get("seed"),
                         "init_head": rec.get("base_model"), "train_seconds": training.get("train_seconds"),
                         "torch": training.get("torch")}}
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
        ``paired_seeds`` (seed numbers both have), ``paired_low, paired_high`` (95% paired t interval of the
        mean per-seed difference over those seeds; None with fewer than two, or when every difference is the
        same).
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
                p_low = p_high = None
                da = [va[k] - vb[k] for k in both]
                if len(both) >= 2 and len(set(da)) > 1:
                    ci = stats.ttest_rel([va[k] for k in both], [vb[k] for k in both]).confidence_interval(0.95)
                    p_low, p_high = round(float(ci.low), 2), round(float(ci.high), 2)
                out.append({"a": a, "b": b, "selector_a": ra["selector"], "selector_b": rb["selector"],
                            "retention": rho, "seeds_a": ra["seeds"], "seeds_b": rb["seeds"],
                            "diff": round(ra["mean"] - rb["mean"], 2), "low": low, "high": high,
                            "a_ahead": sum(va[k] > vb[k] for k in both),
                            "paired_seeds": len(both), "paired_low": p_low, "paired_high": p_high})
    return out
