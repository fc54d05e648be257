"""Print the shipped evaluation results (assets/results/eval__*.csv) as Markdown tables: accuracy %
(FLOPs speedup) per selector, regime and retention, learned selectors' operating points, and the
matched-speedup table. Used to refresh the README."""

import sys


from pyramid.results import load_bench, load_eval_results, matched_table
from pyramid.selectors import SELECTORS, selector_label

REGIME = {"inference": "inference-only", "train-select": "Train-Select"}


def main() -> None:
    results, problems = load_eval_results()
    for msg in problems:
        print(f"unreadable: {msg}", file=sys.stderr)
    for res in results:
        rows = res.rows
        keys = list(dict.fromkeys((r.get("regime", "inference"), r["selector"]) for r in rows))
        grid_keys = [k for k in keys if k[1] not in SELECTORS or SELECTORS[k[1]].uses_retention]
        learned = [k for k in keys if k not in grid_keys]
        rets = sorted({r["retention"] for r in rows if (r.get("regime", "inference"), r["selector"]) in grid_keys},
                      reverse=True)
        title = f"{res.dataset}" + (f", head {res.head}" if res.head else "")
        print(f"\n{title}, n = {rows[0]['n']}: accuracy % (FLOPs speedup)\n")
        print("| selector | regime | " + " | ".join(f"ρ = {r:g}" for r in rets) + " |")
        print("|---" * (len(rets) + 2) + "|")
        for regime, sel in grid_keys:
            cells = []
            for ret in rets:
                r = next((x for x in rows if x["selector"] == sel and x.get("regime", "inference") == regime
                          and x["retention"] == ret), None)
                cells.append("" if r is None else f"{100 * r['accuracy']:.1f} ({r['flops_speedup']:.2f}x)")
            print(f"| {selector_label(sel, True)} | {REGIME.get(regime, regime)} | " + " | ".join(cells) + " |")
        if learned:
            print("\n| learned selector | regime | accuracy | FLOPs speedup | tokens reaching the last layer |")
            print("|---|---|---|---|---|")
            for regime, sel in learned:
                r = next(x for x in rows if x["selector"] == sel and x.get("regime", "inference") == regime)
                print(f"| {selector_label(sel, True)} | {REGIME.get(regime, regime)} | {100 * r['accuracy']:.1f}% | "
                      f"{r['flops_speedup']:.2f}x | {100 * r['retention']:.0f}% |")
        if not res.head:
            table = matched_table(rows)
            cols = [k for k in table[0] if k.endswith("x")]
            print("\nMatched speedup, accuracy %:\n")
            print("| selector | regime | " + " | ".join(cols) + " | own point |")
            print("|---" * (len(cols) + 3) + "|")
            for m in table:
                own = m["own point"]
                cells = ["" if m[c] is None else f"{100 * m[c]:.1f}" for c in cols]
                print(f"| {selector_label(m['selector'], True)} | {REGIME.get(m['regime'], m['regime'])} | "
                      + " | ".join(cells) + " | " + ("" if own is None else f"{100 * own[0]:.1f} at {own[1]:.2f}x") + " |")
    bench, _ = load_bench()
    if bench:
        print("\n| config | tokens | batch | selector | full ms | pyramid ms | selection share | measured | FLOPs | ratio |")
        print("|---" * 10 + "|")
        for r in bench["speed"]:
            share = r.get("selection_share")
            print(f"| {r['config']} | {r['seq_len']} | {r['batch_size']} | {r['selector']} | {r['full_ms']:.1f} | "
                  f"{r['pyramid_ms']:.1f} | {'' if share is None else f'{100 * share:.1f}%'} | "
                  f"{r['measured_speedup']:.2f}x | {r['flops_speedup']:.2f}x | {r['ratio']:.2f} |")
        for r in bench.get("memory", []):
            print(f"\nmemory {r['config']} {r['batch_size']}x{r['seq_len']} {r['selector']} rho={r['retention']}: "
                  f"full {r['full_mb']:.0f} MB, pyramid {r['pyramid_mb']:.0f} MB, ratio {r['memory_ratio']:.2f}")


if __name__ == "__main__":
    main()
