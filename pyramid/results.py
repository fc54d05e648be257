"""Result files shipped in ``assets/results`` (written by ``evaluate --out`` and ``bench --json``).

* ``eval__<dataset>.csv``: rows of :data:`pyramid.evaluation.ROW_KEYS` for both regimes (every row
  names its regime and head), with ``eval__<dataset>.csv.meta.json`` holding the command that made it,
  the date and machine; ``eval__<dataset>__<head>.csv``: one more head evaluated in the inference-only
  regime (for instance ``sst2-lora-pyramid``, Pyramid-BERT's own setting), shown as a reference.
* ``bench.json``: ``{"speed": [...], "memory": [...]}`` rows of :data:`pyramid.bench.BENCH_KEYS` and
  :data:`pyramid.bench.MEMORY_KEYS`, with ``bench.json.meta.json``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import ASSETS_DIR
from .evaluation import ROW_KEYS

RESULTS_DIR = ASSETS_DIR / "results"


class ResultsError(ValueError):
    """A result file is unreadable or lacks the expected columns."""


@dataclass
class EvalResults:
    """One evaluation result file.

    Attributes:
        dataset: e.g. ``sst2-dev``; head: the head of a single-head file (``sst2-lora-pyramid``), or
            ``""`` for a file with both regimes.
        rows: dicts with :data:`ROW_KEYS` (numbers parsed).
        meta: the sidecar's contents (``command``, ``date``, ``machine``...), empty if missing.
        path: the CSV file.
    """

    dataset: str
    head: str
    rows: list[dict]
    meta: dict = field(default_factory=dict)
    path: str = ""

    @property
    def full_accuracy(self) -> float | None:
        """Accuracy at retention 1.0 of the inference-only regime's model (``sst2-lora``), if the file has it."""
        for r in self.rows:
            if r["retention"] >= 1.0 and r.get("regime", "inference") == "inference" and r["selector"] != "ltp":
                return r["accuracy"]
        return None


def _meta(path: Path) -> dict:
    side = path.with_name(path.name + ".meta.json")
    if not side.is_file():
        return {}
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_eval_csv(path: str | Path) -> list[dict]:
    """Rows of an ``evaluate --out`` CSV, numbers parsed.

    Raises:
        ResultsError: unreadable file or missing columns.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            optional = ("regime", "head")  # files written before the regimes existed are inference-only
            missing = [k for k in ROW_KEYS if k not in (reader.fieldnames or []) and k not in optional]
            if missing:
                raise ResultsError(f"{path.name}: missing columns {missing}")
            rows = []
            for r in reader:
                rows.append({
                    "regime": r.get("regime") or "inference", "head": r.get("head") or "",
                    "selector": r["selector"], "retention": float(r["retention"]), "n": int(r["n"]),
                    "accuracy": float(r["accuracy"]), "agreement": float(r["agreement"]),
                    "flops_speedup": float(r["flops_speedup"]), "wall_s": float(r["wall_s"]),
                })
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, ResultsError):
            raise
        raise ResultsError(f"{path.name}: {exc}") from exc
    return rows


def load_eval_results(folder: str | Path = RESULTS_DIR) -> tuple[list[EvalResults], list[str]]:
    """Every ``eval__<dataset>__<head>.csv`` in ``folder``.

    Returns:
        ``(results, problems)``: readable files sorted by dataset then head, and one message per
        unreadable file (so that one bad file does not hide the others).
    """
    folder = Path(folder)
    results, problems = [], []
    if not folder.is_dir():
        return results, problems
    for path in sorted(folder.glob("eval__*.csv")):
        parts = path.stem.split("__", 2)
        dataset, head = parts[1], (parts[2] if len(parts) > 2 else "")
        try:
            rows = read_eval_csv(path)
        except ResultsError as exc:
            problems.append(str(exc))
            continue
        for r in rows:
            r["head"] = r["head"] or head
        results.append(EvalResults(dataset, head, rows, _meta(path), str(path)))
    return results, problems


def load_bench(folder: str | Path = RESULTS_DIR) -> tuple[dict | None, dict]:
    """``(bench, meta)`` from ``bench.json`` (None if absent or unreadable)."""
    path = Path(folder) / "bench.json"
    if not path.is_file():
        return None, {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, {}
    if isinstance(data, list):
        data = {"speed": data, "memory": []}
    return data, _meta(path)


def load_saliency_report(folder: str | Path = RESULTS_DIR, name: str = "saliency__sst2-dev__sst2-lora.csv"
                         ) -> tuple[list[dict] | None, dict]:
    """``(rows, meta)`` of a ``saliency-report --out`` CSV (rows of
    :data:`pyramid.saliency_eval.REPORT_KEYS`, numbers parsed); ``(None, {})`` if absent or unreadable."""
    path = Path(folder) / name
    if not path.is_file():
        return None, {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [{"kind": r["kind"], "selector": r["selector"], "layer": int(r["layer"]),
                     "value": float(r["value"]), "n": int(r["n"])} for r in csv.DictReader(fh)]
    except (OSError, ValueError, KeyError):
        return None, {}
    return rows, _meta(path)


def accuracy_at_speedup(rows: list[dict], selector: str, speedup: float, regime: str | None = None) -> float | None:
    """A fixed-schedule selector's accuracy at a given FLOPs speedup, by linear interpolation of
    its (flops_speedup, accuracy) curve in ``rows`` (the full-length row counts as speedup 1.0).
    None outside the measured range.

    Args:
        regime: only rows of this regime (None: every row of the selector, for single-regime files).

    Used to compare a learned selector's single operating point with core-set "at matched speedup",
    and every selector at 1.6x, 2.0x and 2.3x.
    """
    pts = sorted({(r["flops_speedup"] if r["retention"] < 1.0 else 1.0, r["accuracy"])
                  for r in rows if r["selector"] == selector and (regime is None or r.get("regime") == regime)})
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= speedup <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (speedup - x0) / (x1 - x0)
    return None


MATCHED_SPEEDUPS = (1.6, 2.0, 2.3)
"""The FLOPs speedups of the matched-speedup table."""


def matched_table(rows: list[dict], speedups=MATCHED_SPEEDUPS) -> list[dict]:
    """Every (selector, regime) at matched FLOPs speedups: accuracy interpolated on its curve (None
    outside its range); a selector with one operating point (learned lengths) gives that point.

    Returns:
        Rows ``{selector, regime, head, "1.6x": acc | None, ..., "own point": (acc, speedup) | None}``.
    """
    out = []
    for regime, selector in dict.fromkeys((r.get("regime", "inference"), r["selector"]) for r in rows):
        own = [r for r in rows if r["selector"] == selector and r.get("regime", "inference") == regime]
        row = {"selector": selector, "regime": regime, "head": own[0].get("head", "")}
        single = len(own) == 1  # learned lengths: one operating point
        for x in speedups:
            row[f"{x:g}x"] = None if single else accuracy_at_speedup(rows, selector, x, regime)
        row["own point"] = (own[0]["accuracy"], own[0]["flops_speedup"]) if single else None
        out.append(row)
    return out
