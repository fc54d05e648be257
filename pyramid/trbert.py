"""TR-BERT: policy networks that keep or skip tokens at two points, trained with REINFORCE.

Ye, Lin, Huang, Sun, NAACL 2021 (methods.md section 3). A policy network per selection point
(``Linear(d -> 32) -> GELU -> Linear(32 -> 1) -> sigmoid``) gives each token the probability
``pi_i`` of staying; [CLS] always stays (3.1). Selection points: after layer 1 and after layer
``L // 2`` (3.1; for the 6-layer default model, after layers 1 and 3). At inference a token stays iff
``pi_i >= 0.5`` (3.4); skipped tokens never come back (3.5, classification).

Training (3.2, 3.3), policy-only RL phase with the fine-tuned encoder and head frozen:

* every example is replicated K = 8 times; at each point each valid non-[CLS] token samples
  ``a_i ~ Bernoulli(pi_i)``; skipped tokens are masked out of attention from then on (the same
  function as removing them, methods.md 3.2 "zero-masked");
* ``log pi(a) = (1/n_valid) sum_i [a_i log pi_i + (1 - a_i) log(1 - pi_i)]``, summed over the points;
* reward ``R = -CE(y) - alpha * (1/T) sum_t l_t / n_0`` with ``l_t`` the kept count after point t,
  ``T = 2``, ``n_0`` the example's real token count (the authors use the padded length; with
  length-sorted batches of short texts the real count is the meaningful one: project default);
* baseline: the mean reward of the K samples of the same example; loss
  ``sum (R - mean R) * (-log pi(a)) / (B K)``;
* imitation warm-up for the first ``guide_rate = 0.5`` of the steps: one of the K copies takes the
  heuristic actions, the top ``round(sum_i pi_i)`` tokens by ``|g_i . (H^g_i - H^p_i)|`` with ``g``
  the gradient of the task loss at the guide layer ``g`` (layer 9 of 12 in BERT-base, layer 4 of 6
  in DistilBERT: we use ``ceil(2L/3)``, layer 4 for L = 6) (3.3).

Project choices ([UNCONFIRMED] or changed, recorded in the model card): policy learning rate 1e-3
(fresh MLPs on a frozen encoder; the paper's 3e-5 trains alongside BERT), no joint phase.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .artifacts import JsonConfig, files_table, freeze, key_value_rows, require_files, resolve_artifact
from .classifier import ASSETS_DIR, SequenceClassifier
from .encoder import additive_mask, run_layer

TRBERT_DIR = ASSETS_DIR / "trbert"
DEFAULT_TRBERT = "sst2-lora-trbert"
"""Shipped TR-BERT policy (trained on the ``sst2-lora`` head)."""
TRBERT_FILES = ("policy.safetensors", "trbert_config.json")


class TrbertLoadError(ValueError):
    """A TR-BERT artifact is missing, incomplete or corrupt."""


def selection_points(num_layers: int) -> tuple[int, int]:
    """Layers after whose output TR-BERT selects: ``(1, L // 2)`` (methods.md 3.1)."""
    return 1, max(2, num_layers // 2)


def guide_layer(num_layers: int) -> int:
    """Layer whose gradient guides the imitation warm-up: ``ceil(2L/3)`` (9 of 12 is 3/4; 4 of 6 as DistilBERT)."""
    return min(num_layers, max(selection_points(num_layers)[1] + 1, math.ceil(2 * num_layers / 3)))


@dataclass
class TrbertConfig(JsonConfig):
    """How to rebuild the policy, and how it was made (``trbert_config.json``).

    Attributes:
        name, base_model, head: artifact name; encoder; the head whose frozen model it was trained on.
        hidden_size, num_layers: of that encoder. policy_hidden: 32. points: layers after which it selects.
        training: hyper-parameters, data, command, seconds. metrics: dev accuracy and FLOPs speedup.
    """

    name: str
    base_model: str
    head: str
    hidden_size: int
    num_layers: int
    points: list[int]
    policy_hidden: int = 32
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


class PolicyNetworks(nn.Module):
    """One keep-probability network per selection point (methods.md 3.1).

    Args:
        hidden_size: d. points: the layers after which the policies act. policy_hidden: 32.

    Attributes:
        policies: ``nn.ModuleDict`` keyed by the layer number as a string.
    """

    def __init__(self, hidden_size: int, points: Sequence[int], policy_hidden: int = 32):
        super().__init__()
        self.hidden_size, self.points, self.policy_hidden = hidden_size, tuple(int(p) for p in points), policy_hidden
        self.policies = nn.ModuleDict({
            str(p): nn.Sequential(nn.Linear(hidden_size, policy_hidden), nn.GELU(), nn.Linear(policy_hidden, 1))
            for p in self.points
        })

    def keep_probability(self, layer: int, hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``pi = sigmoid(policy(h))`` per token, 1 for [CLS] (slot 0), 0 on pads.

        Args:
            layer: a selection point. hidden: ``(B, N, d)`` that layer's output. valid: ``(B, N)`` bool.

        Returns:
            ``(B, N)`` float32 in [0, 1].
        """
        pi = torch.sigmoid(self.policies[str(layer)](hidden.float()).squeeze(-1))  # (B, N, 1) -> (B, N)
        pi = pi * valid.float()
        cls = torch.zeros_like(pi)
        cls[:, 0] = 1.0
        return torch.where(cls.bool(), cls, pi)

    def flops_per_token(self) -> float:
        """FLOPs of one policy on one token (two linears with biases, GELU ~8, sigmoid ~4)."""
        d, c = self.hidden_size, self.policy_hidden
        return 2.0 * d * c + c + 8.0 * c + 2.0 * c + 1 + 4.0


@dataclass
class TrbertSettings:
    """Settings of one TR-BERT training run (recorded in the model card).

    Attributes:
        data, dev, head, out, name: training file, evaluation file, frozen head, artifact folder and name.
        alpha: the harmonic coefficient of the length term of the reward (1 for IMDB in the paper).
        epochs, limit, batch_size, samples: passes; rows used; examples per step; K rollouts each.
        max_length: truncation in tokens. lr: policy learning rate (AdamW). warmup: warm-up share.
        guide_rate: share of the steps with one heuristic rollout per example. seed.
        command: the command line that ran this.
    """

    data: str
    out: str
    name: str = DEFAULT_TRBERT
    head: str = "sst2-lora"
    dev: str | None = None
    alpha: float = 1.0
    epochs: int = 3
    limit: int | None = 4000
    batch_size: int = 16
    samples: int = 8
    max_length: int = 64
    lr: float = 1e-3
    warmup: float = 0.1
    guide_rate: float = 0.5
    seed: int = 0
    command: str = ""


def guide_scores(classifier: SequenceClassifier, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 labels: torch.Tensor, points: Sequence[int], guide: int) -> dict[int, torch.Tensor]:
    """The heuristic of methods.md 3.3: ``score_i^p = | g_i . (H^g_i - H^p_i) |``.

    ``g`` is the gradient of the task loss (CE, gold label) with respect to the guide layer's output
    ``H^g``, full length.

    Returns:
        point -> ``(B, N)`` float32 scores (0 on pads).
    """
    model = classifier.encoder.model
    valid = attention_mask.bool()
    mask = additive_mask(valid, torch.float32)
    states: dict[int, torch.Tensor] = {}
    with torch.enable_grad():
        hidden = model.embeddings(input_ids=input_ids).detach()
        for j, layer in enumerate(model.encoder.layer, start=1):
            hidden, _ = run_layer(layer, hidden, mask)
            if j in points:
                states[j] = hidden.detach()
            if j == guide:
                hidden = hidden.detach().requires_grad_(True)
                h_guide = hidden
        loss = nn.functional.cross_entropy(classifier.head(hidden[:, 0]), labels, reduction="sum")
        (g,) = torch.autograd.grad(loss, [h_guide])
    return {p: ((g * (h_guide.detach() - states[p])).sum(-1).abs() * valid.float()) for p in points}


def _rollout(classifier, policy: PolicyNetworks, input_ids, attention_mask, labels, samples: int,
             guide: dict[int, torch.Tensor] | None):
    """K sampled rollouts per example through the frozen model with token skipping by masking.

    Returns:
        ``(ce (B, K), log_pi (B, K), kept_fraction (B, K), pi means per point)``.
    """
    model = classifier.encoder.model
    B, N = input_ids.shape
    K = samples
    valid0 = attention_mask.bool()
    n0 = valid0.sum(1).float()  # (B,)
    points = policy.points
    with torch.no_grad():
        h = model.embeddings(input_ids=input_ids)  # (B, N, d)
    h = h.repeat_interleave(K, 0)  # (B*K, N, d): rows b*K .. b*K+K-1 are example b
    valid = valid0.repeat_interleave(K, 0)  # (B*K, N)
    removable = valid.clone()
    removable[:, 0] = False
    log_pi = torch.zeros(B * K)
    fractions = []
    pis = []
    for j, layer in enumerate(model.encoder.layer, start=1):
        with torch.no_grad():
            h, _ = run_layer(layer, h, additive_mask(valid, h.dtype))
        if j in points:
            pi = policy.keep_probability(j, h.detach(), valid)  # (B*K, N), grad to the policy only
            with torch.no_grad():
                action = torch.bernoulli(pi.detach()).bool() & valid
                if guide is not None:
                    # Imitation: copy 0 of each example keeps the top round(sum pi) tokens by the heuristic.
                    rows = torch.arange(B) * K
                    v = valid[rows]
                    score = guide[j].masked_fill(~v, float("-inf")).clone()
                    score[:, 0] = float("inf")
                    k = pi.detach()[rows].mul(v.float()).sum(1).round().clamp_min(1).long()  # (B,)
                    rank = torch.argsort(torch.argsort(score, dim=1, descending=True, stable=True), dim=1)
                    action[rows] = (rank < k[:, None]) & v
                action[:, 0] = valid[:, 0]
            n_valid = removable.sum(1).clamp_min(1).float()
            a = action.float()
            eps = 1e-6
            ll = (a * (pi + eps).log() + (1 - a) * (1 - pi + eps).log()) * removable.float()
            log_pi = log_pi + ll.sum(1) / n_valid
            valid = valid & action
            removable = removable & action
            fractions.append(valid.sum(1).float() / n0.repeat_interleave(K))
            pis.append(float(pi.detach()[removable | action].mean()) if bool(action.any()) else 0.0)
    with torch.no_grad():
        logits = classifier.head(h[:, 0])  # (B*K, C)
        ce = nn.functional.cross_entropy(logits, labels.repeat_interleave(K), reduction="none")
    kept = torch.stack(fractions, 1).mean(1)  # (B*K,) mean over the T points of l_t / n_0
    return ce.view(B, K), log_pi.view(B, K), kept.view(B, K), pis


def train_trbert(classifier: SequenceClassifier, settings: TrbertSettings, *,
                 progress: bool = True) -> tuple[PolicyNetworks, TrbertConfig]:
    """Train TR-BERT's policies with REINFORCE on the frozen classifier; write the artifact.

    Writes ``policy.safetensors``, ``trbert_config.json`` and ``README.md`` into ``settings.out``.

    Returns:
        ``(policies in eval mode, config)``.

    Raises:
        DataError: unreadable data.
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from .batching import encode_texts, pad_batch, pad_id_of
    from .data import read_labelled
    from .training import linear_warmup_decay

    s = settings
    torch.manual_seed(s.seed)
    rng = random.Random(s.seed)
    data = read_labelled(s.data, label_names=classifier.labels)
    order = list(range(len(data)))
    rng.shuffle(order)
    if s.limit is not None:
        order = order[: s.limit]
    enc = classifier.encoder
    ids = encode_texts(enc, [data.texts[i] for i in order], s.max_length)
    labels = [data.labels[i] for i in order]
    L = enc.num_layers
    points = selection_points(L)
    guide_at = guide_layer(L)
    policy = PolicyNetworks(enc.config.hidden_size, points)
    opt = torch.optim.AdamW(policy.parameters(), lr=s.lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(ids) / s.batch_size)
    total = steps_per_epoch * s.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda st: linear_warmup_decay(st, total, int(s.warmup * total)))
    pad = pad_id_of(enc)
    frozen = list(enc.model.parameters()) + list(classifier.head.parameters())
    was = [p.requires_grad for p in frozen]
    for p in frozen:
        p.requires_grad_(False)
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc=f"train {s.name}", unit="step", disable=not progress)
    history = []
    step = 0
    try:
        for epoch in range(s.epochs):
            perm = list(range(len(ids)))
            rng.shuffle(perm)
            for b0 in range(0, len(perm), s.batch_size):
                idx = perm[b0: b0 + s.batch_size]
                batch = pad_batch([ids[i] for i in idx], pad)
                y = torch.tensor([labels[i] for i in idx])
                guide = None
                if step < s.guide_rate * total:
                    guide = guide_scores(classifier, batch.input_ids, batch.attention_mask, y, points, guide_at)
                ce, log_pi, kept, _ = _rollout(classifier, policy, batch.input_ids, batch.attention_mask, y,
                                               s.samples, guide)
                reward = -ce - s.alpha * kept  # (B, K)
                advantage = reward - reward.mean(1, keepdim=True)
                loss = (advantage.detach() * -log_pi).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
                opt.step()
                sched.step()
                step += 1
                history.append((float(ce.mean()), float(kept.mean())))
                bar.update(1)
                bar.set_postfix(epoch=epoch, ce=f"{history[-1][0]:.3f}", kept=f"{history[-1][1]:.2f}",
                                guide=guide is not None)
    finally:
        bar.close()
        for p, flag in zip(frozen, was):
            p.requires_grad_(flag)
    policy.eval()
    tail = history[-50:]
    config = TrbertConfig(
        name=s.name, base_model=enc.name, head=classifier.config.name, hidden_size=enc.config.hidden_size,
        num_layers=L, points=list(points),
        training={**asdict(s), "examples": len(ids), "steps": total, "guide_layer": guide_at,
                  "train_seconds": round(time.perf_counter() - t0, 1), "torch": torch.__version__,
                  "final_ce": round(sum(h[0] for h in tail) / max(1, len(tail)), 4),
                  "final_kept_fraction": round(sum(h[1] for h in tail) / max(1, len(tail)), 4)},
    )
    if s.dev:
        from .evaluation import operating_point
        from .selectors import TrbertSelector

        config.metrics.update(operating_point(classifier, TrbertSelector(policy, config), s.dev, batch_size=32))
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in policy.state_dict().items()}, str(out / "policy.safetensors"))
    (out / "trbert_config.json").write_text(config.to_json() + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(config, out), encoding="utf-8")
    return policy, config


def model_card(config: TrbertConfig, folder: Path) -> str:
    """The README of a TR-BERT artifact."""
    t = config.training
    rows = key_value_rows(t, skip=("command", "data", "dev", "out"))
    metrics = key_value_rows(config.metrics)
    files = files_table(folder)
    return f"""# {config.name}: TR-BERT policy networks for `{config.head}`

Two policy networks (Linear {config.hidden_size} -> {config.policy_hidden}, GELU, Linear -> 1, sigmoid) acting
after layers {', '.join(map(str, config.points))} of `{config.base_model}`, for the `{config.head}` sentiment
head (methods.md section 3). At inference a token stays iff its keep probability >= 0.5; [CLS] always stays;
skipped tokens do not come back.

**Policy-only RL phase against the frozen fine-tuned model** (methods.md 3.3 step 3): REINFORCE with
K = {t.get('samples')} rollouts per example, reward = -CE - alpha x mean kept fraction (alpha = {t.get('alpha')}),
per-example mean baseline, heuristic imitation for the first {t.get('guide_rate')} of the steps (gradient of the
loss at layer {t.get('guide_layer')}). No joint phase.

## Data
Training: `{t.get('data')}` (shuffled with seed {t.get('seed')}, {t.get('examples')} rows, truncated to
{t.get('max_length')} tokens). Evaluation: `{t.get('dev')}`.

## Metrics (FLOPs speedup counts the policies' own cost)
| metric | value |
|---|---|
{metrics}

## Hyper-parameters
| name | value |
|---|---|
{rows}

## Command
    {t.get('command') or 'python -m pyramid train-trbert'}

## Files
| file | size |
|---|---|
{files}

## Limits
Trained on short SST-2 phrases with the `{config.head}` encoder's states; with other weights it is meaningless.
"""


def resolve_trbert_path(name: str | Path) -> Path:
    """A shipped artifact's name or a folder -> the folder (raises :class:`TrbertLoadError`)."""
    return resolve_artifact(name, TRBERT_DIR, "TR-BERT policy", "python -m pyramid train-trbert", TrbertLoadError)


@lru_cache(maxsize=8)
def load_policy(name: str | Path = DEFAULT_TRBERT) -> tuple[PolicyNetworks, TrbertConfig]:
    """Load a TR-BERT artifact (cached; eval mode, frozen).

    Raises:
        TrbertLoadError: missing, incomplete or corrupt artifact.
    """
    path = resolve_trbert_path(name)
    require_files(path, TRBERT_FILES, "TR-BERT", TrbertLoadError)
    try:
        from safetensors.torch import load_file

        config = TrbertConfig.from_json((path / "trbert_config.json").read_text(encoding="utf-8"))
        policy = PolicyNetworks(config.hidden_size, config.points, config.policy_hidden)
        policy.load_state_dict(load_file(str(path / "policy.safetensors")))
    except Exception as exc:  # noqa: BLE001 - every failure is a corrupt artifact
        raise TrbertLoadError(f"Could not load the TR-BERT policy '{path}': {exc}") from exc
    return freeze(policy), config
