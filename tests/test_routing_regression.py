"""The existing selectors' traces do not change when the encoder's routing changes: every selector in both
regimes, on fixed texts, against the traces recorded before the routing became pluggable
(``tests/golden/traces.json``; ``python tests/test_routing_regression.py --write`` records them again, only
when a change of traces is intended; ``--write --add`` adds the selectors that have none). The merging selectors'
traces (ToMe, core-set pooling) were added before the encoder's restructuring (issue 41), with their sizes and merge
targets."""

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
    from pyramid.core.artifacts import REGIMES
    from pyramid.classifier import encoder_for_head
    from pyramid.core.encoder import PyramidEncoder
    from pyramid.core.schedule import Schedule
    from pyramid.plan import project_plan
    from pyramid.core.selectors import SELECTORS, get_selector

    out = {}
    for name in SELECTORS:
        for regime in REGIMES:
            reason, runs_on = project_plan(name, regime)
            if reason is not None:
                continue
            sel = get_selector(name, regime)
            enc = encoder_for_head(runs_on, minilm)
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
            if res.size is not None:  # merging routings (recorded from issue 41 on): sizes and merge targets
                out[f"{name}/{regime}"]["size"] = res.size.tolist()
                out[f"{name}/{regime}"]["routing_flops"] = res.routing_flops.tolist()
                for lo, rec in zip(res.layers, layers[-len(res.layers):]):
                    rec["merged_into"] = lo.merged_into.tolist() if lo.merged_into is not None else None
    return out


def test_traces_are_unchanged(minilm):
    if not GOLDEN.is_file():
        pytest.fail(f"{GOLDEN} is missing: record it with `python {Path(__file__).name} --write`")
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    got = record(minilm)
    assert set(expected) <= set(got)  # a selector added since has no recorded trace
    for key, exp in expected.items():
        g = got[key]
        assert [lo["kept"] for lo in g["layers"]] == [lo["kept"] for lo in exp["layers"]], key
        for lg, le in zip(g["layers"], exp["layers"]):
            if le["radius"] is not None:
                assert lg["radius"] == pytest.approx(le["radius"], abs=1e-3), key
        assert torch.allclose(torch.tensor(g["cls"]), torch.tensor(exp["cls"]), atol=1e-4), key
        assert g["selection_flops"] == pytest.approx(exp["selection_flops"], rel=1e-6), key
        if "size" in exp:
            assert torch.allclose(torch.tensor(g["size"]), torch.tensor(exp["size"])), key
            assert g["routing_flops"] == pytest.approx(exp["routing_flops"], rel=1e-6), key
            assert [lo.get("merged_into") for lo in g["layers"]] == [lo.get("merged_into") for lo in exp["layers"]], key


if __name__ == "__main__" and "--write" in sys.argv:
    from pyramid.core.loading import load_encoder

    GOLDEN.parent.mkdir(exist_ok=True)
    traces = record(load_encoder())
    if "--add" in sys.argv and GOLDEN.is_file():  # keep the recorded traces, add the selectors that have none
        traces = {**traces, **json.loads(GOLDEN.read_text(encoding="utf-8"))}
    GOLDEN.write_text(json.dumps(traces, indent=0), encoding="utf-8")
    print(f"wrote {GOLDEN}")
