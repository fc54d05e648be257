"""Training AdapLeR (Modarressi et al., ACL 2022; docs/methods.md 2.5, 2.6 and 8.1).

Training never removes tokens physically: before layer l+1 the contribution predictor CP_l scores
the tokens under the current soft keep-mask ``m``; each alive non-[CLS] token gets the penalty
``S = soft_penalty(p, eta_l / sum(m), lambda)`` (log space), which accumulates into the token's
additive attention-mask column for every later layer and multiplies its soft mask; as in the authors'
code the penalty is scaled by the soft mask first (``edits = S m``: ``m *= exp(S m)``, the mask column
``+= S m``; ``--scale-penalty false`` for the unscaled ``S`` the shipped model was trained with).
The temperature lambda rises in stages, so that soft removal becomes hard removal by the end.

Two losses, two optimisers, one step (docs/methods.md 2.6, 8.1):

* ``L_model = CE + gamma * sum_l w_l * KL(q_l || p_l)`` with ``w = (L, ..., 1)``: ``q_l`` is the
  gradient x input saliency of the gold logit times the soft mask CP_l saw (not detached, 2.6),
  renormalised ([CLS] re-weighting theta fixed to 1); each example's KL is weighted by the
  stop-gradient of its largest non-[CLS] mask value ([code, M:1715]). It trains the predictors, and
  in the joint mode the LoRA weights and the head too;
* ``L_speed = CE + phi * mean_b sum_l n_l`` (soft lengths) trains only the thresholds eta, which are
  clipped to [0.01, 1] after every step.

Two modes:

* **joint** (Train-Select, the authors' training with ``--INITIAL_MODEL_PATH ""``): LoRA, head, CPs
  and eta from a fine-tuned head (``sst2-lora``); writes a new head and its predictors;
* **frozen** (the inference-only regime): the head's encoder and classifier stay fixed; only the
  CPs and eta learn.

Checkpoints (docs/methods.md 2.7): after each lambda stage the hard-removal model is scored on
``holdout`` rows taken out of the training file (never on dev, which the results report); the kept
checkpoint has the highest FLOPs speedup among those within ``accuracy_slack`` of the full-length
head's accuracy on those rows, else the most accurate one (both said in the model card).
Saliency targets come from the one fine-tuned head (the authors average three checkpoints).
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..core.artifacts import DEFAULT_HEAD, HEADS_DIR
from ..core.layers import additive_mask, run_layers
from ..core.loading import LoadedEncoder
from ..core.selectors.adapler import (ADAPLER_DIR, DEFAULT_ADAPLER, JOINT_ADAPLER, AdaplerConfig,
                                 AdaplerSelector, ContributionPredictors)
from .. import argtypes as at
from .common import (DEFAULT_DEV, DEFAULT_TRAIN, DEVICE_HELP, ModelCard, TrainerCommand, card_data, epoch_batches,
                     flushed_denormals, frozen, mean_tail, on_device, option, shuffled_rows, warmup_scheduler)

BETA = 0.1
"""Slope parameter beta of the soft-removal penalty (docs/methods.md 2.5, [code])."""


def soft_penalty(x: torch.Tensor, delta: torch.Tensor, lam: float, beta: float = BETA) -> torch.Tensor:
    """AdapLeR's soft-removal penalty ``S(x) <= 0`` in log space (docs/methods.md 2.5).

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


def lambda_at(step: int, total: int, stages) -> float:
    """The soft-removal temperature of a step: the stages spread evenly over the run (the authors
    reassign lambda per epoch, 10 * 10^e over 5 epochs; docs/methods.md 8.1 item 2 maps the stages
    onto fractions of a shorter run)."""
    stages = list(stages)
    return float(stages[min(len(stages) - 1, step * len(stages) // max(1, total))])


@dataclass
class SoftForward:
    """One soft-removal forward pass (training).

    Attributes:
        logits: ``(B, C)`` classifier logits.
        distributions: L tensors ``(B, N)``, CP_l's distribution.
        masks: L tensors ``(B, N)``, the soft keep-mask CP_l saw (before its own removal).
        lengths: ``(B, L)`` soft lengths entering each layer after CP_l's removal, [CLS] included.
    """

    logits: torch.Tensor
    distributions: list[torch.Tensor]
    masks: list[torch.Tensor]
    lengths: torch.Tensor


def soft_forward(model, head, predictors: ContributionPredictors, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor, lam: float, scale_penalty: bool = True) -> SoftForward:
    """Run the encoder with AdapLeR's soft removal (docs/methods.md 2.5); nothing is physically dropped.

    Args:
        model: the encoder (``.embeddings``, ``.encoder.layer``). head: the classifier on [CLS].
        input_ids, attention_mask: ``(B, N)``, right padded, [CLS] first.
        lam: soft-removal temperature (``>= 1e4`` behaves like hard removal).
        scale_penalty: scale the penalty by the current soft mask before applying it (``edits = S * m``,
            the authors' ``modeling_tf_bert.py``); False applies ``S`` unscaled (the project's first version).

    Returns:
        :class:`SoftForward`.
    """
    valid = attention_mask.bool()  # (B, N)
    pad = additive_mask(valid, torch.float32)
    pad = pad[:, 0, 0, :] if pad is not None else torch.zeros(valid.shape, device=valid.device)  # (B, N)
    removable = valid.clone()
    removable[:, 0] = False  # [CLS] is never thresholded (2.4)
    state = {"m": valid.float(), "cum": torch.zeros(valid.shape, device=valid.device)}  # soft keep-mask; summed penalties
    dists, masks, lengths = [], [], []

    def before(j: int, hidden: torch.Tensor) -> torch.Tensor:
        m = state["m"]
        p = predictors.distribution(j - 1, hidden, m)  # (B, N): CP_{j-1} on the states entering layer j
        delta = predictors.thresholds(j - 1, m.sum(1)).unsqueeze(1)  # (B, 1)
        S = soft_penalty(p, delta, lam) * removable  # (B, N)
        dists.append(p)
        masks.append(m)
        edits = S * m if scale_penalty else S  # the authors scale by the soft mask (2.5)
        state["cum"] = (state["cum"] + edits).clamp_min(-10000.0)
        state["m"] = m * torch.exp(edits)
        lengths.append(state["m"].sum(1))
        return (pad + state["cum"])[:, None, None, :]  # (B, 1, 1, N)

    hidden = run_layers(model, input_ids, attention_mask, before=before)
    logits = head(hidden[:, 0])  # (B, C)
    return SoftForward(logits=logits, distributions=dists, masks=masks, lengths=torch.stack(lengths, 1))


def kl_to_saliency(saliency: torch.Tensor, dist: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``KL(q || p)`` per example, ``q = saliency * mask`` normalised to sum 1 (docs/methods.md 2.6).

    Args:
        saliency: ``(B, N)`` non-negative targets (0 on pads). dist: ``(B, N)`` CP distribution.
        mask: ``(B, N)`` soft keep-mask the CP saw (not detached: the authors let the KL reach it).

    Returns:
        ``(B,)`` KL divergences (nats).
    """
    q = saliency * mask
    q = q / q.sum(1, keepdim=True).clamp_min(1e-12)
    eps = 1e-12
    return (q * ((q + eps).log() - (dist + eps).log())).sum(1)


@dataclass
class AdaplerSettings:
    """Settings of one AdapLeR training run (recorded in the model card)."""

    data: str = option(DEFAULT_TRAIN, "training file; its rows give the saliency targets")
    dev: str | None = option(DEFAULT_DEV, "evaluation file for the card's figures ('' for none; never used to choose)")
    head: str = option(DEFAULT_HEAD, "the fine-tuned head: saliency source, and the frozen model or the joint start")
    joint: bool = option(False, parse=at.boolean, help="train LoRA, head, predictors and eta together (Train-Select); else only the "
                                "predictors and eta on the frozen head")
    name: str | None = option(None, "artifact name (default sst2-lora-adapler; sst2-lora-ts-adapler with --joint)")
    out: str | None = option(None, "predictors folder (default assets/adapler/NAME)")
    head_out: str | None = option(None, "the head folder a joint run writes (default assets/heads/NAME)")
    epochs: float = option(1.0, "passes over the training rows", parse=at.positive_float)
    limit: int | None = option(None, "use only this many shuffled training rows (0 = all)", parse=at.limit_or_all)
    holdout: int = option(1000, "training rows held out to choose the checkpoint (not trained on)",
                          parse=at.int_at_least(0, "--holdout"))
    batch_size: int = option(32, "examples per step", parse=at.int_at_least(1, "--batch-size"))
    max_length: int = option(64, "truncation in tokens (64 in the paper's SST-2 runs)", parse=at.max_length)
    lr: float = option(1e-3, "learning rate of the contribution predictors (AdamW)", parse=at.positive_float)
    lora_lr: float = option(5e-4, "learning rate of the LoRA weights (joint)", parse=at.positive_float)
    head_lr: float = option(1e-3, "learning rate of the classification head (joint)", parse=at.positive_float)
    eta_lr: float = option(2e-3, "learning rate of the thresholds eta (Adam)", parse=at.positive_float)
    warmup: float = option(0.06, "warm-up share of the steps (both optimisers)", parse=at.share)
    gamma: float = option(0.005, "KL weight gamma (the paper's SST-2 value)", parse=at.nonneg_float)
    phi: float = option(0.0005, "length-loss weight phi: larger = fewer tokens (the paper's SST-2 value 0.0005)",
                        parse=at.nonneg_float)
    lambdas: tuple[float, ...] = option((10.0, 100.0, 1000.0, 10000.0, 100000.0),
                                        "soft-removal temperatures, spread evenly over the steps", parse=at.float_list)
    accuracy_slack: float = option(0.01, "checkpoint rule: accuracy within this of the full-length head's",
                                   parse=at.share)
    eta_init: float = option(0.25, "initial eta of every layer", parse=at.share)
    scale_penalty: bool = option(True, "scale the soft-removal penalty by the soft mask (edits = S*m), as the "
                                       "authors' code; false: unscaled S (the shipped joint model's training)",
                                 parse=at.boolean)
    device: str = option("cpu", DEVICE_HELP, parse=at.device)
    cp_hidden: int = option(32, "width of each predictor's hidden layer", parse=at.int_at_least(1, "--cp-hidden"))
    seed: int = option(0, "shuffling and initialisation", parse=at.seed)
    group_by_length: bool = option(True, "batches of texts of similar length (less padding), shuffled", parse=at.boolean)
    command: str = option("", "the command line that ran this", cli=False)


def _names(s: AdaplerSettings) -> dict:
    name = s.name or (JOINT_ADAPLER if s.joint else DEFAULT_ADAPLER)
    return {"name": name, "out": s.out or str(ADAPLER_DIR / name), "head_out": s.head_out or str(HEADS_DIR / name)}


def train_adapler(classifier, settings: AdaplerSettings, *, base: LoadedEncoder | None = None,
                  progress: bool = True) -> tuple[ContributionPredictors, AdaplerConfig]:
    """Train AdapLeR's predictors and thresholds (and, with ``settings.joint``, LoRA and head); write the artifact.

    Args:
        classifier: the fine-tuned head (:class:`pyramid.classifier.SequenceClassifier`): saliency
            source; the frozen model, or the joint run's starting point.
        settings: :class:`AdaplerSettings`.
        base: the base encoder (needed with ``joint``: the LoRA adapter is re-opened on it).

    Writes ``predictors.safetensors``, ``adapler_config.json`` and ``README.md`` into the output
    folder; a joint run also writes its head (LoRA + classifier) into ``assets/heads/NAME``.

    Returns:
        ``(predictors in eval mode, config)``.

    Raises:
        DataError: unreadable data. ValueError: ``joint`` without ``base``; bad settings.
    """
    from ..analysis.attribution import saliency_targets
    from ..batching import encode_texts
    from ..data import read_labelled

    s = settings
    if s.joint and base is None:
        raise ValueError("joint AdapLeR training needs the base encoder")
    if s.epochs <= 0 or s.holdout < 0 or not s.lambdas:
        raise ValueError("--epochs must be > 0, --holdout >= 0 and --lambdas not empty")
    torch.manual_seed(s.seed)
    data = read_labelled(s.data, label_names=classifier.labels)
    order = shuffled_rows(len(data), s.seed, None)
    held, train_rows = order[: s.holdout], order[s.holdout:]
    if s.limit is not None:
        train_rows = train_rows[: s.limit]
    enc = classifier.encoder
    ids = encode_texts(enc, [data.texts[i] for i in train_rows], s.max_length)
    labels = [data.labels[i] for i in train_rows]
    held_ids = encode_texts(enc, [data.texts[i] for i in held], s.max_length)
    held_labels = [data.labels[i] for i in held]
    t_start = time.perf_counter()
    with on_device(s.device, classifier.encoder.model, classifier.head):
        targets = saliency_targets(classifier, ids, labels, s.batch_size, progress)

    if s.joint:
        from .heads import trainable_head

        peft_model, model, head = trainable_head(base, classifier.path)
    else:
        model, head, peft_model = enc.model, classifier.head, None
    params_frozen = [] if s.joint else list(model.parameters()) + list(head.parameters())
    with frozen(params_frozen):
        pred, history, chosen = _train(s, model, head, enc, ids, labels, targets, held_ids, held_labels,
                                       classifier, progress)
    seconds = time.perf_counter() - t_start
    names = _names(s)
    head_name = Path(names["head_out"]).name if s.joint else classifier.config.name
    config = AdaplerConfig(
        name=names["name"], base_model=enc.name, head=head_name, hidden_size=enc.config.hidden_size,
        num_layers=enc.num_layers, cp_hidden=s.cp_hidden,
        training={**asdict(s), "lambdas": list(s.lambdas), "examples": len(ids), "holdout_rows": len(held_ids),
                  "steps": history["steps"], "eta": [round(float(x), 5) for x in pred.eta.detach()],
                  "train_seconds": round(seconds, 1), "torch": torch.__version__,
                  "final_ce": mean_tail(history["ce"]), "final_kl": mean_tail(history["kl"]),
                  "checkpoint": chosen},
    )
    out = Path(names["out"])
    if s.joint:
        from .heads import write_head

        head_summary = (f"Fine-tuned jointly with the AdapLeR predictors in `assets/adapler/{names['name']}` "
                        "(soft removal in training, hard removal at inference); see that folder's card.")
        write_head(Path(names["head_out"]), base, peft_model, head, name=head_name, training={
            "data": s.data, "command": s.command, "seed": s.seed, "examples": len(ids), "steps": history["steps"],
            "train_seconds": round(seconds, 1),
            "method": "AdapLeR joint training with soft removal and the lambda stages (docs/methods.md 8.1)"},
            labels=classifier.labels,
            trained_with={"selector": "adapler", "retention": None, "start_layer": None, "init_head": s.head},
            summary_extra=head_summary)
    _save_predictors(out, pred, config)
    if s.dev:
        from ..classifier import load_classifier
        from ..analysis.evaluation import operating_point

        clf = load_classifier(names["head_out"], base) if s.joint else classifier
        config.metrics.update(operating_point(clf, AdaplerSelector(pred, config), s.dev, batch_size=s.batch_size))
        config.metrics["dev_accuracy_full_length_of_the_head"] = operating_point(
            clf, None, s.dev, batch_size=s.batch_size)["dev_accuracy"]
        if s.joint:
            from .heads import record_head_metrics

            record_head_metrics(Path(names["head_out"]), config.metrics, summary_extra=head_summary)
    (out / "adapler_config.json").write_text(config.to_json() + "\n", encoding="utf-8")
    model_card(config).write(out)
    return pred, config


def _train(s: AdaplerSettings, model, head, enc, ids, labels, targets, held_ids, held_labels, classifier, progress):
    """The optimisation loop; returns ``(predictors, history, chosen checkpoint description)``."""
    from tqdm.auto import tqdm

    from ..batching import pad_batch, pad_id_of

    L = enc.num_layers
    pred = ContributionPredictors(enc.config.hidden_size, L, s.cp_hidden, s.eta_init)
    cp_params = list(pred.cps.parameters())
    groups = [{"params": cp_params, "lr": s.lr}]
    lora_params = [p for p in model.parameters() if p.requires_grad]
    if s.joint:
        groups += [{"params": lora_params, "lr": s.lora_lr}, {"params": list(head.parameters()), "lr": s.head_lr}]
    model_params = [p for g in groups for p in g["params"]]
    opt_model = torch.optim.AdamW(groups, weight_decay=0.01, eps=1e-12 if s.joint else 1e-8)
    opt_eta = torch.optim.Adam([pred.eta], lr=s.eta_lr)
    total = max(1, int(round(math.ceil(len(ids) / s.batch_size) * s.epochs)))
    scheds = [warmup_scheduler(o, total, s.warmup) for o in (opt_model, opt_eta)]
    w = torch.arange(L, 0, -1, dtype=torch.float32)  # (L,) layer weights L..1
    pad = pad_id_of(enc)
    rng = random.Random(s.seed)
    history = {"ce": [], "kl": [], "steps": total}
    stage_ends = {int(round(total * (i + 1) / len(s.lambdas))) for i in range(len(s.lambdas))}
    with on_device(s.device, model, head, pred) as device, flushed_denormals():
        reference = _holdout_accuracy(model, head, enc, held_ids, held_labels, None) if held_ids else None
        best, chosen, snapshots = None, "last step (no holdout rows)", []
        bar = tqdm(total=total, desc=f"train AdapLeR ({'joint' if s.joint else 'frozen'})", unit="step",
                   disable=not progress)
        step = 0
        model.train(s.joint)
        head.train(s.joint)
        while step < total:
            for idx in epoch_batches(ids, s.batch_size, rng, s.group_by_length):
                if step >= total:
                    break
                batch = pad_batch([ids[i] for i in idx], pad).to(device)
                sal = torch.zeros(batch.input_ids.shape)  # (B, N)
                for row, i in enumerate(idx):
                    sal[row, : len(targets[i])] = targets[i]
                sal = sal.to(device)
                y = torch.tensor([labels[i] for i in idx], device=device)
                lam = 1000.0 if step == 0 else lambda_at(step, total, s.lambdas)  # the authors' first step runs at 1000
                fwd = soft_forward(model, head, pred, batch.input_ids, batch.attention_mask, lam, s.scale_penalty)
                ce = torch.nn.functional.cross_entropy(fwd.logits, y)
                kls = []
                for p, m in zip(fwd.distributions, fwd.masks):
                    weight = m[:, 1:].max(1).values.detach() if m.shape[1] > 1 else torch.ones(m.shape[0], device=device)  # (B,)
                    kls.append((weight * kl_to_saliency(sal, p, m)).mean())
                kl = torch.stack(kls)  # (L,)
                loss_model = ce + s.gamma * (w.to(device) * kl).sum()
                loss_speed = ce + s.phi * fwd.lengths.sum(1).mean()
                g_model = torch.autograd.grad(loss_model, model_params, retain_graph=True, allow_unused=True)
                (g_eta,) = torch.autograd.grad(loss_speed, [pred.eta])
                for prm, g in zip(model_params, g_model):
                    prm.grad = g if g is not None else torch.zeros_like(prm)
                pred.eta.grad = g_eta
                torch.nn.utils.clip_grad_norm_(model_params, 1.0)
                torch.nn.utils.clip_grad_norm_([pred.eta], 1.0)
                opt_model.step()
                opt_eta.step()
                for sch in scheds:
                    sch.step()
                opt_model.zero_grad(set_to_none=True)
                opt_eta.zero_grad(set_to_none=True)
                pred.clip_eta()
                step += 1
                history["ce"].append(float(ce.detach()))
                history["kl"].append(float(kl.detach().mean()))
                n_full = batch.attention_mask.sum(1).float()
                bar.update(1)
                bar.set_postfix(lam=f"{lam:g}", ce=f"{history['ce'][-1]:.3f}", kl=f"{history['kl'][-1]:.3f}",
                                last=f"{float((fwd.lengths[:, -1].detach() / n_full).mean()):.2f}",
                                eta=",".join(f"{float(e):.2f}" for e in pred.eta.detach()))
                if step in stage_ends and held_ids:
                    acc, speed = _holdout_accuracy(model, head, enc, held_ids, held_labels, pred)
                    model.train(s.joint)
                    head.train(s.joint)
                    ok = acc >= reference[0] - s.accuracy_slack
                    snapshots.append({"step": step, "lambda": lam, "holdout_accuracy": round(acc, 4),
                                      "holdout_flops_speedup": round(speed, 3), "within_slack": ok})
                    score = (1, speed) if ok else (0, acc)
                    if best is None or score > best[0]:
                        best = (score, _snapshot(pred, model, head, s.joint))
                        chosen = (f"step {step} (lambda {lam:g}): holdout accuracy {acc:.4f} (full-length head "
                                  f"{reference[0]:.4f}), holdout FLOPs speedup {speed:.2f}x"
                                  + ("" if ok else f"; no checkpoint was within {s.accuracy_slack} of the full-length "
                                                  "accuracy, so the most accurate one was kept"))
        bar.close()
        if best is not None:
            _restore(best[1], pred, model, head, s.joint)
    history["checkpoints"] = snapshots
    pred.eval()
    model.eval()
    head.eval()
    return pred, history, {"rule": chosen, "stages": snapshots}


@torch.inference_mode()
def _holdout_accuracy(model, head, enc, ids, labels, pred) -> tuple[float, float]:
    """Hard-removal accuracy and mean FLOPs speedup on the holdout rows (full length when ``pred`` is None)."""
    from ..classifier import HeadConfig, SequenceClassifier
    from ..analysis.evaluation import run_dataset
    from ..core.loading import LoadedEncoder
    from ..core.schedule import Schedule
    from ..core.selectors import full_length_selector

    model.eval()
    head.eval()
    encoder = LoadedEncoder(model=model, tokenizer=enc.tokenizer, name=enc.name, path=enc.path)
    clf = SequenceClassifier(encoder, head, HeadConfig(name="holdout", labels=[str(i) for i in range(head.out.out_features)],
                                                       base_model=enc.name,
                                                       hidden_size=enc.config.hidden_size,
                                                       num_layers=enc.num_layers, lora={}), "")
    sel = AdaplerSelector(pred, None) if pred is not None else full_length_selector()
    run = run_dataset(clf, ids, sel, Schedule(retention=1.0), batch_size=64)
    acc = float((run.predictions == torch.tensor(labels)).double().mean())
    return acc, float(run.speedup.mean())


def _snapshot(pred, model, head, joint: bool) -> dict:
    snap = {"pred": copy.deepcopy(pred.state_dict())}
    if joint:
        snap["model"] = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
        snap["head"] = copy.deepcopy(head.state_dict())
    return snap


def _restore(snap: dict, pred, model, head, joint: bool) -> None:
    pred.load_state_dict(snap["pred"])
    if joint:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for k, v in snap["model"].items():
                params[k].copy_(v)
        head.load_state_dict(snap["head"])


def _save_predictors(out: Path, pred: ContributionPredictors, config: AdaplerConfig) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in pred.state_dict().items()}, str(out / "predictors.safetensors"))
    (out / "adapler_config.json").write_text(config.to_json() + "\n", encoding="utf-8")


def model_card(config: AdaplerConfig) -> ModelCard:
    """The model card of an AdapLeR artifact."""
    t = config.training
    joint = bool(t.get("joint"))
    how = (f"**Joint training (Train-Select)** from the fine-tuned head `{t.get('head')}`: LoRA (lr {t.get('lora_lr')}), "
           f"the classification head (lr {t.get('head_lr')}) and the predictors (lr {t.get('lr')}) on "
           f"CE + gamma * sum_l w_l KL_l (AdamW, eps 1e-12), eta (lr {t.get('eta_lr')}, Adam) on CE + phi * soft lengths, "
           "in the same step, as the authors' code does; their SST-2 command starts from the pre-trained model, this "
           "run from a fine-tuned head, one recipe for every Train-Select model (docs/methods.md 8). The head "
           f"it trained is `assets/heads/{config.head}`."
           if joint else
           f"**Against the frozen fine-tuned head** `{config.head}` (the inference-only regime): its encoder (LoRA "
           "merged) and classifier are not updated; only the predictors and eta are (the paper trains BERT jointly: "
           "see the `sst2-lora-ts-adapler` artifact for that).")
    penalty_note = ("" if t.get("scale_penalty", False) else
                    "\n\nSoft removal applied the penalty S unscaled (m *= exp(S)); the authors scale it by the soft mask "
                    "(edits = S m), the default since 2026-12 (docs/methods.md 2.5): this artifact predates it.")
    phi = t.get("phi")
    phi_note = ("" if phi in (None, 0.0005) or not joint else
                f"\n\n**Chosen with SST-2 dev known**: phi = {phi:g} (the paper's SST-2 value is 0.0005) was picked among "
                "0.0005, 0.002 and 0.005 after their SST-2 dev figures were seen (docs/methods.md 8.1); the dev figures "
                "below are therefore not held out for that choice.")
    slack = t.get("accuracy_slack", 0.01)
    slack_note = ("" if slack == 0.01 else
                  f" Accuracy slack {slack:g}, not the authors' 0.01 (a stated deviation, docs/methods.md 8.1: with 0.01 "
                  "no checkpoint of the phi = 0.005 run qualified and the fallback kept the first, slowest stage).")
    method = f"""{how}

Soft removal with the temperature lambda rising through {', '.join(f'{x:g}' for x in t.get('lambdas', []))}, spread
evenly over the {t.get('steps')} steps (the authors change it per epoch over 5 epochs; docs/methods.md 8.1 item 2).
KL targets: gradient x input saliency of the gold logit of `{t.get('head')}` (one checkpoint; the authors
average three), times the soft mask each predictor saw (not detached), theta fixed to 1, each example's KL
weighted by its largest non-[CLS] mask value. gamma {t.get('gamma')}, phi {t.get('phi')}.

Checkpoint: after each lambda stage the hard-removal model was scored on {t.get('holdout_rows')} training rows held
out from this run (never on dev); kept: {t.get('checkpoint', {}).get('rule') if isinstance(t.get('checkpoint'), dict) else t.get('checkpoint')}.{slack_note}
Those rows are SST-2 train rows that `{t.get('head')}` itself trained on, so the rule sees whether removal hurts
what the head learned, not whether it hurts generalisation (docs/methods.md 2.7).{penalty_note}{phi_note}"""
    summary = (f"{config.num_layers} contribution predictors (Linear {config.hidden_size} -> {config.cp_hidden}, GELU, "
               f"Linear {config.cp_hidden} -> 1, softmax over [CLS] and the alive tokens) and learned per-layer thresholds "
               f"eta for the `{config.head}` sentiment head on `{config.base_model}` (docs/methods.md section 2). At "
               "inference a token stays before layer l+1 iff its score >= eta_l / n_l; [CLS] always stays. Learned eta: "
               + ", ".join(f"{e:.3f}" for e in t.get("eta", [])) + ".")
    hyper = {k: v for k, v in t.items() if k not in ("command", "data", "dev", "out", "head_out", "checkpoint", "eta")}
    return ModelCard(
        title=f"{config.name}: AdapLeR contribution predictors for `{config.head}`",
        summary=summary, method=method,
        data=card_data(t, rows=f"{t.get('holdout_rows')} rows held out for the checkpoint choice, "
                            f"{t.get('examples')} trained on"),
        metrics=config.metrics, hyper=hyper, command=t.get("command", ""),
        limits=(f"Trained on SST-2 phrases; on long reviews (IMDB) the learned thresholds meet lengths they never saw. "
                f"The predictors read the `{config.head}` encoder's states: with other weights they are meaningless."),
    )


def run(settings: AdaplerSettings, base: LoadedEncoder, progress: bool = True) -> dict:
    """``python -m pyramid train-adapler``: train and return the JSON summary."""
    from ..classifier import load_classifier

    classifier = load_classifier(settings.head, base)
    _, config = train_adapler(classifier, settings, base=base, progress=progress)
    return {"adapler": config.name, "head": config.head, "eta": config.training["eta"], "metrics": config.metrics}


COMMAND = TrainerCommand(name="train-adapler",
                         help="train AdapLeR: contribution predictors and thresholds (with --joint also LoRA and head)",
                         settings=AdaplerSettings, run=run, flush_denormals=True)
