"""Token importance for a classifier's prediction: gradient saliency (captum) and attention.

Every method returns one non-negative score per token, shape ``(N,)`` for a single text, so that
methods can be compared on a common scale (:func:`normalise`) and by rank (Spearman).

Gradient methods (captum, on the logit of the target class, full-length model, eval mode):

* ``grad_x_input``: AdapLeR's saliency (docs/methods.md 2.2): ``s_i = || dz_y/dE_i * E_i ||_2`` with ``E``
  the embedding output (after the embedding LayerNorm), L2 norm over the hidden size.
  ``captum.attr.LayerGradientXActivation`` on the embeddings module.
* ``gradient``: the plain gradient norm ``|| dz_y/dE_i ||_2`` (the same captum class with
  ``multiply_by_inputs=False``).
* ``integrated_gradients``: ``captum.attr.LayerIntegratedGradients`` on the embeddings module,
  baseline = the same text with every word piece replaced by [PAD] ([CLS] and [SEP] kept), default
  20 steps, ``internal_batch_size`` bounding memory; per token, the absolute value of the
  attribution summed over the hidden size.

Attention methods (not explanations of the prediction, only of where attention goes):

* ``significance``: PoWER-BERT's attention received per layer (docs/methods.md 5.1), ``(L, N)``.
* ``rollout``: attention rollout (Abnar and Zuidema, ACL 2020): ``R = prod_l (0.5 mean_h A_l + 0.5 I)``
  with rows renormalised, importance = the [CLS] row of ``R``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..core.attention import significance as power_significance
from ..classifier import Classifier
from ..core.layers import run_layers
from ..core.selectors import SELECTORS, LearnedSelector, SelectionContext

GRADIENT_METHODS = ("grad_x_input", "gradient", "integrated_gradients")


def _logits_fn(classifier: Classifier):
    """``forward(input_ids (B, N), attention_mask (B, N)) -> logits (B, C)`` of the full-length model.

    Runs the embeddings module (so captum's layer hooks see it) and every layer on every token.
    """
    model = classifier.encoder.model

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = run_layers(model, input_ids, attention_mask)  # (B, N, d)
        return classifier.logits(hidden)  # (B, C): the classifier's own head on the first token

    return forward


@dataclass
class Attributions:
    """Gradient saliency of one text.

    Attributes:
        target: the class explained (label id).
        scores: method name -> ``(N,)`` float32 non-negative importance per token.
        ig_delta: Integrated Gradients' convergence delta (sum of signed attributions minus the
            logit difference between input and baseline; near 0 when the path integral is accurate).
    """

    target: int
    scores: dict[str, torch.Tensor]
    ig_delta: float | None = None


def gradient_saliency(
    classifier: Classifier,
    input_ids: list[int],
    *,
    target: int | None = None,
    methods: tuple[str, ...] = GRADIENT_METHODS,
    ig_steps: int = 20,
    internal_batch_size: int = 8,
) -> Attributions:
    """Gradient-based token importance of one text (see the module docstring for the formulas).

    Args:
        classifier: the fine-tuned model.
        input_ids: ``[N]`` token ids, [CLS] first and [SEP] last.
        target: class to explain; the predicted class when None.
        methods: any of :data:`GRADIENT_METHODS`.
        ig_steps: Integrated Gradients steps.
        internal_batch_size: IG evaluates at most this many interpolated inputs at once (memory).

    Returns:
        :class:`Attributions`.

    Raises:
        ValueError: an unknown method.
    """
    from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

    unknown = [m for m in methods if m not in GRADIENT_METHODS]
    if unknown:
        raise ValueError(f"unknown attribution method(s) {unknown}; choose from {GRADIENT_METHODS}")
    forward = _logits_fn(classifier)
    emb = classifier.encoder.model.embeddings
    ids = torch.tensor([input_ids], dtype=torch.long)  # (1, N)
    mask = torch.ones_like(ids)
    if target is None:
        with torch.no_grad():
            target = int(forward(ids, mask).argmax(-1))
    scores: dict[str, torch.Tensor] = {}
    with torch.enable_grad():
        if "grad_x_input" in methods:
            attr = LayerGradientXActivation(forward, emb).attribute(ids, target=target, additional_forward_args=(mask,))
            scores["grad_x_input"] = attr[0].norm(dim=-1).detach().float()  # (N, d) -> (N,)
        if "gradient" in methods:
            attr = LayerGradientXActivation(forward, emb, multiply_by_inputs=False).attribute(
                ids, target=target, additional_forward_args=(mask,))
            scores["gradient"] = attr[0].norm(dim=-1).detach().float()
        if "integrated_gradients" in methods:
            tok = classifier.encoder.tokenizer
            pad = tok.pad_token_id if tok.pad_token_id is not None else 0
            baseline = torch.full_like(ids, pad)
            baseline[:, 0], baseline[:, -1] = ids[:, 0], ids[:, -1]
            attr, delta = LayerIntegratedGradients(forward, emb).attribute(
                ids, baselines=baseline, target=target, additional_forward_args=(mask,),
                n_steps=ig_steps, internal_batch_size=internal_batch_size, return_convergence_delta=True)
            scores["integrated_gradients"] = attr[0].sum(-1).abs().detach().float()
            ig_delta = float(delta[0])
    return Attributions(target=target, scores=scores, ig_delta=ig_delta if "integrated_gradients" in methods else None)


def grad_x_input_batch(
    classifier: Classifier,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """AdapLeR's saliency targets for a padded batch (docs/methods.md 2.2), with captum.

    ``s_i = || dz_y/dE_i * E_i ||_2`` for the logit ``z_y`` of each example's ``target`` class, ``E``
    the embedding output, multiplied by the valid mask ([CLS] and [SEP] included, pads 0). No
    further normalisation (``SAL_NORM=None``). The authors average three fine-tuned checkpoints;
    we have one model, so this is one checkpoint's saliency.

    Args:
        input_ids: ``(B, N)`` long, right padded. attention_mask: ``(B, N)`` 1 = real token.
        target: ``(B,)`` long class ids (the gold labels when distilling targets).

    Returns:
        ``(B, N)`` float32 non-negative saliency, 0 on pads.
    """
    from captum.attr import LayerGradientXActivation

    forward = _logits_fn(classifier)
    emb = classifier.encoder.model.embeddings
    with torch.enable_grad():
        attr = LayerGradientXActivation(forward, emb).attribute(
            input_ids, target=target.tolist(), additional_forward_args=(attention_mask,))  # (B, N, d)
    return attr.norm(dim=-1).detach().float() * attention_mask.float()  # (B, N)


def saliency_targets(classifier: Classifier, ids, labels, batch_size: int = 32,
                     progress: bool = True) -> list[torch.Tensor]:
    """Gradient x input saliency of the gold logit for every example (docs/methods.md 2.2), in
    batches of similar length (:func:`grad_x_input_batch`).

    Args:
        ids: token ids per example ([CLS] first). labels: gold label id per example.

    Returns:
        One ``(N_i,)`` float32 tensor per example, in input order.
    """
    from tqdm.auto import tqdm

    from ..batching import length_sorted_batches, pad_id_of

    out: list[torch.Tensor | None] = [None] * len(ids)
    gold = torch.tensor(list(labels), dtype=torch.long)
    bar = tqdm(total=len(ids), desc="saliency targets", unit="ex", disable=not progress)
    device = classifier.device  # a GPU while a trainer runs there
    for batch in length_sorted_batches(ids, batch_size, pad_id_of(classifier.encoder)):
        b = batch.to(device)
        s = grad_x_input_batch(classifier, b.input_ids, b.attention_mask, gold[batch.index]).cpu()  # (B, N)
        for row, i in enumerate(batch.index.tolist()):
            out[i] = s[row, : len(ids[i])].clone()
        bar.update(len(batch.index))
    bar.close()
    return out  # type: ignore[return-value]


@torch.inference_mode()
def attention_importance(classifier: Classifier, input_ids: list[int]) -> dict[str, torch.Tensor]:
    """Attention-based importance of one text at full length.

    Returns:
        ``{"significance": (L, N), "rollout": (N,)}`` float32: PoWER-BERT significance of each token
        at each layer (docs/methods.md 5.1), and attention rollout from [CLS].
    """
    ids = torch.tensor([input_ids], dtype=torch.long)
    valid = torch.ones_like(ids, dtype=torch.bool)
    sig, probs_all = [], []

    def collect(j: int, hidden: torch.Tensor, probs: torch.Tensor | None) -> None:
        if probs is not None:  # (1, h, N, N)
            sig.append(power_significance(probs, valid)[0].float())
            probs_all.append(probs[0].mean(0).float())  # (N, N)

    run_layers(classifier.encoder.model, ids, after=collect, output_attention_probs=True)
    N = ids.shape[1]
    eye = torch.eye(N)
    rollout = eye
    for a in probs_all:
        a = 0.5 * a + 0.5 * eye
        a = a / a.sum(-1, keepdim=True)
        rollout = a @ rollout
    return {"significance": torch.stack(sig), "rollout": rollout[0]}


def normalise(scores: torch.Tensor) -> torch.Tensor:
    """Scale non-negative scores to sum to 1 over the last dimension (a common scale across methods)."""
    s = scores.clamp_min(0).float()
    return s / s.sum(-1, keepdim=True).clamp_min(1e-12)


def scale_to_row_max(rows: dict[str, Sequence[float]], special: Sequence[bool]) -> dict[str, list[float | None]]:
    """Each row divided by its own largest value over the text's real words, for a heatmap whose rows are read one
    by one: a row's most important word is 1.0 whatever the method's scale (attention rows put most of their mass
    on [CLS], which a shared scale lets drown every word). Special tokens ([CLS], [SEP]) become None.

    Args:
        rows: method -> ``[W]`` non-negative importance per word (or token). special: ``[W]`` True for special
            tokens.

    Returns:
        method -> ``[W]`` values in [0, 1] (None for special tokens; all 0 when a row has no positive value).
    """
    out = {}
    for name, values in rows.items():
        real = [float(v) for v, sp in zip(values, special) if not sp]
        peak = max(real, default=0.0)
        out[name] = [None if sp else (float(v) / peak if peak > 0 else 0.0) for v, sp in zip(values, special)]
    return out


def order_by_agreement(rows: dict[str, Sequence[float]], reference: str, special: Sequence[bool]) -> list[str]:
    """Row names sorted by Spearman correlation with ``reference`` over the real words (the reference first,
    then the most agreeing; rows with no defined correlation last).

    Raises:
        KeyError: ``reference`` is not a row.
    """
    ref = torch.tensor([float(v) for v, sp in zip(rows[reference], special) if not sp])

    def rho(name: str) -> float:
        if name == reference:
            return float("inf")
        r = spearman(ref, torch.tensor([float(v) for v, sp in zip(rows[name], special) if not sp]))
        return r if r == r else float("-inf")  # NaN (a constant row) last

    return sorted(rows, key=rho, reverse=True)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two ``(N,)`` score vectors (average ranks for ties; scipy)."""
    from scipy.stats import spearmanr

    if a.numel() < 2:
        return float("nan")
    rho = spearmanr(a.double().numpy(), b.double().numpy()).statistic
    return float(rho)


def top_k_overlap(a: torch.Tensor, b: torch.Tensor, k: int) -> float:
    """Share of the top-``k`` tokens of ``a`` that are also in the top-``k`` of ``b`` (0..1)."""
    k = max(1, min(k, a.numel()))
    ta = set(torch.topk(a, k).indices.tolist())
    tb = set(torch.topk(b, k).indices.tolist())
    return len(ta & tb) / k


@dataclass
class SaliencyReport:
    """Every importance method on one text, on a common scale, and how they agree.

    Attributes:
        tokens: ``[N]`` word pieces.
        target: explained class id; label: its name.
        rows: method name -> ``(N,)`` importance normalised to sum 1 (see :func:`normalise`).
            Names: ``grad_x_input``, ``integrated_gradients``, ``gradient``, ``significance L1`` ..
            ``significance LL``, ``rollout``, and one row per learned selector and point where it
            selects (:meth:`pyramid.core.selectors.SelectorInfo.score_row`, for instance ``AdapLeR CP0``).
        learned_rows: learned selector's name -> the names of its rows in ``rows``, in layer order.
        spearman: ``(M, M)`` Spearman correlation between the rows (same order as ``rows``).
        overlap: ``(M, M)`` top-``k`` overlap between the rows.
        k: the k of the overlap.
    """

    tokens: list[str]
    target: int
    label: str
    rows: dict[str, torch.Tensor]
    spearman: torch.Tensor
    overlap: torch.Tensor
    k: int
    learned_rows: dict[str, list[str]] = field(default_factory=dict)


@torch.inference_mode()
def selector_scores(classifier: Classifier, selector, input_ids: list[int]) -> dict[int, torch.Tensor]:
    """A learned selector's own token scores at every point where it selects, on the full-length
    model's states (nothing removed), so that they compare directly with saliency.

    For AdapLeR this is each contribution predictor's distribution (CP_l scores the states entering
    layer l+1, docs/methods.md 2.3); for TR-BERT the keep probabilities; for LTP the attention
    scores. (At inference the selector sees the shortened sequence; the scores of the tokens still
    alive differ only through the states, which removal changes a little.)

    Args:
        selector: a :class:`LearnedSelector` whose head is ``classifier``'s.
        input_ids: ``[N]`` token ids, [CLS] first.

    Returns:
        layer (the layer after which it selects; 0: the embeddings) -> ``(N,)`` float32 scores, in layer order
        (their row names: :meth:`pyramid.core.selectors.SelectorInfo.score_row`).

    Raises:
        ValueError: the selector's weights do not fit this encoder's shape.
    """
    enc = classifier.encoder
    L = enc.num_layers
    ids = torch.tensor([input_ids], dtype=torch.long)  # (1, N)
    valid = torch.ones_like(ids, dtype=torch.bool)
    positions = torch.arange(ids.shape[1]).unsqueeze(0)
    rows: dict[int, torch.Tensor] = {}
    include_self = selector.reads == "attention_with_self"

    def score(j: int, hidden: torch.Tensor, probs: torch.Tensor | None) -> None:
        if j >= L or not selector.selects_after(j, L):
            return
        sig = power_significance(probs, valid, include_self=include_self) if probs is not None else None
        ctx = SelectionContext(hidden=hidden, valid=valid, positions=positions, input_ids=ids, layer=j,
                               num_layers=L, significance=sig)
        rows[j] = selector.select(ctx).scores[0].float()

    run_layers(enc.model, ids, after=score, output_attention_probs=selector.reads.startswith("attention"))
    return rows


def saliency_report(classifier: Classifier, input_ids: list[int], *, k: int = 5,
                    ig_steps: int = 20, internal_batch_size: int = 8, selectors=(),
                    target: int | None = None) -> SaliencyReport:
    """Run every gradient and attention method on one text and compare them pairwise.

    Args:
        input_ids: ``[N]`` token ids ([CLS] first).
        target: the class whose logit the gradient methods explain (label id); the predicted class
            (the highest logit; for a multi-label classifier, the most probable label) when None.
        k: top-k for the overlap (clipped to N).
        selectors: learned selectors (:class:`LearnedSelector`) trained on this classifier's head;
            each adds its own score rows (:func:`selector_scores`). Others are ignored.

    Returns:
        :class:`SaliencyReport`.

    Raises:
        ValueError: ``target`` is not a label id of the classifier.
    """
    if target is not None and not 0 <= int(target) < len(classifier.labels):
        raise ValueError(f"target {target} is not a label id of this classifier (0..{len(classifier.labels) - 1})")
    grads = gradient_saliency(classifier, input_ids, target=target, ig_steps=ig_steps,
                              internal_batch_size=internal_batch_size)
    att = attention_importance(classifier, input_ids)
    rows = {name: normalise(grads.scores[name]) for name in ("grad_x_input", "integrated_gradients", "gradient")}
    for j, sig in enumerate(att["significance"], start=1):
        rows[f"significance L{j}"] = normalise(sig)
    rows["rollout"] = normalise(att["rollout"])
    learned_rows: dict[str, list[str]] = {}
    for selector in selectors:
        if isinstance(selector, LearnedSelector) and selector.head == classifier.name:
            info = SELECTORS.get(selector.name)
            for j, row in selector_scores(classifier, selector, input_ids).items():
                name = info.score_row(j) if info is not None else f"{selector.name} after L{j}"  # unregistered
                rows[name] = normalise(row)
                learned_rows.setdefault(selector.name, []).append(name)
    names = list(rows)
    M = len(names)
    rho = torch.ones(M, M)
    ov = torch.ones(M, M)
    for a in range(M):
        for b in range(a + 1, M):
            rho[a, b] = rho[b, a] = spearman(rows[names[a]], rows[names[b]])
            ov[a, b] = ov[b, a] = top_k_overlap(rows[names[a]], rows[names[b]], k)
    tokens = classifier.encoder.tokenizer.convert_ids_to_tokens(input_ids)
    return SaliencyReport(tokens=tokens, target=grads.target, label=classifier.labels[grads.target],
                          rows=rows, spearman=rho, overlap=ov, k=min(k, len(input_ids)), learned_rows=learned_rows)


def kept_top_k(trace, salient: torch.Tensor, k: int) -> list[float]:
    """Share of the ``k`` most salient tokens still alive after each layer of a trace.

    Args:
        trace: a :class:`pyramid.trace.Trace` of the same text.
        salient: ``(N,)`` importance per token.

    Returns:
        ``[L]`` fractions in 0..1, layer j = share of the top-k among the tokens kept after layer j.
    """
    k = max(1, min(k, salient.numel()))
    top = set(torch.topk(salient, k).indices.tolist())
    return [len(top & set(lt.kept)) / k for lt in trace.layers]
