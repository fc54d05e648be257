"""Small computations for the Learn page: the same library functions on toy or single-text inputs,
so that the page only arranges and explains (no model code in ``app/``)."""

from __future__ import annotations

import numpy as np
import torch

from ..core.coverage import coverage
from ..core.selectors.coreset import greedy_k_center


def toy_kcenter(n: int, k: int, seed: int = 0) -> dict:
    """Greedy k-center (:func:`pyramid.core.selectors.coreset.greedy_k_center`) on ``n`` random 2-D points:
    three clusters and four outliers, point 0 at the origin playing [CLS] (the first centre).

    Returns:
        ``{"points": (n, 2) float, "keep": (n,) bool, "order": centre indices in the order chosen,
        "radius": coverage radius, "nearest": (n,) index of each point's nearest centre}``.

    Raises:
        ValueError: ``n < 5`` or ``k`` outside ``1..n``.
    """
    if n < 5 or not 1 <= k <= n:
        raise ValueError(f"need n >= 5 and 1 <= k <= n, got n={n}, k={k}")
    rng = np.random.default_rng(seed)
    centres = np.array([[-2.0, -1.0], [2.0, 0.0], [0.0, 2.5]])
    pts = np.concatenate([centres[rng.integers(0, 3, n - 4)] + rng.normal(0, 0.6, (n - 4, 2)),
                          rng.uniform(-4, 4, (4, 2))])
    pts[0] = [0.0, 0.0]
    h = torch.tensor(pts, dtype=torch.float32)[None]  # (1, n, 2)
    valid = torch.ones(1, n, dtype=torch.bool)
    res = greedy_k_center(h, valid, torch.tensor([k]))
    cov = coverage(h, valid, res.keep)
    order = [int(i) for i in res.order[0].tolist() if i >= 0]
    return {"points": pts, "keep": res.keep[0].numpy(), "order": order, "radius": float(cov.radius[0]),
            "nearest": cov.nearest[0].numpy()}


@torch.inference_mode()
def layer_attention(encoder, text: str, layer: int = 1) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tokens, the head-mean attention ``(N, N)`` of one layer (rows attend to columns) and PoWER-BERT
    significance ``(N,)`` of that layer, on the full-length model.

    Args:
        encoder: a :class:`pyramid.core.loading.LoadedEncoder`. layer: 1-based.
    """
    from ..core.attention import significance
    from ..core.layers import run_layers

    tok = encoder.tokenizer
    ids = torch.tensor([tok(text)["input_ids"]])
    found = {}

    def keep(j, hidden, probs):
        if j == layer:
            found["probs"] = probs

    run_layers(encoder.model, ids, after=keep, output_attention_probs=True)
    probs = found["probs"]  # (1, h, N, N)
    sig = significance(probs, torch.ones_like(ids, dtype=torch.bool))[0]
    return tok.convert_ids_to_tokens(ids[0].tolist()), probs[0].mean(0).float().numpy(), sig.numpy()


def soft_mask_curves(n: int = 20, eta: float = 0.25, lams=(10.0, 100.0, 1e4), points: int = 300) -> dict:
    """AdapLeR's soft keep-mask ``exp(S(p))`` against the predicted contribution ``p`` for a few
    temperatures (:func:`pyramid.training.adapler.soft_penalty`, docs/methods.md 2.5).

    Returns:
        ``{"delta": eta / n, "x": (points,) array, "curves": {lambda: (points,) array}}``.
    """
    from ..training.adapler import soft_penalty

    delta = eta / n
    x = torch.linspace(0, 3 * delta, points)
    curves = {float(lam): torch.exp(soft_penalty(x[None], torch.tensor([[delta]]), lam))[0].numpy() for lam in lams}
    return {"delta": delta, "x": x.numpy(), "curves": curves}
