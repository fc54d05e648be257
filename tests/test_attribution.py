"""Gradient saliency (captum) against hand-written autograd, attention importance, comparisons."""

import pytest
import torch

from pyramid.analysis.attribution import (
    attention_importance, gradient_saliency, kept_top_k, normalise, saliency_report, spearman, top_k_overlap,
)
from pyramid.core.layers import run_layer
from pyramid.core.schedule import Schedule
from pyramid.core.attention import significance
from pyramid.trace import trace_text

TEXT = "the film was quite a good story and a lovely one , though dull in the middle"


def _manual(clf, ids, target):
    """dz_target/dE and E by plain autograd (docs/methods.md 2.2)."""
    model = clf.encoder.model
    E = model.embeddings(input_ids=ids).detach().requires_grad_(True)
    h = E
    for j in range(1, len(model.encoder.layer) + 1):
        h, _ = run_layer(model, j, h, None)
    z = clf.head(h[:, 0])[0, target]
    (g,) = torch.autograd.grad(z, E)
    return g[0], E[0].detach()


def test_grad_x_input_and_gradient_match_autograd(trained, tiny_encoder):
    clf = trained[0]
    ids = tiny_encoder.tokenizer(TEXT)["input_ids"]
    att = gradient_saliency(clf, ids, target=1, methods=("grad_x_input", "gradient"))
    g, E = _manual(clf, torch.tensor([ids]), 1)
    assert torch.allclose(att.scores["grad_x_input"], (g * E).norm(dim=-1), atol=1e-6, rtol=1e-4)
    assert torch.allclose(att.scores["gradient"], g.norm(dim=-1), atol=1e-6, rtol=1e-4)
    assert att.target == 1 and att.ig_delta is None


def test_integrated_gradients_completeness(trained, tiny_encoder):
    clf = trained[0]
    ids = tiny_encoder.tokenizer(TEXT)["input_ids"]
    att = gradient_saliency(clf, ids, methods=("integrated_gradients",), ig_steps=50, internal_batch_size=7)
    ig = att.scores["integrated_gradients"]
    assert ig.shape == (len(ids),) and bool((ig >= 0).all())
    assert abs(att.ig_delta) < 0.05 * max(1e-3, float(ig.sum()))  # path integral close to the logit difference
    with pytest.raises(ValueError, match="unknown attribution"):
        gradient_saliency(clf, ids, methods=("lime",))


def test_attention_importance(trained, tiny_encoder):
    clf = trained[0]
    ids = tiny_encoder.tokenizer(TEXT)["input_ids"]
    att = attention_importance(clf, ids)
    N, L = len(ids), tiny_encoder.num_layers
    assert att["significance"].shape == (L, N) and att["rollout"].shape == (N,)
    assert float(att["rollout"].sum()) == pytest.approx(1.0, abs=1e-5)
    model = clf.encoder.model
    with torch.inference_mode():
        h = model.embeddings(input_ids=torch.tensor([ids]))
        _, probs = run_layer(model, 1, h, None, output_attention_probs=True)
    assert torch.allclose(att["significance"][0], significance(probs, torch.ones(1, N, dtype=torch.bool))[0])


def test_comparison_helpers():
    a = torch.tensor([0.1, 0.5, 0.2, 0.9])
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert top_k_overlap(a, a, 2) == 1.0
    assert top_k_overlap(a, torch.tensor([0.9, 0.1, 0.8, 0.0]), 2) == 0.0
    assert float(normalise(a).sum()) == pytest.approx(1.0)


def test_saliency_report_and_kept_top_k(trained, tiny_encoder):
    clf = trained[0]
    ids = tiny_encoder.tokenizer(TEXT)["input_ids"]
    rep = saliency_report(clf, ids, k=3, ig_steps=8)
    M = len(rep.rows)
    assert M == 3 + tiny_encoder.num_layers + 1
    assert rep.spearman.shape == (M, M) and torch.allclose(rep.spearman.diagonal(), torch.ones(M))
    assert all(float(r.sum()) == pytest.approx(1.0, abs=1e-5) for r in rep.rows.values())
    full = trace_text(clf.encoder, TEXT, "coreset", Schedule(retention=1.0))
    assert kept_top_k(full, rep.rows["grad_x_input"], 3) == [1.0] * tiny_encoder.num_layers
    short = trace_text(clf.encoder, TEXT, "first-k", Schedule(retention=0.1))
    fractions = kept_top_k(short, rep.rows["grad_x_input"], 3)
    assert fractions == sorted(fractions, reverse=True) and fractions[-1] <= 1.0
