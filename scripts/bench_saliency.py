"""Benchmark of the saliency lab's attributions on the shipped sentiment head (prints figures; not a test).

    python scripts/bench_saliency.py [--tokens 128] [--repeats 5] [--ig-steps 20]

Measures, warm, on this machine's CPU threads, for a real IMDB review cut to ``--tokens`` tokens:
gradient x input (captum LayerGradientXActivation), Integrated Gradients (captum
LayerIntegratedGradients, ``--ig-steps`` steps, internal batch 8), the attention methods, AdapLeR's
contributions, and the whole Saliency-page report. Medians over ``--repeats`` runs after one warm-up.
Targets (issue "saliency lab"): gradient x input < 300 ms and IG (20 steps) < 3 s at 128 tokens on
2 cores.
"""

from __future__ import annotations

import argparse


import torch

from pyramid.analysis.bench import median_seconds
from pyramid.analysis.attribution import attention_importance, gradient_saliency, saliency_report
from pyramid.core.artifacts import DEFAULT_HEAD
from pyramid.classifier import load_classifier
from pyramid.core.loading import load_encoder
from pyramid.tokenization import tokenize
from bench_explorer import text_of_tokens


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ig-steps", type=int, default=20)
    args = ap.parse_args()
    from pyramid.core.loading import quiet_transformers

    quiet_transformers()
    base = load_encoder()
    clf = load_classifier(DEFAULT_HEAD, base)
    ids = tokenize(clf.encoder, text_of_tokens(clf.encoder, args.tokens)).input_ids
    print(f"{len(ids)} tokens, head {DEFAULT_HEAD}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} warm runs")
    rows = [
        ("gradient x input", lambda: gradient_saliency(clf, ids, methods=("grad_x_input",)), 0.3),
        (f"integrated gradients ({args.ig_steps} steps)",
         lambda: gradient_saliency(clf, ids, methods=("integrated_gradients",), ig_steps=args.ig_steps), 3.0),
        ("gradient norm", lambda: gradient_saliency(clf, ids, methods=("gradient",)), None),
        ("attention significance + rollout", lambda: attention_importance(clf, ids), None),
    ]
    from pyramid.analysis.attribution import selector_scores
    from pyramid.plan import usable_selectors
    from pyramid.core.selectors import LearnedSelector, get_selector

    learned = [get_selector(n) for n in usable_selectors()]
    learned = [s for s in learned if isinstance(s, LearnedSelector) and s.head == DEFAULT_HEAD]
    for sel in learned:
        rows.append((f"{sel.short} scores (full length)", lambda sel=sel: selector_scores(clf, sel, ids), None))
    rows.append(("whole Saliency-page report", lambda: saliency_report(clf, ids, ig_steps=args.ig_steps,
                                                                       selectors=learned), None))
    for name, fn, target in rows:
        sec = median_seconds(fn, args.repeats)
        verdict = "" if target is None else (f"  target < {target * 1000:.0f} ms: "
                                             + ("met" if sec < target else "MISSED"))
        print(f"{name:40s} {sec * 1000:8.1f} ms{verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
