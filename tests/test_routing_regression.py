"""The existing selectors' traces do not change when the encoder's routing changes: every selector in both
regimes, on fixed texts, against the traces recorded before the routing became pluggable
(``tests/golden/traces.json``; ``python tests/test_routing_regression.py --write`` records them again, only
when a change of traces is intended)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).resolve().parent / "golden" / "traces.json"
TEXTS = [
    "the plot is thin but the acting is superb and the score moves along nicely , never once dragging .",
    "a gripping , funny film with a weak ending .",
    "an unfunny , overlong mess that wastes a fine cast on jokes nobody will remember .",
]


def record(minilm) -> dict:
    """Every selector's trace of TEXTS (batched) on its regime's encoder: kept positions per layer, coverage
    radii, the [CLS] state after the last layer (first 8 dimensions) and the selection FLOPs."""
    from pyramid.artifacts import REGIMES
    from pyramid.classifier import encoder_for_selector
    from pyramid.encoder import PyramidEncoder
    from pyramid.schedule import Schedule
    from pyramid.selectors import SELECTORS, get_selector, unavailable_reason

    out = {}
    for name in SELECTORS:
        if SELECTORS[name].routing == "merge":
            continue  # added with the routing (issue 30): nothing to compare with
        for regime in REGIMES:
            if unavailable_reason(name, None, regime) is not None:
                continue
            sel = get_selector(name, regime)
            enc = encoder_for_selector(sel, minilm)
            b = enc.tokenizer(TEXTS, return_tensors="pt", padding=True)
            with torch.inference_mode():
                res = PyramidEncoder(enc, sel, Schedule(retention=0.3))(b["input_ids"], b["attention_mask"],
                                                                        output_coverage=True, seed=3)
            layers = []
            for lo in ([res.embedding_selection] if res.embedding_selection is not None else []) + res.layers:
                layers.append({"layer": lo.layer,
                               "kept": [lo.positions[i][lo.keep[i]].tolist() for i in range(len(TEXTS))],
                               "radius": [round(float(x), 4) for x in lo.coverage.radius] if lo.coverage is not None
                               else None})
            out[f"{name}/{regime}"] = {"layers": layers, "cls": res.cls_hidden[:, :8].tolist(),
                                       "selection_flops": res.selection_flops.tolist()}
    return out


def test_traces_are_unchanged(minilm):
    if not GOLDEN.is_file():
        pytest.fail(f"{GOLDEN} is missing: record it with `python {Path(__file__).name} --write`")
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    got = record(minilm)
    assert set(expected) <= set(got)  # selectors added since (merging ones) have no recorded trace
    for key, exp in expected.items():
        g = got[key]
        assert [lo["kept"] for lo in g["layers"]] == [lo["kept"] for lo in exp["layers"]], key
        for lg, le in zip(g["layers"], exp["layers"]):
            if le["radius"] is not None:
                assert lg["radius"] == pytest.approx(le["radius"], abs=1e-3), key
        assert torch.allclose(torch.tensor(g["cls"]), torch.tensor(exp["cls"]), atol=1e-4), key
        assert g["selection_flops"] == pytest.approx(exp["selection_flops"], rel=1e-6), key


if __name__ == "__main__" and "--write" in sys.argv:
    from pyramid.loading import load_encoder

    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(record(load_encoder()), indent=0), encoding="utf-8")
    print(f"wrote {GOLDEN}")
