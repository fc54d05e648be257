"""Print the shipped evaluation results (assets/results/eval__*.csv) as Markdown tables:
accuracy % (FLOPs speedup) per selector and retention. Used to refresh the README."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyramid.results import accuracy_at_speedup, load_bench, load_eval_results  # noqa: E402
from pyramid.selectors import SELECTORS  # noqa: E402


def main() -> None:
    results, problems = load_eval_results()
    for msg in problems:
        print(f"unreadable: {msg}", file=sys.stderr)
    for res in results:
        learned = [s for s in dict.fromkeys(r["selector"] for r in res.rows)
                   if s in SELECTORS and not SELECTORS[s].uses_retention]
        grid = [r for r in res.rows if r["selector"] not in learned]
        rets = list(dict.fromkeys(r["retention"] for r in grid))
        sels = list(dict.fromkeys(r["selector"] for r in grid))
        print(f"\n{res.dataset}, head {res.head}, n = {res.rows[0]['n']}: accuracy % (FLOPs speedup)\n")
        print("| selector | " + " | ".join(f"ρ = {r:g}" for r in rets) + " |")
        print("|---" * (len(rets) + 1) + "|")
        for s in sels:
            cells = [f"{100 * r['accuracy']:.1f} ({r['flops_speedup']:.2f}x)" for r in grid if r["selector"] == s]
            print(f"| {s} | " + " | ".join(cells) + " |")
        for s in learned:
            r = next(x for x in res.rows if x["selector"] == s)
            at = {c: accuracy_at_speedup(res.rows, c, r["flops_speedup"]) for c in ("coreset", "attention")}
            matched = ", ".join(f"{c} {100 * v:.1f}" for c, v in at.items() if v is not None) or "out of range"
            print(f"\n{s}: {100 * r['accuracy']:.1f}% at {r['flops_speedup']:.2f}x FLOPs speedup, "
                  f"{100 * r['retention']:.0f}% of tokens reach the last layer; at the same speedup: {matched}")
    bench, _ = load_bench()
    if bench:
        print("\n| config | seq_len | batch | selector | full ms | pyramid ms | measured | FLOPs | ratio |")
        print("|---" * 9 + "|")
        for r in bench["speed"]:
            print(f"| {r['config']} | {r['seq_len']} | {r['batch_size']} | {r['selector']} | {r['full_ms']:.1f} | "
                  f"{r['pyramid_ms']:.1f} | {r['measured_speedup']:.2f}x | {r['flops_speedup']:.2f}x | {r['ratio']:.2f} |")
        for r in bench.get("memory", []):
            print(f"\nmemory {r['config']} {r['batch_size']}x{r['seq_len']} {r['selector']} rho={r['retention']}: "
                  f"full {r['full_mb']:.0f} MB, pyramid {r['pyramid_mb']:.0f} MB, ratio {r['memory_ratio']:.2f}")


if __name__ == "__main__":
    main()
