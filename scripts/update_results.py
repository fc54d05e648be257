"""Replace some rows of a result file by a new evaluation, keeping the rest (after retraining one model).

    python scripts/update_results.py assets/results/eval__sst2-dev.csv NEW.csv

Every (regime, selector) present in ``NEW.csv`` (an ``evaluate --out`` file on the same data) replaces that
pair's rows in the result file; the other rows stay, and the sidecar (``.meta.json``) records the new
command next to the original one (``"updates"``), so the file still says how each row was made.

Raises (exit 2 with one line): the files are on different data or different numbers of examples.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from pyramid.analysis.evaluation import ROW_KEYS


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    target, new = Path(argv[0]), Path(argv[1])
    meta_t = json.loads(Path(str(target) + ".meta.json").read_text(encoding="utf-8"))
    meta_n = json.loads(Path(str(new) + ".meta.json").read_text(encoding="utf-8"))
    if meta_t.get("data") != meta_n.get("data") or meta_t.get("n") != meta_n.get("n"):
        print(f"error: {new} is on {meta_n.get('data')} (n = {meta_n.get('n')}), {target} on {meta_t.get('data')} "
              f"(n = {meta_t.get('n')})", file=sys.stderr)
        return 2
    with open(target, newline="", encoding="utf-8") as fh:
        old_rows = list(csv.DictReader(fh))
    with open(new, newline="", encoding="utf-8") as fh:
        new_rows = list(csv.DictReader(fh))
    replaced = {(r["regime"], r["selector"]) for r in new_rows}
    kept = [r for r in old_rows if (r.get("regime") or "inference", r["selector"]) not in replaced]
    order = list(dict.fromkeys((r.get("regime") or "inference") for r in old_rows + new_rows))
    rows = sorted(kept + new_rows, key=lambda r: order.index(r.get("regime") or "inference"))
    with open(target, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(ROW_KEYS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    meta_t.setdefault("updates", []).append({"rows": sorted(f"{g}/{s}" for g, s in replaced),
                                             "command": meta_n.get("command"), "date": meta_n.get("date"),
                                             "machine": meta_n.get("machine")})
    Path(str(target) + ".meta.json").write_text(json.dumps(meta_t, indent=2), encoding="utf-8")
    print(f"{target}: {len(new_rows)} rows of {len(replaced)} (regime, selector) pairs replaced, {len(kept)} kept")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
