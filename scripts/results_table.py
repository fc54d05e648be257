"""Print the shipped evaluation results (assets/results/eval__*.csv) as Markdown tables: accuracy % with its
95% interval (FLOPs speedup) per selector, regime and retention (▼: distinguishably below the same model at
full length, paired), learned selectors' operating points, the matched-speedup table with intervals, and
merging minus dropping at matched speedup. Used to refresh the README."""

import sys


from pyramid.analysis.results import drop_vs_merge, load_bench, load_eval_results, matched_table
from pyramid.core.selectors import SELECTORS, selector_label

REGIME = {"inference": "inference-only", "train-select": "Train-Select"}


def cell(r: dict, speed: bool = True) -> str:
    """``86.8 [84.6, 89.0] (1.63x)``; ▼ when distinguishably below the same model at full length."""
    text = f"{100 * r['accuracy']:.1f}"
    if r.get("ci_low") is not None:
        text += f" [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
    if r.get("diff_high") is not None and r["diff_high"] < 0:
        text += " ▼"
    return text + (f" ({r['flops_speedup']:.2f}x)" if speed else "")


def interval_cell(value, interval, vs_full) -> str:
    """A matched-speedup cell with its interval; ▼ when distinguishably below full length."""
    if value is None:
        return ""
    if interval is None:
        return f"{100 * value:.1f}"
    mark = " ▼" if vs_full is not None and vs_full.high < 0 else ""
    return f"{100 * interval.value:.1f} [{100 * interval.low:.1f}, {100 * interval.high:.1f}]{mark}"


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
                cells.append("" if r is None else cell(r))
            print(f"| {selector_label(sel, True)} | {REGIME.get(regime, regime)} | " + " | ".join(cells) + " |")
        if learned:
            print("\n| learned selector | regime | accuracy | FLOPs speedup | tokens reaching the last layer |")
            print("|---|---|---|---|---|")
            for regime, sel in learned:
                r = next(x for x in rows if x["selector"] == sel and x.get("regime", "inference") == regime)
                print(f"| {selector_label(sel, True)} | {REGIME.get(regime, regime)} | {cell(r, speed=False)} | "
                      f"{r['flops_speedup']:.2f}x | {100 * r['retention']:.0f}% |")
        if not res.head:
            table = matched_table(rows)
            cols = [k for k in table[0] if k.endswith("x")]
            print("\nMatched speedup, accuracy %:\n")
            print("| selector | regime | " + " | ".join(cols) + " | own point |")
            print("|---" * (len(cols) + 3) + "|")
            for m in table:
                own = m["own point"]
                cells = [interval_cell(m[c], m["intervals"][c], m["vs full"][c]) for c in cols]
                print(f"| {selector_label(m['selector'], True)} | {REGIME.get(m['regime'], m['regime'])} | "
                      + " | ".join(cells) + " | " + ("" if own is None else f"{100 * own[0]:.1f} at {own[1]:.2f}x") + " |")
            pairs = drop_vs_merge(rows)
            if pairs:
                print("\nMerging minus dropping at matched speedup, accuracy points [95% paired interval], * distinguishable:\n")
                print("| regime | merge | minus drop | " + " | ".join(cols) + " |")
                print("|---" * (len(cols) + 3) + "|")
                for p in pairs:
                    cells = ["" if p[c] is None else f"{100 * p[c].value:+.1f} [{100 * p[c].low:+.1f}, "
                             f"{100 * p[c].high:+.1f}]{' *' if p[c].excludes(0.0) else ''}" for c in cols]
                    print(f"| {REGIME.get(p['regime'], p['regime'])} | {selector_label(p['merge'], True)} | "
                          f"{selector_label(p['drop'], True)} | " + " | ".join(cells) + " |")
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
