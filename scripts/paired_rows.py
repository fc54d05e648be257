"""Paired differences between two evaluation CSVs (``python -m pyramid evaluate --out``) on the same examples.

    python scripts/paired_rows.py A.csv B.csv [--selector tome] [--regime-a R] [--regime-b R]
    python scripts/paired_rows.py F.csv F.csv --regime-a train-select --regime-b train-select --selector-a coreset --selector-b attention

For every retention present in both files (the selector's rows), prints A's and B's accuracy with their 95%
intervals and n, and A minus B with the 95% interval of the paired bootstrap over examples
(``pyramid.analysis.stats.paired_difference``), from each row's packed per-example ``correct`` column. The files must be
of the same data set, in the same order (the command refuses different n).
"""

from __future__ import annotations

import argparse
import sys

from pyramid.analysis.evaluation import unpack_correct
from pyramid.analysis.results import read_eval_csv
from pyramid.analysis.stats import paired_difference


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--selector", default=None, help="only this selector's rows (default: every selector in both)")
    ap.add_argument("--selector-a", default=None, help="A's selector, compared with --selector-b's rows of B at each "
                                                       "retention (one selector against another)")
    ap.add_argument("--selector-b", default=None, help="B's selector (with --selector-a)")
    ap.add_argument("--regime-a", default=None, help="only A's rows of this regime (inference, train-select)")
    ap.add_argument("--regime-b", default=None, help="only B's rows of this regime")
    args = ap.parse_args()
    if (args.selector_a is None) != (args.selector_b is None):
        ap.error("--selector-a and --selector-b go together")

    def rows(path, regime, selector):
        out = {}
        for r in read_eval_csv(path):
            if (selector and r["selector"] != selector) or (regime and r["regime"] != regime):
                continue
            # one selector against another: keyed by A's name so that the two meet at each retention
            out[(args.selector_a or r["selector"], float(r["retention"]))] = r
        return out

    a = rows(args.a, args.regime_a, args.selector_a or args.selector)
    b = rows(args.b, args.regime_b, args.selector_b or args.selector)
    common = sorted(set(a) & set(b))
    if not common:
        print("no (selector, retention) in both files", file=sys.stderr)
        return 1
    for key in common:
        ra, rb = a[key], b[key]
        if int(ra["n"]) != int(rb["n"]):
            print(f"{key}: different n ({ra['n']} vs {rb['n']}): not the same examples", file=sys.stderr)
            return 1
        ca, cb = unpack_correct(ra["correct"], int(ra["n"])), unpack_correct(rb["correct"], int(rb["n"]))
        d = paired_difference(ca, cb)
        print(f"{key[0]} rho {key[1]:.2f} n {ra['n']}: A {100 * float(ra['accuracy']):.2f}% "
              f"[{100 * float(ra['ci_low']):.2f}, {100 * float(ra['ci_high']):.2f}], B {100 * float(rb['accuracy']):.2f}% "
              f"[{100 * float(rb['ci_low']):.2f}, {100 * float(rb['ci_high']):.2f}]; A - B {100 * d.value:+.2f} points "
              f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}] (paired bootstrap); speedup A {float(ra['flops_speedup']):.2f}x, "
              f"B {float(rb['flops_speedup']):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
