"""Result files shipped in ``assets/results`` (written by ``evaluate --out`` and ``bench --json``).

* ``eval__<dataset>.csv``: rows of :data:`pyramid.analysis.evaluation.ROW_KEYS` for both regimes (every row
  names its regime and head), with ``eval__<dataset>.csv.meta.json`` holding the command that made it,
  the date and machine; ``eval__<dataset>__<head>.csv``: one more head evaluated in the inference-only
  regime (for instance ``sst2-lora-pyramid``, Pyramid-BERT's own setting), shown as a reference.
* ``bench.json``: ``{"speed": [...], "memory": [...]}`` rows of :data:`pyramid.analysis.bench.BENCH_KEYS` and
  :data:`pyramid.analysis.bench.MEMORY_KEYS`, with ``bench.json.meta.json``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.artifacts import ASSETS_DIR


RESULTS_DIR = ASSETS_DIR / "results"
REQUIRED_KEYS = ("selector", "retention", "n", "accuracy", "agreement", "flops_speedup", "wall_s")
"""Columns every evaluation file has; the others of :data:`ROW_KEYS` came later (regimes, intervals)."""
INTERVAL_KEYS = ("ci_low", "ci_high", "macro_f1", "f1_low", "f1_high", "diff_full", "diff_low", "diff_high")


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


@dataclass
class DatasetResults:
    """The result files of one data set as the Benchmarks page shows them (:func:`dataset_results`).

    Attributes:
        rows: the rows of the files with both regimes (or, when there are none, of every file).
        references: single-head files (a reference model in the inference-only regime: Pyramid-BERT's own
            setting), drawn apart.
        regimes, selectors: those present in ``rows``, in file order.
        n: texts per row. inference_head: the inference-only regime's model (``"the model"`` when unnamed).
    """

    rows: list[dict]
    references: list[EvalResults]
    regimes: list[str]
    selectors: list[str]
    n: int
    inference_head: str
    full_accuracy: float | None

    def full_value(self, metric: str) -> float | None:
        """The inference-only model's full-length ``accuracy`` or ``macro_f1`` (None when the files lack it)."""
        if metric == "accuracy":
            return self.full_accuracy
        return next((r[metric] for r in self.rows if r["retention"] >= 1.0 and r.get("regime") == "inference"
                     and r.get(metric) is not None), None)

    def shown(self, selectors, regimes) -> list[dict]:
        """The rows of the chosen selectors in the chosen regimes."""
        return [r for r in self.rows if r["selector"] in selectors and r.get("regime", "inference") in regimes]


def dataset_results(results: list[EvalResults], dataset: str) -> DatasetResults:
    """The files of ``dataset`` split into the rows both regimes compare on and the single-head reference files."""
    files = [r for r in results if r.dataset == dataset]
    rows = [row for f in files for row in f.rows if not f.head] or [row for f in files for row in f.rows]
    return DatasetResults(
        rows=rows, references=[f for f in files if f.head],
        regimes=list(dict.fromkeys(r.get("regime", "inference") for r in rows)),
        selectors=list(dict.fromkeys(r["selector"] for r in rows)), n=rows[0]["n"] if rows else 0,
        inference_head=next((r.get("head") for r in rows if r.get("regime") == "inference" and r.get("head")),
                            "the model"),
        full_accuracy=next((f.full_accuracy for f in files if not f.head and f.full_accuracy is not None), None))


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
            missing = [k for k in REQUIRED_KEYS if k not in (reader.fieldnames or [])]
            if missing:
                raise ResultsError(f"{path.name}: missing columns {missing}")
            rows = []
            for r in reader:
                row = {
                    "regime": r.get("regime") or "inference", "head": r.get("head") or "",
                    "selector": r["selector"], "retention": float(r["retention"]), "n": int(r["n"]),
                    "accuracy": float(r["accuracy"]), "agreement": float(r["agreement"]),
                    "flops_speedup": float(r["flops_speedup"]), "wall_s": float(r["wall_s"]),
                    "correct": r.get("correct") or None,
                }
                for k in INTERVAL_KEYS:  # files written before the intervals existed have none
                    row[k] = float(r[k]) if r.get(k) not in (None, "") else None
                rows.append(row)
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


def load_seed_spread(dataset: str, folder: str | Path = RESULTS_DIR) -> tuple[list[dict] | None, dict]:
    """``(rows, meta)`` of ``seeds__DATASET.json`` (written by ``scripts/seed_summary.py --out``): one row per
    recipe and figure with ``recipe, selector, figure, seeds, values, mean, std`` (accuracy %, std None for one
    seed); ``(None, {})`` if absent or unreadable."""
    path = Path(folder) / f"seeds__{dataset}.json"
    if not path.is_file():
        return None, {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
        rows = [{**r, "values": [float(v) for v in r["values"]], "mean": float(r["mean"]),
                 "std": None if r.get("std") is None else float(r["std"])} for r in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return None, {}
    return rows, _meta(path)


def load_seed_differences(dataset: str, folder: str | Path = RESULTS_DIR) -> list[dict]:
    """The selector-against-selector rows of ``seeds__DATASET.json`` (``differences``, written by
    ``scripts/seed_summary.py --out``): ``a, b, selector_a, selector_b, retention, seeds_a, seeds_b, diff, low,
    high, a_ahead, paired_seeds, paired_low, paired_high`` (points; a 95% Welch interval over the seeds, None
    when every seed of both scored the same; a 95% paired t interval over the seeds both have, None where the file
    predates it or fewer than two seeds pair); ``[]`` if absent or unreadable."""
    path = Path(folder) / f"seeds__{dataset}.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8")).get("differences") or []
        return [{"a": str(r["a"]), "b": str(r["b"]), "selector_a": str(r["selector_a"]),
                 "selector_b": str(r["selector_b"]), "retention": float(r["retention"]),
                 "seeds_a": [int(k) for k in r["seeds_a"]], "seeds_b": [int(k) for k in r["seeds_b"]],
                 "diff": float(r["diff"]), "low": None if r["low"] is None else float(r["low"]),
                 "high": None if r["high"] is None else float(r["high"]), "a_ahead": int(r["a_ahead"]),
                 "paired_seeds": int(r["paired_seeds"]),
                 "paired_low": None if r.get("paired_low") is None else float(r["paired_low"]),
                 "paired_high": None if r.get("paired_high") is None else float(r["paired_high"])} for r in rows]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def load_saliency_report(folder: str | Path = RESULTS_DIR, name: str = "saliency__sst2-dev__sst2-lora.csv"
                         ) -> tuple[list[dict] | None, dict]:
    """``(rows, meta)`` of a ``saliency-report --out`` CSV (rows of
    :data:`pyramid.analysis.saliency_eval.REPORT_KEYS`, numbers parsed); ``(None, {})`` if absent or unreadable."""
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


def load_faithfulness(folder: str | Path = RESULTS_DIR, name: str = "faith__sst2-dev.csv") -> tuple[list[dict] | None, dict]:
    """``(rows, meta)`` of a ``saliency-report --faithfulness --out`` CSV (:data:`pyramid.analysis.faithfulness.FAITHFULNESS_KEYS`;
    numbers parsed, empty cells None); ``(None, {})`` if absent or unreadable."""
    path = Path(folder) / name
    if not path.is_file():
        return None, {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = []
            for r in csv.DictReader(fh):
                rows.append({k: (v if k == "selector" else int(v) if k == "n" else None if v == "" else float(v))
                             for k, v in r.items()})
    except (OSError, ValueError, KeyError):
        return None, {}
    return rows, _meta(path)


def _curve(rows: list[dict], selector: str, regime: str | None) -> list[dict]:
    """A selector's rows sorted by speedup (the full-length row at 1.0)."""
    own = [r for r in rows if r["selector"] == selector and (regime is None or r.get("regime") == regime)]
    return sorted(own, key=lambda r: (r["flops_speedup"] if r["retention"] < 1.0 else 1.0, -r["retention"]))


def _speed(r: dict) -> float:
    return r["flops_speedup"] if r["retention"] < 1.0 else 1.0


def _bracket(rows: list[dict], selector: str, speedup: float, regime: str | None) -> list[tuple[float, dict]] | None:
    """``[(weight, row)]`` whose weighted accuracies give the selector's accuracy at ``speedup`` by linear
    interpolation between the two measured points around it (None outside the measured range)."""
    pts = _curve(rows, selector, regime)
    for a, b in zip(pts, pts[1:]):
        x0, x1 = _speed(a), _speed(b)
        if x0 <= speedup <= x1:
            if x1 == x0:
                return [(1.0, a)]
            w = (speedup - x0) / (x1 - x0)
            return [(1.0 - w, a), (w, b)]
    if len(pts) == 1 and abs(_speed(pts[0]) - speedup) < 1e-9:
        return [(1.0, pts[0])]
    return None


def accuracy_at_speedup(rows: list[dict], selector: str, speedup: float, regime: str | None = None) -> float | None:
    """A fixed-schedule selector's accuracy at a given FLOPs speedup, by linear interpolation of
    its (flops_speedup, accuracy) curve in ``rows`` (the full-length row counts as speedup 1.0).
    None outside the measured range.

    Args:
        regime: only rows of this regime (None: every row of the selector, for single-regime files).

    Used to compare a learned selector's single operating point with core-set "at matched speedup",
    and every selector at 1.6x, 2.0x and 2.3x.
    """
    parts = _bracket(rows, selector, speedup, regime)
    return None if parts is None else sum(w * r["accuracy"] for w, r in parts)


def _vectors(parts: list[tuple[float, dict]]):
    from .evaluation import unpack_correct

    if any(not r.get("correct") for _, r in parts):
        return None
    return [(w, unpack_correct(r["correct"], r["n"])) for w, r in parts]


def interval_at_speedup(rows: list[dict], selector: str, speedup: float, regime: str | None = None):
    """:func:`accuracy_at_speedup` with its 95% paired bootstrap interval (:func:`pyramid.analysis.stats.blended_accuracy_interval`
    on the per-example correctness of the two rows around it); None outside the range or for rows written
    without per-example correctness."""
    from .stats import blended_accuracy_interval

    parts = _bracket(rows, selector, speedup, regime)
    vectors = None if parts is None else _vectors(parts)
    return None if vectors is None else blended_accuracy_interval(vectors)


def difference_at_speedup(rows: list[dict], a: tuple[str, str], b: tuple[str, str], speedup: float):
    """Accuracy of run ``a = (selector, regime)`` minus run ``b`` at the same FLOPs speedup, each interpolated on
    its curve (a learned selector's single point counts at its own speedup only), with the paired bootstrap
    interval over the shared examples; None when either run does not reach that speedup or lacks per-example
    correctness, or the runs are on different examples."""
    from .stats import blended_accuracy_interval

    pa, pb = _bracket(rows, a[0], speedup, a[1]), _bracket(rows, b[0], speedup, b[1])
    if pa is None or pb is None:
        return None
    va, vb = _vectors(pa), _vectors(pb)
    if va is None or vb is None or va[0][1].size != vb[0][1].size:
        return None
    return blended_accuracy_interval(va, minus=vb)


MATCHED_SPEEDUPS = (1.6, 2.0, 2.3)
"""The FLOPs speedups of the matched-speedup table."""


def matched_table(rows: list[dict], speedups=MATCHED_SPEEDUPS) -> list[dict]:
    """Every (selector, regime) at matched FLOPs speedups: accuracy interpolated on its curve (None
    outside its range); a selector with one operating point (learned lengths) gives that point.

    Returns:
        Rows ``{selector, regime, head, "1.6x": acc | None, ..., "own point": (acc, speedup) | None,
        "intervals": {"1.6x": Interval | None, ...}, "vs full": {"1.6x": Interval | None, ...}}``: the
        95% paired bootstrap interval of each interpolated accuracy, and of its difference with the same
        regime's full-length model (the selector's own ρ = 1 row) on the same examples, where the file
        holds per-example correctness (None otherwise).
    """
    out = []
    for regime, selector in dict.fromkeys((r.get("regime", "inference"), r["selector"]) for r in rows):
        own = [r for r in rows if r["selector"] == selector and r.get("regime", "inference") == regime]
        row = {"selector": selector, "regime": regime, "head": own[0].get("head", ""), "intervals": {}, "vs full": {}}
        single = len(own) == 1  # learned lengths: one operating point
        full = next((r for r in rows if r.get("regime", "inference") == regime and r["retention"] >= 1.0
                     and r.get("head") == own[0].get("head") and r.get("correct")), None)
        for x in speedups:
            key = f"{x:g}x"
            row[key] = None if single else accuracy_at_speedup(rows, selector, x, regime)
            row["intervals"][key] = None if single else interval_at_speedup(rows, selector, x, regime)
            row["vs full"][key] = None if single or full is None else _minus_full(rows, selector, x, regime, full)
        row["own point"] = (own[0]["accuracy"], own[0]["flops_speedup"]) if single else None
        out.append(row)
    return out


def _minus_full(rows: list[dict], selector: str, speedup: float, regime: str, full: dict):
    """The selector's interpolated accuracy at ``speedup`` minus its regime's full-length accuracy, paired."""
    from .stats import blended_accuracy_interval

    parts = _bracket(rows, selector, speedup, regime)
    vectors = None if parts is None else _vectors(parts)
    full_vec = _vectors([(1.0, full)])
    if vectors is None or full_vec is None or vectors[0][1].size != full_vec[0][1].size:
        return None
    return blended_accuracy_interval(vectors, minus=full_vec)


def pairwise_at_speedup(rows: list[dict], speedup: float, regime: str) -> list[dict]:
    """Paired differences between every two selectors of ``regime`` at one FLOPs speedup (each interpolated on
    its curve; a learned selector's single point only at its own speedup).

    Returns:
        ``[{a, b, diff: Interval}]`` for every ordered pair that reaches ``speedup`` with per-example
        correctness; ``diff.excludes(0)`` marks a distinguishable difference (docs/methods.md 9).
    """
    names = list(dict.fromkeys(r["selector"] for r in rows if r.get("regime", "inference") == regime))
    out = []
    for a in names:
        for b in names:
            if a != b:
                d = difference_at_speedup(rows, (a, regime), (b, regime), speedup)
                if d is not None:
                    out.append({"a": a, "b": b, "diff": d})
    return out


def drop_vs_merge(rows: list[dict], speedups=MATCHED_SPEEDUPS) -> list[dict]:
    """Merging against dropping at matched FLOPs speedup: every merging selector (ToMe, core-set pooling)
    minus every fixed-schedule dropping selector of the same regime, each interpolated on its curve, with the
    paired bootstrap interval over the shared examples (docs/methods.md 9, 10).

    Returns:
        ``[{regime, merge, drop, "1.6x": Interval | None, ...}]`` (None where either does not reach that
        speedup or the file has no per-example correctness).
    """
    from ..core.selectors import SELECTORS

    out = []
    for regime in dict.fromkeys(r.get("regime", "inference") for r in rows):
        names = list(dict.fromkeys(r["selector"] for r in rows if r.get("regime", "inference") == regime))
        merging = [n for n in names if n in SELECTORS and SELECTORS[n].routing == "merge"]
        dropping = [n for n in names if n in SELECTORS and SELECTORS[n].routing == "drop" and SELECTORS[n].fixed_length]
        for m in merging:
            for d in dropping:
                row = {"regime": regime, "merge": m, "drop": d}
                for x in speedups:
                    row[f"{x:g}x"] = difference_at_speedup(rows, (m, regime), (d, regime), x)
                out.append(row)
    return out
