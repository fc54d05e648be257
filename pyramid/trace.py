"""Traces: what a pyramid encoder did to one text, layer by layer, in plain Python and NumPy.

A :class:`Trace` is what the app draws and what ``python -m pyramid trace`` prints. Indices are
into ``tokens`` (word pieces, [CLS] first). Layer ``j`` (1-based) receives ``alive``, computes its
output ``hidden`` (row i for ``alive[i]``), and the selector keeps ``kept`` (a subset of ``alive``);
the next layer's ``alive`` is this layer's ``kept`` (or, for rejoin routing, all tokens again at
the last layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .classifier import Classifier, Prediction, full_probabilities, prediction_of
from .core.encoder import PyramidEncoder
from .core.loading import LoadedEncoder
from .core.schedule import FlopsEstimate, Schedule, estimate_flops
from .core.selectors import Selector, get_selector
from .tokenization import EmptyTextError, TokenizedText, clean_text, tokenize  # noqa: F401 - re-exported


@dataclass
class LayerTrace:
    """One layer of a :class:`Trace`.

    Attributes:
        layer: 1..L.
        alive: token indices entering the layer, ascending.
        kept: token indices kept after it, ascending (== alive at the last layer).
        hidden: ``(len(alive), d)`` float32, the layer's output, row i for ``alive[i]``.
        coverage_radius: max over dropped tokens of the Euclidean distance to the nearest kept
            token (0.0 when nothing is dropped), docs/methods.md 1.2.
        mean_coverage_distance: the mean of that distance over dropped tokens (0.0 if none).
        nearest: for each alive token, the token index of its nearest kept token (itself if kept).
        distance: for each alive token, the distance to that kept token.
        scores: the selector's score per alive token, when it made a selection here.
        selection_seconds: wall time of the selection (seconds).
        layer_seconds: wall time of the layer's forward (seconds).
        merged_into: for a merging routing, for each alive token the token index it merged into after
            this layer (None: kept, or dropped without a target); None for other routings.
        size: for a merging routing, for each alive token how many original tokens it stands for after
            this layer's merge (a kept token's grown size, a merged token's own); None otherwise.
    """

    layer: int
    alive: list[int]
    kept: list[int]
    hidden: np.ndarray
    coverage_radius: float
    mean_coverage_distance: float
    nearest: list[int]
    distance: list[float]
    scores: list[float] | None = None
    selection_seconds: float = 0.0
    layer_seconds: float = 0.0
    merged_into: list[int | None] | None = None
    size: list[float] | None = None

    @property
    def dropped(self) -> list[int]:
        """Tokens alive here and not kept (merged ones included)."""
        kept = set(self.kept)
        return [i for i in self.alive if i not in kept]

    @property
    def merged(self) -> dict[int, int]:
        """``{token: token it merged into}`` for the tokens merged after this layer (empty when none)."""
        if self.merged_into is None:
            return {}
        return {i: t for i, t in zip(self.alive, self.merged_into) if t is not None}


@dataclass
class Trace:
    """What a pyramid encoder did to one text. See the module docstring for the index rules.

    ``embedding_kept`` (token indices) and ``embedding_scores`` (one per token) are set when the
    selector chose on the embedding output, before layer 1 (AdapLeR's CP_0); ``layers[0].alive``
    is then ``embedding_kept``. ``word_ids`` and ``words`` group the tokens into words
    (:mod:`pyramid.words`). ``selection_flops`` is what the selector that ran spent (FLOPs);
    ``routing_flops`` what a cross layer's keys and values over every token add (Token Dropping).
    ``routing`` is what happened to the tokens not kept (``drop``, ``rejoin``, ``merge``: then each layer
    records ``merged_into`` and ``size``).
    ``prediction`` is the classifier's answer computed from this same pass (the last layer's first-token
    state fed to its head) next to its full-length answer, when a classifier ran; ``prediction_note``
    says why there is none otherwise. ``regime`` is the regime the selector ran in.
    """

    model: str
    num_layers: int
    selector: str
    schedule: Schedule
    lengths: list[int]
    tokens: list[str]
    truncated: bool
    original_length: int
    max_length: int
    seed: int
    embedding: np.ndarray
    layers: list[LayerTrace] = field(default_factory=list)
    input_ids: list[int] = field(default_factory=list)
    embedding_kept: list[int] | None = None
    embedding_scores: list[float] | None = None
    word_ids: list[int | None] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    selection_flops: float = 0.0
    routing_flops: float = 0.0
    regime: str = "inference"
    routing: str = "drop"
    prediction: Prediction | None = None
    prediction_note: str | None = None

    @property
    def n_tokens(self) -> int:
        """Number of tokens, [CLS] and [SEP] included."""
        return len(self.tokens)

    def alive_counts(self) -> list[int]:
        """Tokens entering each layer."""
        return [len(lt.alive) for lt in self.layers]

    def sources(self) -> list[dict[int, list[int]]] | None:
        """Where merged tokens came from (ToMe's ``source`` map, ``tome/merge.py`` ``merge_source``), for a merging
        routing: per layer (``layers[j]``), each token kept after that layer's merge -> the original token
        positions it stands for (itself included), ascending, following every earlier merge into it. None for
        other routings."""
        if self.routing != "merge":
            return None
        owner = list(range(self.n_tokens))  # original position -> the token that now stands for it
        out = []
        for lt in self.layers:
            for i, target in lt.merged.items():
                owner = [target if o == i else o for o in owner]
            kept = set(lt.kept)
            groups: dict[int, list[int]] = {t: [] for t in lt.kept}
            for pos, o in enumerate(owner):
                if o in kept:
                    groups[o].append(pos)
            out.append(groups)
        return out

    def to_json(self, hidden: bool = False) -> dict:
        """The CLI's JSON object (``python -m pyramid trace``); ``hidden`` adds each layer's states; a merging routing
        adds, per layer, ``sources``: for each kept token (in ``kept``'s order) the original positions it stands
        for (:meth:`sources`)."""
        sources = self.sources()
        layers = []
        for lt in self.layers:
            item = {
                "layer": lt.layer, "alive": list(lt.alive), "kept": list(lt.kept),
                "coverage_radius": float(lt.coverage_radius),
            }
            if lt.merged_into is not None:
                item["merged_into"] = list(lt.merged_into)
                item["size"] = [round(float(x), 6) for x in lt.size]
                item["sources"] = [sources[len(layers)][t] for t in lt.kept]  # one list per kept token
            if hidden:
                item["hidden"] = lt.hidden.astype(float).round(6).tolist()
            layers.append(item)
        schedule = {"retention": self.schedule.retention if self.schedule.is_geometric else None,
                    "start_layer": self.schedule.start_layer if self.schedule.is_geometric else None,
                    "lengths": list(self.lengths)}
        result = {
            "model": self.model, "num_layers": self.num_layers, "selector": self.selector, "regime": self.regime,
            "routing": self.routing,
            "schedule": schedule, "tokens": list(self.tokens), "truncated": bool(self.truncated),
            "layers": layers,
        }
        if self.embedding_kept is not None:
            result["embedding_kept"] = list(self.embedding_kept)
        result["prediction"] = self.prediction.to_json() if self.prediction is not None else None
        return result


TRACE_CSV_COLUMNS = ("layer", "token_index", "token", "kept", "nearest_kept", "distance", "score", "merged_into",
                     "size")
"""Columns of :func:`trace_rows`: one row per token alive at a layer (``merged_into`` and ``size`` filled for a
merging routing)."""


def trace_rows(trace: "Trace") -> list[dict]:
    """The trace as flat rows for a CSV: one per (layer, alive token), :data:`TRACE_CSV_COLUMNS`.

    ``layer`` 0 rows exist only for a selection on the embedding output (AdapLeR); their
    ``nearest_kept`` and ``distance`` are empty. ``score`` is the selector's score where it chose
    at that layer, else empty.
    """
    rows = []
    if trace.embedding_kept is not None:
        kept0 = set(trace.embedding_kept)
        scores0 = trace.embedding_scores or [None] * trace.n_tokens
        for i, tok in enumerate(trace.tokens):
            rows.append({"layer": 0, "token_index": i, "token": tok, "kept": i in kept0, "nearest_kept": None,
                         "distance": None, "score": scores0[i], "merged_into": None, "size": None})
    for lt in trace.layers:
        kept = set(lt.kept)
        scores = lt.scores or [None] * len(lt.alive)
        merged = lt.merged_into or [None] * len(lt.alive)
        sizes = lt.size or [None] * len(lt.alive)
        for i, near, dist, score, into, size in zip(lt.alive, lt.nearest, lt.distance, scores, merged, sizes):
            rows.append({"layer": lt.layer, "token_index": i, "token": trace.tokens[i], "kept": i in kept,
                         "nearest_kept": near, "distance": round(float(dist), 6), "score": score,
                         "merged_into": into, "size": size})
    return rows


@torch.inference_mode()
def trace_text(
    encoder: LoadedEncoder,
    text: str,
    selector: Selector | str,
    schedule: Schedule,
    *,
    seed: int = 0,
    max_length: int | None = None,
    tokenized: TokenizedText | None = None,
    classifier: Classifier | None = None,
    full_probs: list[float] | None = None,
    proportional_attention: bool = True,
) -> Trace:
    """Run the pyramid on one text and record every layer (and, with a classifier, its prediction
    from the same pass).

    Args:
        encoder: the loaded model (its tokenizer tokenises ``text``; its layers run unless a
            ``classifier`` is given).
        text: the text (ignored when ``tokenized`` is given).
        selector: a selector or its registry name.
        schedule: the length schedule.
        seed: seed for stochastic selectors.
        max_length: token limit (see :func:`tokenize`).
        tokenized: reuse a tokenization (comparisons run several selectors on one text).
        classifier: when given, the pyramid runs on ``classifier.encoder`` and the trace's
            ``prediction`` comes from this pass's last-layer states (one pass per answer).
        full_probs: the classifier's full-length probabilities on this text when already known;
            otherwise they come from this pass when it dropped nothing, else from one more pass.
        proportional_attention: with a merging selector, add ``log(size)`` to later attention logits
            (docs/methods.md 10.1; on by default).

    Returns:
        :class:`Trace`.

    Raises:
        EmptyTextError: empty text. KeyError: unknown selector name. ScheduleError: bad schedule.
    """
    if isinstance(selector, str):
        selector = get_selector(selector)
    tt = tokenized or tokenize(encoder, text, max_length)
    ids = torch.tensor([tt.input_ids], dtype=torch.long)
    runs_on = classifier.encoder if classifier is not None else encoder
    pyr = PyramidEncoder(runs_on, selector, schedule, proportional_attention=proportional_attention)
    out = pyr(ids, torch.ones_like(ids), output_hidden_states=True, output_coverage=True, seed=seed)
    prediction = None
    if classifier is not None:
        probs = classifier.probabilities(classifier.logits(out.last_hidden_state))[0]  # (C,)
        if full_probs is None:
            dropped = out.embedding_selection is not None or any(lo.selected and bool((lo.keep != lo.valid).any())
                                                                 for lo in out.layers)
            full_probs = full_probabilities(classifier, tt.input_ids) if dropped else probs.tolist()
        prediction = prediction_of(classifier, probs, full_probs)
    layers = [_layer_trace(lo) for lo in out.layers]
    emb_kept = emb_scores = None
    if out.embedding_selection is not None:
        es = out.embedding_selection
        emb_kept = es.positions[0][es.keep[0]].tolist()
        emb_scores = es.scores[0][es.valid[0]].float().tolist() if es.scores is not None else None
    return Trace(
        embedding_kept=emb_kept, embedding_scores=emb_scores,
        model=encoder.name, num_layers=runs_on.num_layers, selector=selector.name, schedule=schedule,
        regime=selector.regime, routing=selector.routing, prediction=prediction,
        lengths=out.lengths[0].tolist(), tokens=tt.tokens, truncated=tt.truncated,
        original_length=tt.original_length, max_length=tt.max_length, seed=int(seed),
        embedding=out.embedding_output[0].float().numpy().copy(), layers=layers, input_ids=list(tt.input_ids),
        word_ids=list(tt.word_ids), words=list(tt.words),
        selection_flops=float(out.selection_flops[0]), routing_flops=float(out.routing_flops[0]),
    )


def _layer_trace(lo) -> LayerTrace:
    """Example 0 of one :class:`pyramid.core.encoder.LayerOutput` (with hidden states and coverage) as a
    :class:`LayerTrace`: slots become original token positions, merge targets too."""
    valid = lo.valid[0]
    pos = lo.positions[0][valid].tolist()
    keep = lo.keep[0][valid]
    cov = lo.coverage
    nearest_slot = cov.nearest[0][valid].tolist()
    all_pos = lo.positions[0].tolist()
    merged_into = size = None
    if lo.merged_into is not None or lo.size is not None:
        slots = lo.merged_into[0][valid].tolist() if lo.merged_into is not None else [-1] * len(pos)
        merged_into = [all_pos[t] if t >= 0 else None for t in slots]
        size = [float(x) for x in lo.size[0][valid].tolist()] if lo.size is not None else [1.0] * len(pos)
    return LayerTrace(
        layer=lo.layer,
        alive=pos,
        kept=[p for p, k in zip(pos, keep.tolist()) if k],
        hidden=lo.hidden[0][valid].float().numpy().copy(),
        coverage_radius=float(cov.radius[0]),
        mean_coverage_distance=float(cov.mean_distance[0]),
        nearest=[all_pos[s] for s in nearest_slot],
        distance=[float(x) for x in cov.distance[0][valid].tolist()],
        scores=lo.scores[0][valid].float().tolist() if lo.scores is not None else None,
        selection_seconds=lo.selection_seconds,
        layer_seconds=lo.layer_seconds,
        merged_into=merged_into, size=size,
    )


def pyramid_rows(out, b: int = 0) -> list[tuple[str, set[int], set[int], set[int]]]:
    """Example ``b`` of a :class:`pyramid.core.encoder.PyramidOutput` as the pyramid's rows ``(label, alive, kept,
    merged)`` (token positions; ``embeddings`` first when the selector chose before layer 1), without a trace's
    states or coverage: what :func:`pyramid.present.figures.states_of_rows` draws."""
    rows = []
    if out.embedding_selection is not None:
        es = out.embedding_selection
        rows.append(("embeddings", set(es.positions[b][es.valid[b]].tolist()), set(es.positions[b][es.keep[b]].tolist()),
                     set()))
    for lo in out.layers:
        valid = lo.valid[b]
        pos = lo.positions[b]
        alive = set(pos[valid].tolist())
        kept = set(pos[lo.keep[b] & valid].tolist())
        merged = set()
        if lo.merged_into is not None:
            merged = set(pos[(lo.merged_into[b] >= 0) & valid].tolist())
        rows.append((f"layer {lo.layer}", alive, kept, merged))
    return rows


def jaccard(a, b) -> float:
    """Jaccard index ``|A & B| / |A | B|`` of two index sets (1.0 when both are empty)."""
    a, b = set(a), set(b)
    union = a | b
    return 1.0 if not union else len(a & b) / len(union)


def compare_traces(a: Trace, b: Trace) -> list[dict]:
    """Per-layer comparison of two traces of the same text and schedule.

    Returns:
        One dict per layer: ``layer``, ``jaccard`` of the kept sets, ``both``, ``only_a``,
        ``only_b`` (token indices), and the two coverage radii ``radius_a``, ``radius_b``.

    Raises:
        ValueError: the traces are of different texts or depths.
    """
    if a.tokens != b.tokens or a.num_layers != b.num_layers:
        raise ValueError("traces of different texts or models cannot be compared")
    rows = []
    for la, lb in zip(a.layers, b.layers):
        ka, kb = set(la.kept), set(lb.kept)
        rows.append({
            "layer": la.layer, "jaccard": jaccard(ka, kb), "both": sorted(ka & kb),
            "only_a": sorted(ka - kb), "only_b": sorted(kb - ka),
            "radius_a": la.coverage_radius, "radius_b": lb.coverage_radius,
        })
    return rows


def trace_flops(trace: Trace, config) -> FlopsEstimate:
    """FLOPs of a trace's pyramid against the full encoder on the same text, with the cost of the
    selector that ran (recorded in the trace, so other weights are costed as they ran)."""
    est = estimate_flops(trace.n_tokens, trace.alive_counts(), config, trace.selection_flops)
    return FlopsEstimate(full=est.full, encoder=est.encoder + trace.routing_flops, selection=est.selection)
