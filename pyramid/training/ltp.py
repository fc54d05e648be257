"""Training LTP, Learned Token Pruning (Kim et al., KDD 2022; docs/methods.md 5.2 and 8.4): soft masks, then hard.

**Soft stage** ([code, L1]): after each layer j where LTP acts, every token's output is multiplied by
the soft mask ``m_j(t) = sigmoid((s_j(t) - theta_j) / T)`` (``s_j`` the mean attention it receives,
:mod:`pyramid.core.selectors.ltp`; [CLS] kept at 1 by the encoder's rule); the attention mask is left
unchanged, so nothing is removed yet. The loss is ``CE + lambda * sum_j mean m_j``, the mean over the
padded batch as in the authors' code (``--mask-mean valid`` averages over the real tokens only, the
project's first version, which made lambda several times stronger on short texts); the gradient trains
the LoRA weights, the head and the threshold offsets, which have their own, much smaller learning rate
(the thresholds are ~0.01), all clipped together to norm 1 as the authors do. No warm-up, no weight decay,
linear decay.

**Hard stage**: the thresholds are frozen; the model is fine-tuned with hard pruning (tokens below the
threshold physically removed, as at inference) by :func:`pyramid.training.heads.train_classifier`.

Both stages start from a fine-tuned head (``sst2-lora``): the authors fine-tune the task model
first, then run the soft and the hard stage. Writes the head (``assets/heads/NAME``) and two threshold
artifacts: ``NAME`` (Train-Select: the thresholds on the head they were trained with) and the same
thresholds on ``sst2-lora`` (the inference-only regime).
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import argtypes as at
from ..core.artifacts import DEFAULT_HEAD, HEADS_DIR
from ..core.attention import significance
from ..core.layers import run_layers
from ..core.loading import LoadedEncoder
from ..core.selectors.ltp import INFERENCE_LTP, JOINT_LTP, LTP_DIR, LtpConfig, LtpSelector, LtpThresholds
from .common import (DEFAULT_DEV, DEFAULT_TRAIN, DEVICE_HELP, ModelCard, TrainerCommand, card_data, card_hyper,
                     epoch_batches, flushed_denormals, mean_tail, on_device, option, shuffled_rows)


@dataclass
class LtpSettings:
    """Settings of one LTP run (recorded in the model card)."""

    data: str = option(DEFAULT_TRAIN, "training file")
    dev: str | None = option(DEFAULT_DEV, "evaluation file for the card's figures ('' for none; never used to choose)")
    head: str = option(DEFAULT_HEAD, "the fine-tuned head both stages start from")
    name: str = option(JOINT_LTP, "artifact name (head and thresholds)")
    out: str | None = option(None, "thresholds folder (default assets/ltp/NAME)")
    head_out: str | None = option(None, "head folder (default assets/heads/NAME)")
    inference_out: str | None = option(None, "folder of the same thresholds on --head (default assets/ltp/sst2-lora-ltp; "
                                             "'' for none)")
    soft_epochs: float = option(1.0, "passes of the soft stage", parse=at.positive_float)
    hard_epochs: float = option(1.0, "passes of the hard stage", parse=at.positive_float)
    limit: int | None = option(None, "use only this many shuffled training rows (0 = all)", parse=at.limit_or_all)
    batch_size: int = option(32, "examples per step", parse=at.int_at_least(1, "--batch-size"))
    max_length: int = option(64, "truncation in tokens", parse=at.max_length)
    mask_mean: str = option("padded", "the regulariser's mean soft mask over the padded batch (the authors') or over "
                                      "the valid tokens only (valid; the shipped model's training)",
                            parse=at.choice("padded", "valid"))
    lam: float = option(0.1, "weight lambda of the mean soft mask in the loss: larger = fewer tokens "
                             "(the README's range 0.01-0.2)", parse=at.nonneg_float)
    theta_final: float = option(0.02, "base threshold of the last layer (scores average 1/N_ref = 0.0156)",
                                parse=at.positive_float)
    reference_length: int = option(64, "N_ref of the score: LTP's padded length for SST-2",
                                   parse=at.int_at_least(1, "--reference-length"))
    temperature: float = option(1e-3, "T of the soft masks (the README's range 1e-4 to 2e-3)", parse=at.positive_float)
    lr: float = option(5e-4, "soft stage: LoRA learning rate", parse=at.positive_float)
    head_lr: float = option(1e-3, "soft stage: head learning rate", parse=at.positive_float)
    theta_lr: float = option(2e-5, "soft stage: threshold learning rate (never the LoRA one: theta ~ 0.01)",
                             parse=at.positive_float)
    hard_lr: float = option(2.5e-4, "hard stage: LoRA and head learning rate", parse=at.positive_float)
    seed: int = option(0, "shuffling, initialisation, dropout", parse=at.seed)
    group_by_length: bool = option(True, "batches of texts of similar length (less padding), shuffled", parse=at.boolean)
    device: str = option("cpu", DEVICE_HELP, parse=at.device)
    command: str = option("", "the command line that ran this", cli=False)


def soft_mask_forward(model, head, thresholds: LtpThresholds, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      temperature: float, points) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """LTP's soft-stage forward (module docstring): ``(logits (B, C), soft masks (B, N) per point)``."""
    valid = attention_mask.bool()
    masks: list[torch.Tensor] = []

    def after(j: int, hidden: torch.Tensor, probs):
        if j not in points:
            return None
        s = thresholds.scores(significance(probs, valid, include_self=True))  # (B, N), keeps the graph
        m = torch.sigmoid((s - thresholds.threshold(j, floor=False)) / temperature) * valid.float()
        m = torch.cat([torch.ones_like(m[:, :1]), m[:, 1:]], 1)  # [CLS] stays
        masks.append(m)
        return hidden * m.unsqueeze(-1)  # (B, N, d)

    hidden = run_layers(model, input_ids, attention_mask, after=after, output_attention_probs=True)
    return head(hidden[:, 0]), masks


def train_ltp(base: LoadedEncoder, settings: LtpSettings, *, progress: bool = True) -> tuple[LtpThresholds, LtpConfig]:
    """Run both stages and write the head and the threshold artifacts (module docstring).

    Returns:
        ``(thresholds in eval mode, the Train-Select config)``.

    Raises:
        DataError: unreadable data. HeadLoadError: the starting head is missing.
    """
    from tqdm.auto import tqdm

    from ..batching import encode_texts, pad_batch, pad_id_of
    from ..data import read_labelled
    from .common import warmup_scheduler
    from .heads import TrainSettings, train_classifier, trainable_head, write_head

    s = settings
    torch.manual_seed(s.seed)
    rng = random.Random(s.seed)
    from ..classifier import HeadConfig, resolve_head_path

    head_labels = HeadConfig.from_json((resolve_head_path(s.head) / "head_config.json").read_text(encoding="utf-8")).labels
    data = read_labelled(s.data, label_names=head_labels)
    order = shuffled_rows(len(data), s.seed, s.limit)
    ids = encode_texts(base, [data.texts[i] for i in order], s.max_length)
    labels = torch.tensor([data.labels[i] for i in order])
    L = base.num_layers
    points = [j for j in range(1, L) if 2 <= j <= L - 1]
    peft_model, model, head = trainable_head(base, s.head)
    thresholds = LtpThresholds(L, s.theta_final, s.reference_length)
    model_params = [p for p in model.parameters() if p.requires_grad]
    opt_model = torch.optim.AdamW([{"params": model_params, "lr": s.lr},
                                   {"params": list(head.parameters()), "lr": s.head_lr}], weight_decay=0.0)
    opt_theta = torch.optim.AdamW([thresholds.offset], lr=s.theta_lr, weight_decay=0.0)
    total = max(1, int(round(math.ceil(len(ids) / s.batch_size) * s.soft_epochs)))
    scheds = [warmup_scheduler(o, total, 0.0) for o in (opt_model, opt_theta)]
    pad = pad_id_of(base)
    history = {"ce": [], "mask": []}
    t0 = time.perf_counter()
    model.train()
    head.train()
    bar = tqdm(total=total, desc="LTP soft stage", unit="step", disable=not progress)
    step = 0
    with on_device(s.device, model, head, thresholds) as device, flushed_denormals():
        while step < total:
            for idx in epoch_batches(ids, s.batch_size, rng, s.group_by_length):
                if step >= total:
                    break
                batch = pad_batch([ids[i] for i in idx], pad).to(device)
                logits, masks = soft_mask_forward(model, head, thresholds, batch.input_ids, batch.attention_mask,
                                                  s.temperature, points)
                ce = torch.nn.functional.cross_entropy(logits, labels[idx].to(device))
                valid = batch.attention_mask.float()
                if s.mask_mean == "valid":
                    mean_mask = torch.stack([(m * valid).sum() / valid.sum() for m in masks])  # (points,)
                else:  # the authors': the mean over every position of the padded batch
                    mean_mask = torch.stack([m.mean() for m in masks])  # (points,)
                loss = ce + s.lam * mean_mask.sum()
                opt_model.zero_grad(set_to_none=True)
                opt_theta.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model_params + list(head.parameters()) + [thresholds.offset], 1.0)
                opt_model.step()
                opt_theta.step()
                for sch in scheds:
                    sch.step()
                step += 1
                history["ce"].append(float(ce.detach()))
                history["mask"].append(float(mean_mask.detach().mean()))
                bar.update(1)
                bar.set_postfix(ce=f"{mean_tail(history['ce'], 20):.3f}", mask=f"{mean_tail(history['mask'], 20):.2f}",
                                theta=",".join(f"{float(thresholds.threshold(j).detach()):.4f}" for j in points))
    bar.close()
    soft_seconds = time.perf_counter() - t0
    model.eval()
    head.eval()
    thresholds.eval()
    for p in thresholds.parameters():
        p.requires_grad_(False)

    head_out = Path(s.head_out or HEADS_DIR / s.name)
    config = LtpConfig(name=s.name, base_model=base.name, head=head_out.name, hidden_size=base.config.hidden_size,
                       num_layers=L, theta_final=s.theta_final, reference_length=s.reference_length,
                       temperature=s.temperature)
    with tempfile.TemporaryDirectory() as tmp:
        soft_head = Path(tmp) / "soft"
        write_head(soft_head, base, peft_model, head, name=f"{s.name}-soft", training={"data": s.data},
                   labels=head_labels)
        hard = TrainSettings(data=s.data, dev=s.dev, out=str(head_out), name=head_out.name, epochs=s.hard_epochs,
                             limit=s.limit, batch_size=s.batch_size, lr=s.hard_lr, head_lr=s.hard_lr,
                             warmup=0.0, max_length=s.max_length, seed=s.seed, init_head=str(soft_head),
                             labels=head_labels,
                             init_head_label=f"this run's soft stage, itself started from `{s.head}`",
                             device=s.device, command=s.command)
        clf = train_classifier(base, hard, progress=progress, selector=LtpSelector(thresholds, config))
    config.training = {**asdict(s), "points": points, "soft_steps": total,
                       "thresholds": [round(float(thresholds.threshold(j).detach()), 6) for j in range(1, L + 1)],
                       "soft_seconds": round(soft_seconds, 1), "total_seconds": round(time.perf_counter() - t0, 1),
                       "final_soft_ce": mean_tail(history["ce"]), "final_soft_mask_mean": mean_tail(history["mask"]),
                       "torch": torch.__version__}
    out = Path(s.out or LTP_DIR / s.name)
    _save(out, thresholds, config)
    if s.dev:
        from ..analysis.evaluation import operating_point

        config.metrics.update(operating_point(clf, LtpSelector(thresholds, config), s.dev))
        config.metrics["dev_accuracy_full_length_of_the_head"] = operating_point(clf, None, s.dev)["dev_accuracy"]
    _save(out, thresholds, config)
    model_card(config).write(out)
    inference_out = INFERENCE_LTP if s.inference_out is None else s.inference_out
    if inference_out:
        from ..classifier import load_classifier

        inf = LtpConfig(**{**asdict(config), "name": Path(inference_out).name, "head": s.head, "metrics": {}})
        inf_dir = Path(inference_out) if "/" in str(inference_out) else LTP_DIR / inference_out
        if s.dev:
            from ..analysis.evaluation import operating_point

            inf.metrics.update(operating_point(load_classifier(s.head, base), LtpSelector(thresholds, inf), s.dev))
        _save(inf_dir, thresholds, inf)
        model_card(inf, transplanted_from=config.name).write(inf_dir)
    return thresholds, config


def _save(out: Path, thresholds: LtpThresholds, config: LtpConfig) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in thresholds.state_dict().items()}, str(out / "thresholds.safetensors"))
    (out / "ltp_config.json").write_text(config.to_json() + "\n", encoding="utf-8")


def model_card(config: LtpConfig, transplanted_from: str | None = None) -> ModelCard:
    """The model card of an LTP threshold artifact."""
    t = config.training
    thr = ", ".join(f"L{j}: {v:.4f}" for j, v in enumerate(t.get("thresholds", []), start=1) if j in t.get("points", []))
    if transplanted_from:
        method = (f"The thresholds of `{transplanted_from}` (trained with LTP's soft and hard stages together with "
                  f"the LoRA weights of that head), applied unchanged to `{config.head}`, a model fine-tuned without "
                  "pruning: the inference-only regime. Scores are on the same scale at every length (1 / N_ref on "
                  "average), so the thresholds carry over; the model never saw pruning.")
    else:
        method = (f"From the fine-tuned head `{t.get('head')}`: **soft stage** ({t.get('soft_steps')} steps): each "
                  f"layer's output times sigmoid((s - theta) / T), T = {config.temperature}, attention mask unchanged; "
                  f"loss CE + lambda * sum of mean soft masks, lambda = {t.get('lam')}; LoRA lr {t.get('lr')}, head lr "
                  f"{t.get('head_lr')}, thresholds lr {t.get('theta_lr')} (AdamW, no warm-up, no weight decay). **Hard "
                  f"stage**: thresholds frozen, LoRA and head fine-tuned with hard pruning (lr {t.get('hard_lr')}, "
                  f"{t.get('hard_epochs')} epoch). Thresholds start at theta_final (j - 1) / L with theta_final = "
                  f"{config.theta_final}; the first layer never prunes (as in the authors' code). The head is "
                  f"`assets/heads/{config.head}`. Deviations: one epoch per stage (the authors: 1 soft epoch for "
                  "large GLUE sets and 5 hard ones, best dev epoch); LoRA instead of full fine-tuning; the score "
                  f"divides by a fixed N_ref = {config.reference_length} because tokens are removed physically.")
    if t.get("mask_mean", "valid") == "valid":
        method += (" This artifact predates two corrections to the authors' code (docs/methods.md 8.4): its "
                   "regulariser averaged the soft masks over the real tokens only (the authors: over the padded batch, "
                   "which makes lambda weaker on batches of short texts), and its thresholds were left out of the "
                   "gradient clipping (the authors clip them with the rest).")
    return ModelCard(
        title=f"{config.name}: LTP thresholds for `{config.head}`",
        summary=(f"Learned per-layer thresholds on the mean attention a token receives, for the `{config.head}` head on "
                 f"`{config.base_model}` (docs/methods.md 5.2). A token stays after layer j iff s_j(t) >= theta_j; "
                 f"learned thresholds: {thr}."),
        method=method,
        data=card_data(t),
        metrics=config.metrics, hyper=card_hyper(t),
        command=t.get("command", ""),
        limits=f"The thresholds were learned on short SST-2 phrases with `{t.get('head')}`'s attention.",
    )


def run(settings: LtpSettings, base: LoadedEncoder, progress: bool = True) -> dict:
    """``python -m pyramid train-ltp``: train both stages and return the JSON summary."""
    _, config = train_ltp(base, settings, progress=progress)
    return {"ltp": config.name, "head": config.head, "thresholds": config.training["thresholds"],
            "metrics": config.metrics}


COMMAND = TrainerCommand(name="train-ltp", help="train LTP: learned attention thresholds with soft, then hard masks",
                         settings=LtpSettings, run=run, flush_denormals=True)
