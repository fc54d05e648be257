"""AdapLeR: per-layer contribution predictors, soft removal in training, threshold eta/n at inference.

Modarressi, Mohebbi and Pilehvar, ACL 2022 (methods.md section 2). One contribution predictor (CP)
per layer reads the hidden states *entering* that layer (CP_0 the embedding output, CP_{L-1} the
input of the last layer) and gives a distribution over [CLS] and the alive tokens (2.3). At
inference a non-[CLS] token stays iff its score ``p_i >= eta_l / n_l`` with ``n_l`` the alive count,
[CLS] included (2.4); removed tokens never come back, so lengths differ per example.

Training (2.5, 2.6) never removes tokens physically: each layer's penalty ``S(p)`` (log space) is
added to the attention-mask column of the token and multiplies its soft keep-mask, cumulatively.
The CPs are distilled from gradient x input saliency (2.2) with the layer-weighted KL loss, and the
thresholds eta are learned with the length loss, by two optimisers in the same step.

Project choices, recorded in the model card ([UNCONFIRMED] against the paper where marked):

* The encoder and classification head are the *frozen* fine-tuned model (the issue allows this; the
  paper trains BERT jointly from the pre-trained weights). Only the CPs and eta are trained, so the
  CE term reaches the CPs only through the soft masks.
* Saliency targets come from one fine-tuned model, not the average of three checkpoints (2.1).
* theta (the [CLS] re-weighting of the targets, code-only quirk of 2.6) is fixed to 1.
* CP learning rate 1e-3 (fresh predictors on a frozen encoder; the paper's 3e-5 is for joint BERT
  fine-tuning). eta's learning rate 5e-3 and phi = 0.005 by default: with the paper's 5e-4 and
  SST-2 phi = 0.0005, eta barely moves in 750 steps (88.3% dev at a 1.10x FLOPs speedup).
* The model of the last epoch is kept (2.7's checkpoint rule needs several epochs' dev runs).
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

ADAPLER_DIR = ASSETS_DIR / "adapler"
DEFAULT_ADAPLER = "sst2-lora-adapler"
"""Shipped AdapLeR predictors (trained on the ``sst2-lora`` head)."""
ADAPLER_FILES = ("predictors.safetensors", "adapler_config.json")
BETA = 0.1
"""Slope parameter beta of the soft-removal penalty (methods.md 2.5, [code])."""
ETA_RANGE = (0.01, 1.0)
"""Clip range of the learned thresholds eta after every step (methods.md 2.4, [code])."""


class AdaplerLoadError(ValueError):
    """An AdapLeR artifact is missing, incomplete, corrupt, or made for another model."""


@dataclass
class AdaplerConfig(JsonConfig):
    """How to rebuild the predictors, and how they were made (``adapler_config.json``).

    Attributes:
        name: artifact name.
        base_model: the encoder name (``DEFAULT_MODEL`` or a path/hub id).
        head: the classifier head whose fine-tuned encoder the CPs read and whose saliency they
            were distilled from.
        hidden_size, num_layers: of that encoder (checked at use).
        cp_hidden: width of each CP's hidden layer (32 in the paper).
        training: hyper-parameters, data, command, seconds.
        metrics: for instance dev accuracy and FLOPs speedup.
    """

    name: str
    base_model: str
    head: str
    hidden_size: int
    num_layers: int
    cp_hidden: int = 32
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


class ContributionPredictors(nn.Module):
    """The L contribution predictors and learned thresholds of AdapLeR (methods.md 2.3, 2.4).

    CP_l: ``Linear(d -> cp_hidden) -> GELU -> Linear(cp_hidden -> 1)`` per token, then a softmax over
    the sequence restricted to [CLS] and the alive tokens.

    Args:
        hidden_size: d. num_layers: L. cp_hidden: 32 in the paper.
        eta_init: initial eta for every layer (0.25, [code]).

    Attributes:
        cps: ``nn.ModuleList`` of L predictors.
        eta: ``(L,)`` parameter, clipped to :data:`ETA_RANGE` by :meth:`clip_eta`.
    """

    def __init__(self, hidden_size: int, num_layers: int, cp_hidden: int = 32, eta_init: float = 0.25):
        super().__init__()
        self.hidden_size, self.num_layers, self.cp_hidden = hidden_size, num_layers, cp_hidden
        self.cps = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden_size, cp_hidden), nn.GELU(), nn.Linear(cp_hidden, 1))
            for _ in range(num_layers)
        )
        self.eta = nn.Parameter(torch.full((num_layers,), float(eta_init)))

    def distribution(self, layer: int, hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """CP_layer's distribution over tokens.

        ``p = softmax(logits) * w / sum(softmax(logits) * w)``, computed as
        ``softmax(logits + log w)`` (methods.md 2.3: softmax times mask, renormalised).

        Args:
            layer: 0-based CP index (0 = the embedding output, entering layer 1).
            hidden: ``(B, N, d)`` states entering layer ``layer + 1``.
            weight: ``(B, N)`` keep weights: the 0/1 alive mask at inference, the soft keep-mask in
                training. [CLS] must have weight > 0.

        Returns:
            ``(B, N)`` float32 rows summing to 1, ~0 where ``weight`` is 0.
        """
        logits = self.cps[layer](hidden.float()).squeeze(-1)  # (B, N, 1) -> (B, N)
        return torch.softmax(logits + weight.float().clamp_min(1e-30).log(), dim=-1)

    def thresholds(self, layer: int, n_alive: torch.Tensor) -> torch.Tensor:
        """``delta = eta_layer / n`` (methods.md 2.4) for ``n_alive (B,)`` counts ([CLS] included) -> ``(B,)``."""
        return self.eta[layer] / n_alive.float()

    @torch.no_grad()
    def clip_eta(self) -> None:
        """Clip eta to :data:`ETA_RANGE` (after every optimiser step, [code])."""
        self.eta.clamp_(*ETA_RANGE)

    def flops_per_token(self) -> float:
        """FLOPs of one CP on one token (both linears with biases, GELU ~8, softmax ~5)."""
        d, c = self.hidden_size, self.cp_hidden
        return 2.0 * d * c + c + 8.0 * c + 2.0 * c + 1 + 5.0


def soft_penalty(x: torch.Tensor, delta: torch.Tensor, lam: float, beta: float = BETA) -> torch.Tensor:
    """AdapLeR's soft-removal penalty ``S(x) <= 0`` in log space (methods.md 2.5).

    ``S(x) = (lam/delta)(x - delta) - beta/lam`` below the threshold, and
    ``(beta / (lam (1 - delta)))(x - 1)`` at or above it; clipped to ``[-10000, 0]``.
    ``exp(S)`` is ~1 above ``delta`` and falls steeply below it; large ``lam`` makes it a hard step.

    Args:
        x: ``(B, N)`` CP scores. delta: ``(B, 1)`` or broadcastable thresholds. lam: temperature.

    Returns:
        ``(B, N)`` penalties.
    """
    below = (lam / delta) * (x - delta) - beta / lam
    above = (beta / (lam * (1.0 - delta).clamp_min(1e-6))) * (x - 1.0)
    return torch.where(x < delta, below, above).clamp(-10000.0, 0.0)


def lambda_schedule(epochs: int) -> list[float]:
    """Soft-removal temperature per epoch (methods.md 2.5, [code]).

    ``10 * 10^e`` for 5 epochs (the default), ``10 * 3^e`` for 10, ``50 * 50^e`` for 3; other counts
    use ``10 * 10^e``.
    """
    if epochs == 3:
        return [50.0 * 50.0 ** e for e in range(3)]
    if epochs == 10:
        return [10.0 * 3.0 ** e for e in range(10)]
    return [10.0 * 10.0 ** e for e in range(epochs)]


@dataclass
class SoftForward:
    """One soft-removal forward pass (training).

    Attributes:
        logits: ``(B, C)`` classifier logits.
        distributions: L tensors ``(B, N)``, CP_l's distribution.
        masks: L tensors ``(B, N)``, the soft keep-mask CP_l saw (before its own removal).
        lengths: ``(B, L)`` soft lengths entering each layer, [CLS] included.
    """

    logits: torch.Tensor
    distributions: list[torch.Tensor]
    masks: list[torch.Tensor]
    lengths: torch.Tensor


def soft_forward(classifier: SequenceClassifier, predictors: ContributionPredictors, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor, lam: float) -> SoftForward:
    """Run the encoder with AdapLeR's soft removal (methods.md 2.5); nothing is physically dropped.

    Before layer l+1, CP_l scores the tokens under the current soft keep-mask ``m``; each alive
    non-[CLS] token gets ``S = soft_penalty(p, eta_l / sum(m), lam)``; ``S`` accumulates into the
    additive attention mask column of the token (for every later layer) and ``m *= exp(S)``.

    Args:
        input_ids, attention_mask: ``(B, N)``, right padded, [CLS] first.
        lam: soft-removal temperature (``>= 1e4`` behaves like hard removal).

    Returns:
        :class:`SoftForward`.
    """
    model = classifier.encoder.model
    valid = attention_mask.bool()  # (B, N)
    hidden = model.embeddings(input_ids=input_ids)  # (B, N, d)
    pad = additive_mask(valid, torch.float32)
    pad = pad[:, 0, 0, :] if pad is not None else torch.zeros(valid.shape)  # (B, N)
    removable = valid.clone()
    removable[:, 0] = False  # [CLS] is never thresholded (2.4)
    m = valid.float()  # (B, N) soft keep-mask
    cum = torch.zeros_like(m)  # (B, N) accumulated log-space penalties
    dists, masks, lengths = [], [], []
    for j, layer in enumerate(model.encoder.layer):
        p = predictors.distribution(j, hidden, m)  # (B, N)
        delta = predictors.thresholds(j, m.sum(1)).unsqueeze(1)  # (B, 1)
        S = soft_penalty(p, delta, lam) * removable  # (B, N)
        dists.append(p)
        masks.append(m)
        cum = cum + S
        m = m * torch.exp(S)
        lengths.append(m.sum(1))
        hidden, _ = run_layer(layer, hidden, (pad + cum)[:, None, None, :])  # mask (B, 1, 1, N)
    logits = classifier.head(hidden[:, 0])  # (B, C)
    return SoftForward(logits=logits, distributions=dists, masks=masks, lengths=torch.stack(lengths, 1))


def kl_to_saliency(saliency: torch.Tensor, dist: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``KL(q || p)`` per example, ``q = saliency * mask`` normalised to sum 1 (methods.md 2.6).

    Args:
        saliency: ``(B, N)`` non-negative targets (0 on pads). dist: ``(B, N)`` CP distribution.
        mask: ``(B, N)`` soft keep-mask the CP saw (treated as a constant).

    Returns:
        ``(B,)`` KL divergences (nats).
    """
    q = saliency * mask.detach()
    q = q / q.sum(1, keepdim=True).clamp_min(1e-12)
    eps = 1e-12
    return (q * ((q + eps).log() - (dist + eps).log())).sum(1)


@dataclass
class AdaplerSettings:
    """Settings of one AdapLeR training run (recorded in the model card).

    Attributes:
        data: training file (SST-2 train by default). dev: evaluation file or None.
        head: classifier head whose frozen encoder the CPs are trained on.
        out, name: artifact folder and name.
        epochs: passes; each epoch has its own soft-removal temperature (:func:`lambda_schedule`).
        limit: use only this many shuffled training rows (None = all).
        batch_size: examples per step. max_length: truncation in tokens (64 as in the paper's SST-2).
        lr: CP learning rate (AdamW, weight decay 0.01). eta_lr: threshold learning rate (Adam).
        warmup: warm-up share of the steps (linear decay after, both optimisers).
        gamma: KL weight. phi: length-loss weight (the speed/accuracy knob).
        eta_init: initial eta. cp_hidden: CP width. seed: shuffling and initialisation.
        command: the command line that ran this.
    """

    data: str
    out: str
    name: str = DEFAULT_ADAPLER
    head: str = "sst2-lora"
    dev: str | None = None
    epochs: int = 3
    limit: int | None = 8000
    batch_size: int = 32
    max_length: int = 64
    lr: float = 1e-3
    eta_lr: float = 5e-3
    warmup: float = 0.06
    gamma: float = 0.005
    phi: float = 0.005
    eta_init: float = 0.25
    cp_hidden: int = 32
    seed: int = 0
    command: str = ""


def saliency_targets(classifier: SequenceClassifier, ids: Sequence[Sequence[int]], labels: Sequence[int],
                     batch_size: int = 32, progress: bool = True) -> list[torch.Tensor]:
    """Gradient x input saliency of the gold logit for every example (methods.md 2.2).

    Returns:
        One ``(N_i,)`` float32 tensor per example, in input order.
    """
    from tqdm.auto import tqdm

    from .attribution import grad_x_input_batch
    from .batching import length_sorted_batches, pad_id_of

    out: list[torch.Tensor | None] = [None] * len(ids)
    gold = torch.tensor(list(labels), dtype=torch.long)
    bar = tqdm(total=len(ids), desc="saliency targets", unit="ex", disable=not progress)
    for batch in length_sorted_batches(ids, batch_size, pad_id_of(classifier.encoder)):
        s = grad_x_input_batch(classifier, batch.input_ids, batch.attention_mask, gold[batch.index])  # (B, N)
        for row, i in enumerate(batch.index.tolist()):
            out[i] = s[row, : len(ids[i])].clone()
        bar.update(len(batch.index))
    bar.close()
    return out  # type: ignore[return-value]


def train_adapler(classifier: SequenceClassifier, settings: AdaplerSettings, *,
                  progress: bool = True) -> tuple[ContributionPredictors, AdaplerConfig]:
    """Distil AdapLeR's contribution predictors and learn the thresholds; write the artifact.

    Per step (methods.md 2.6): ``L_model = CE + gamma * sum_l w_l KL(q_l || p_l)`` with
    ``w = (L, L-1, ..., 1)`` updates the CPs (AdamW, clip-norm 1); ``L_speed = CE + phi * mean_b
    sum_l n_l`` updates eta (Adam, clip-norm 1); eta is clipped to [0.01, 1]. The encoder and head
    stay frozen (module docstring).

    Writes ``predictors.safetensors``, ``adapler_config.json`` and ``README.md`` into ``settings.out``.

    Returns:
        ``(predictors in eval mode, config)``.

    Raises:
        DataError: unreadable data.
    """
    from .data import read_labelled

    s = settings
    torch.manual_seed(s.seed)
    rng = random.Random(s.seed)
    data = read_labelled(s.data, label_names=classifier.labels)
    order = list(range(len(data)))
    rng.shuffle(order)
    if s.limit is not None:
        order = order[: s.limit]
    texts = [data.texts[i] for i in order]
    labels = [data.labels[i] for i in order]
    enc = classifier.encoder
    frozen = list(enc.model.parameters()) + list(classifier.head.parameters())
    was_trainable = [p.requires_grad for p in frozen]
    for p in frozen:
        p.requires_grad_(False)
    try:
        return _train(classifier, s, rng, texts, labels, progress)
    finally:
        for p, flag in zip(frozen, was_trainable):
            p.requires_grad_(flag)


def _train(classifier, s: AdaplerSettings, rng: random.Random, texts, labels, progress: bool):
    """The body of :func:`train_adapler` (the encoder and head are frozen by the caller)."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from .batching import encode_texts, pad_batch, pad_id_of
    from .training import linear_warmup_decay

    enc = classifier.encoder
    ids = encode_texts(enc, texts, s.max_length)
    t_start = time.perf_counter()
    targets = saliency_targets(classifier, ids, labels, s.batch_size, progress)

    cfg = enc.config
    L = enc.num_layers
    pred = ContributionPredictors(cfg.hidden_size, L, s.cp_hidden, s.eta_init)
    cp_params = list(pred.cps.parameters())
    opt_model = torch.optim.AdamW(cp_params, lr=s.lr, weight_decay=0.01)
    opt_eta = torch.optim.Adam([pred.eta], lr=s.eta_lr)
    steps_per_epoch = math.ceil(len(ids) / s.batch_size)
    total = steps_per_epoch * s.epochs
    warm = int(s.warmup * total)
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda st: linear_warmup_decay(st, total, warm))
              for o in (opt_model, opt_eta)]
    w = torch.arange(L, 0, -1, dtype=torch.float32)  # (L,) layer weights L..1
    pad = pad_id_of(enc)
    lambdas = lambda_schedule(s.epochs)
    bar = tqdm(total=total, desc=f"train {s.name}", unit="step", disable=not progress)
    history = []
    for epoch, lam in enumerate(lambdas):
        perm = list(range(len(ids)))
        rng.shuffle(perm)
        for b0 in range(0, len(perm), s.batch_size):
            idx = perm[b0: b0 + s.batch_size]
            batch = pad_batch([ids[i] for i in idx], pad)
            sal = torch.zeros(batch.input_ids.shape)  # (B, N)
            for row, i in enumerate(idx):
                sal[row, : len(targets[i])] = targets[i]
            y = torch.tensor([labels[i] for i in idx])
            fwd = soft_forward(classifier, pred, batch.input_ids, batch.attention_mask, lam)
            ce = torch.nn.functional.cross_entropy(fwd.logits, y)
            kl = torch.stack([kl_to_saliency(sal, p, m).mean() for p, m in zip(fwd.distributions, fwd.masks)])  # (L,)
            loss_model = ce + s.gamma * (w * kl).sum()
            loss_speed = ce + s.phi * fwd.lengths.sum(1).mean()
            g_model = torch.autograd.grad(loss_model, cp_params, retain_graph=True)
            (g_eta,) = torch.autograd.grad(loss_speed, [pred.eta])
            for prm, g in zip(cp_params, g_model):
                prm.grad = g
            pred.eta.grad = g_eta
            torch.nn.utils.clip_grad_norm_(cp_params, 1.0)
            torch.nn.utils.clip_grad_norm_([pred.eta], 1.0)
            opt_model.step()
            opt_eta.step()
            for sch in scheds:
                sch.step()
            opt_model.zero_grad(set_to_none=True)
            opt_eta.zero_grad(set_to_none=True)
            pred.clip_eta()
            n_full = batch.attention_mask.sum(1).float()  # (B,)
            kept = float((fwd.lengths[:, -1].detach() / n_full).mean())
            history.append((float(ce.detach()), float(kl.detach().mean()), kept))
            bar.update(1)
            bar.set_postfix(epoch=epoch, lam=f"{lam:g}", ce=f"{history[-1][0]:.3f}", kl=f"{history[-1][1]:.3f}",
                            last_len=f"{kept:.2f}", eta=",".join(f"{float(e):.2f}" for e in pred.eta.detach()))
    bar.close()
    pred.eval()
    seconds = time.perf_counter() - t_start

    config = AdaplerConfig(
        name=s.name, base_model=enc.name, head=classifier.config.name, hidden_size=cfg.hidden_size,
        num_layers=L, cp_hidden=s.cp_hidden,
        training={**asdict(s), "examples": len(ids), "steps": total, "lambdas": lambdas,
                  "eta": [round(float(x), 5) for x in pred.eta.detach()], "train_seconds": round(seconds, 1),
                  "torch": torch.__version__,
                  "final_ce": round(sum(h[0] for h in history[-20:]) / max(1, len(history[-20:])), 4),
                  "final_kl": round(sum(h[1] for h in history[-20:]) / max(1, len(history[-20:])), 4)},
    )
    if s.dev:
        from .evaluation import operating_point
        from .selectors import AdaplerSelector

        config.metrics.update(operating_point(classifier, AdaplerSelector(pred, config), s.dev, batch_size=s.batch_size))
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in pred.state_dict().items()}, str(out / "predictors.safetensors"))
    (out / "adapler_config.json").write_text(config.to_json() + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(config, out), encoding="utf-8")
    return pred, config


def model_card(config: AdaplerConfig, folder: Path) -> str:
    """The README of an AdapLeR artifact: what it is, data, hyper-parameters, command, metrics, limits."""
    t = config.training
    rows = key_value_rows(t, skip=("command", "data", "dev", "out"))
    metrics = key_value_rows(config.metrics)
    files = files_table(folder)
    return f"""# {config.name}: AdapLeR contribution predictors for `{config.head}`

{config.num_layers} contribution predictors (Linear {config.hidden_size} -> {config.cp_hidden}, GELU,
Linear {config.cp_hidden} -> 1, softmax over [CLS] and the alive tokens) and learned per-layer thresholds eta
for the `{config.head}` sentiment head on `{config.base_model}` (methods.md section 2). At inference a token
stays before layer l+1 iff its score >= eta_l / n_l; [CLS] always stays.

**Trained against the frozen fine-tuned model**: the encoder (LoRA merged) and the head of
`{config.head}` are not updated; only the predictors and eta are (the paper trains BERT jointly).
Saliency targets: gradient x input of the gold logit of this one model (the paper averages three
checkpoints); theta fixed to 1; the last epoch's model is kept.

## Data
Training: `{t.get('data')}` (shuffled with seed {t.get('seed')}, {t.get('examples')} rows, truncated to
{t.get('max_length')} tokens). Evaluation: `{t.get('dev')}`.

## Metrics (hard removal, CP FLOPs included in the speedup)
| metric | value |
|---|---|
{metrics}

## Hyper-parameters
| name | value |
|---|---|
{rows}

## Command
    {t.get('command') or 'python -m pyramid train-adapler'}

## Files
| file | size |
|---|---|
{files}

## Limits
Trained on SST-2 phrases; on long reviews (IMDB) the learned thresholds meet lengths they never saw.
The predictors read the `{config.head}` encoder's states: with other weights they are meaningless.
"""


def resolve_adapler_path(name: str | Path) -> Path:
    """A shipped artifact's name or a folder -> the folder (raises :class:`AdaplerLoadError`)."""
    return resolve_artifact(name, ADAPLER_DIR, "AdapLeR predictors", "python -m pyramid train-adapler",
                            AdaplerLoadError)


@lru_cache(maxsize=8)
def load_predictors(name: str | Path = DEFAULT_ADAPLER) -> tuple[ContributionPredictors, AdaplerConfig]:
    """Load an AdapLeR artifact (cached per name; eval mode, frozen).

    Raises:
        AdaplerLoadError: missing, incomplete or corrupt artifact.
    """
    path = resolve_adapler_path(name)
    require_files(path, ADAPLER_FILES, "AdapLeR", AdaplerLoadError)
    try:
        from safetensors.torch import load_file

        config = AdaplerConfig.from_json((path / "adapler_config.json").read_text(encoding="utf-8"))
        pred = ContributionPredictors(config.hidden_size, config.num_layers, config.cp_hidden)
        pred.load_state_dict(load_file(str(path / "predictors.safetensors")))
    except Exception as exc:  # noqa: BLE001 - every failure is a corrupt artifact
        raise AdaplerLoadError(f"Could not load the AdapLeR predictors '{path}': {exc}") from exc
    return freeze(pred), config


@torch.inference_mode()
def contributions(classifier: SequenceClassifier, predictors: ContributionPredictors,
                  input_ids: list[int]) -> torch.Tensor:
    """Every CP's predicted contribution for one text, on the full-length model's states.

    CP_l is applied to the states entering layer l+1 with nothing removed (all weights 1), so every
    token gets a score at every layer and rows compare directly with saliency. (At inference the
    CPs see the shortened sequence; the scores of the tokens still alive differ only through the
    states, which removal changes a little.)

    Args:
        input_ids: ``[N]`` token ids, [CLS] first.

    Returns:
        ``(L, N)`` float32, row l = CP_l's distribution (sums to 1).

    Raises:
        ValueError: the predictors do not fit the encoder's shape.
    """
    enc = classifier.encoder
    if (predictors.hidden_size, predictors.num_layers) != (enc.config.hidden_size, enc.num_layers):
        raise ValueError("the AdapLeR predictors do not fit this encoder's shape")
    ids = torch.tensor([input_ids], dtype=torch.long)  # (1, N)
    hidden = enc.model.embeddings(input_ids=ids)  # (1, N, d)
    w = torch.ones(ids.shape, dtype=torch.float32)
    rows = []
    for j, layer in enumerate(enc.model.encoder.layer):
        rows.append(predictors.distribution(j, hidden, w)[0])  # (N,)
        hidden, _ = run_layer(layer, hidden, None)
    return torch.stack(rows).float()  # (L, N)
