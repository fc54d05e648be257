"""Train-Select for a user's own classifier: a ``*ForSequenceClassification`` checkpoint fine-tuned with a
selector in the loop, written as a checkpoint of the same class.

``python -m pyramid train --model DIR --data FILE --selector S --retention-range LO,HI`` lands here when
DIR is a fine-tuned classifier checkpoint (:attr:`pyramid.core.loading.LoadedEncoder.has_own_head`). What it
does (docs/methods.md 8.6):

* the model is the checkpoint itself: its own head (pooler, classifier: whatever its transformers class
  has) and its ``id2label``, any number of labels, single-label (softmax, cross-entropy) or multi-label
  (``problem_type == "multi_label_classification"``: a sigmoid per class, binary cross-entropy against
  the one-hot of each row's label);
* the step is the default model's Train-Select step (:func:`pyramid.training.lengthdrop.fit`, the same
  code): with ``--retention-range`` LengthDrop's sandwich, whose sub-models are distilled from the full-
  length outputs of the checkpoint being trained (in-place distillation: at the first step these are the
  checkpoint's own outputs; the full pass keeps learning from the labels, as in LengthDrop), else one
  fixed retention;
* LoRA adapters (peft) on every linear layer of the encoder's layers, with the head's own weights
  trained in full (``--full``: every weight at ``--full-lr``);
* the result is written as the checkpoint's class with ``save_pretrained`` (safetensors, LoRA merged
  into the weights, the same ``id2label`` and tokenizer), so that ``AutoModelForSequenceClassification``
  loads it as it is, with ``train_select.json`` (what it was trained with) and a model card, into
  ``<model cache>/<checkpoint>-ts-<selector>`` beside the checkpoint: there the app, ``evaluate --regime
  train-select`` and :class:`pyramid.api.Model` find it as that checkpoint's Train-Select model for the
  selector. It is written to a temporary folder beside it and renamed when complete, so a failed run
  leaves nothing half-written.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..core.artifacts import TRAIN_SELECT_FILE, checkpoint_train_select_name
from ..batching import encode_texts, pad_id_of
from ..data import DataError, read_labelled
from ..core.encoder import PyramidEncoder
from ..core.loading import LoadedEncoder, encoder_from_model
from ..core.schedule import Schedule
from ..plan import checkpoint_refusal
from ..core.selectors import full_length_selector, get_selector
from .common import ModelCard, shuffled_rows
from .lengthdrop import Objective, check_settings, dev_file, fit

DEV_RETENTIONS = (1.0, 0.5, 0.3, 0.1)
"""Final retentions at which the card reports the dev accuracy of a LengthDrop model (with 95% intervals)."""


def train_checkpoint(base: LoadedEncoder, settings, *, progress: bool = True) -> dict:
    """Fine-tune a Train-Select model of a classifier checkpoint and write it (see the module docstring).

    Args:
        base: the checkpoint, loaded by :func:`pyramid.core.loading.load_encoder` (``classifier_model`` set).
        settings: :class:`pyramid.training.heads.TrainSettings` (``selector`` required).

    Returns:
        The command's JSON summary: ``{"model", "out", "selector", "metrics"}``.

    Raises:
        ValueError: not a classifier, a selector that cannot train here, bad settings.
        DataError: unreadable file, labels the checkpoint does not know, a single class.
    """
    from ..classifier import CheckpointClassifier

    s = settings
    if base.classifier_model is None:
        raise ValueError(f"'{base.name}' is not a sequence-classification checkpoint"
                         + (f": {base.head_note}" if base.head_note else ""))
    reason = checkpoint_refusal(s.selector)
    if reason:
        raise ValueError(f"cannot train '{base.name}' with --selector {s.selector}: {reason}")
    check_settings(s)
    source = CheckpointClassifier(base)
    labels_names = source.labels
    if s.labels and [x.lower() for x in s.labels] != [x.lower() for x in labels_names]:
        raise ValueError(f"--labels {','.join(s.labels)} differ from the checkpoint's own id2label {labels_names}")
    name = s.name or checkpoint_train_select_name(base.name, s.selector)
    if not s.out and not os.path.isdir(base.path):
        raise ValueError(f"'{base.name}' is not a local folder: give --out for its Train-Select model (or copy the "
                         "checkpoint into the model cache first, where the app finds both)")
    out = Path(s.out) if s.out else Path(base.path).parent / name
    s = replace(s, labels=labels_names, dev=dev_file(s))

    data = read_labelled(s.data, s.text_column, s.label_column, label_names=labels_names)
    if len(set(data.labels)) < 2:
        raise DataError(f"{s.data}: every row has the label '{labels_names[data.labels[0]]}'; training needs at "
                        "least two classes")
    dev = read_labelled(s.dev, s.text_column, s.label_column, label_names=labels_names) if s.dev else None

    torch.manual_seed(s.seed)
    order = shuffled_rows(len(data), s.seed, s.limit)
    texts = [data.texts[i] for i in order]
    labels = torch.tensor([data.labels[i] for i in order])

    clf = copy.deepcopy(base.classifier_model)  # the checkpoint itself is not modified
    model = clf.base_model
    if s.full:
        peft_model = None
        groups = [([p for p in clf.parameters() if p.requires_grad], s.full_lr)]
    else:
        from peft import get_peft_model

        from ..classifier import lora_config

        # the head: every module outside the base model, and the base model's pooler (BERT, ALBERT), which the
        # head reads and no LoRA target covers
        head_params = [p for n, p in clf.named_parameters()
                       if not n.startswith(clf.base_model_prefix + ".") or ".pooler." in n]
        peft_model = get_peft_model(model, lora_config(s.lora_r, s.lora_alpha, s.lora_dropout, family=base.family))
        for p in head_params:
            p.requires_grad_(True)
        in_head = {id(p) for p in head_params}
        lora = [p for p in model.parameters() if p.requires_grad and id(p) not in in_head]
        groups = [(lora, s.lr), (head_params, s.head_lr)]
    encoder = encoder_from_model(model, base.tokenizer, name=base.name)
    selector = get_selector(s.selector)
    full_pyramid = PyramidEncoder(encoder, full_length_selector(), Schedule(retention=1.0))
    lo_hi = tuple(s.retention_range) if s.retention_range else None

    def pyramid_at(rho: float) -> PyramidEncoder:
        """The pyramid with the run's selector at final retention ``rho``."""
        if rho >= 1.0:
            return full_pyramid
        options = {"detach_parked": True} if s.detach_rejoined and selector.routing == "rejoin" else None
        return PyramidEncoder(encoder, selector, Schedule(retention=rho, start_layer=s.start_layer),
                              proportional_attention=s.proportional_attention, routing_options=options)

    family = base.family
    objective = Objective(logits=lambda o: family.classification_logits(clf, o.last_hidden_state),  # (B, C)
                          num_labels=len(labels_names), multi_label=source.multi_label)
    ids = encode_texts(encoder, texts, s.max_length)
    clf.train()
    seconds, steps = fit(s, ids, labels, groups=groups, full_pyramid=full_pyramid, pyramid_at=pyramid_at,
                         objective=objective, num_layers=encoder.num_layers, pad=pad_id_of(encoder), name=name,
                         lo_hi=lo_hi, fixed_rho=s.retention, modules=(clf,), progress=progress)
    clf.eval()
    if peft_model is not None:
        merged = peft_model.merge_and_unload()
        setattr(clf, clf.base_model_prefix, merged)

    record = {
        "base_model": base.name, "selector": selector.name,
        "retention_range": list(lo_hi) if lo_hi else None, "retention": None if lo_hi else s.retention,
        "start_layer": s.start_layer, "sandwich": s.sandwich if lo_hi else None,
        "labels": list(labels_names), "multi_label": source.multi_label, "lora": not s.full,
        "training": {**{k: v for k, v in asdict(s).items() if k not in ("out", "command", "name", "fp16_weights",
                                                                      "init_head", "init_head_label")},
                     "examples": len(ids), "steps": steps, "train_seconds": round(seconds, 1),
                     "torch": torch.__version__},
        "command": s.command, "metrics": {},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the model from a server run by another user
    try:
        _save(clf, base, tmp)
        if dev is not None:
            record["metrics"] = _dev_metrics(tmp, dev, selector.name, lo_hi, s)
        (tmp / TRAIN_SELECT_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        checkpoint_card(record, name).write(tmp)
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"model": name, "out": str(out), "selector": selector.name, "metrics": record["metrics"]}


def _save(clf, base: LoadedEncoder, folder: Path) -> None:
    """``save_pretrained`` of the classifier (safetensors) and its tokenizer, loadable by the transformers
    class as it is (the project's attention function is not recorded in the config)."""
    cfg = clf.config
    saved = getattr(cfg, "_attn_implementation_internal", None)
    try:
        cfg._attn_implementation_internal = None  # "pyramid" is registered only inside this project
    except AttributeError:  # pragma: no cover - other transformers versions
        saved = None
    try:
        clf.save_pretrained(str(folder), safe_serialization=True)
    finally:
        if saved is not None:
            cfg._attn_implementation_internal = saved
    base.tokenizer.save_pretrained(str(folder))


def _dev_metrics(folder: Path, dev, selector: str, lo_hi, s) -> dict:
    """Dev accuracy of the written model, full length and under its selector, with 95% intervals."""
    from ..classifier import CheckpointClassifier
    from ..analysis.evaluation import evaluate
    from ..core.loading import load_encoder

    clf = CheckpointClassifier(load_encoder(str(folder), allow_hub=False))
    rhos = DEV_RETENTIONS if lo_hi else (1.0, s.retention)
    rows = evaluate(clf, dev.with_labels(clf.labels), [selector], rhos, start_layer=s.start_layer, progress=False)
    metrics = {"dev": s.dev, "dev_n": rows[0]["n"]}
    for r in rows:
        key = "full_length" if r["retention"] >= 1.0 else f"{selector}_rho{r['retention']:g}"
        metrics[f"dev_accuracy_{key}"] = round(r["accuracy"], 4)
        metrics[f"dev_accuracy_{key}_ci95"] = f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        metrics[f"dev_flops_speedup_{key}"] = round(r["flops_speedup"], 3)
    return metrics


def _replace_folder(tmp: Path, out: Path) -> None:
    """Put the finished folder ``tmp`` at ``out`` (replacing an earlier run's) with renames only."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:  # put the earlier model back
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def checkpoint_card(record: dict, name: str) -> ModelCard:
    """The model card of a checkpoint's Train-Select model (what it is, how, data, dev figures, command)."""
    t = record["training"]
    n = len(record["labels"])
    kind = "multi-label" if record["multi_label"] else "single-label"
    if record["retention_range"]:
        lo, hi = record["retention_range"]
        how = (f"LengthDrop's sandwich rule (Kim & Cho, ACL 2021; docs/methods.md 8.5): per step the full model "
               f"(label loss), the smallest sub-model (rho = {lo}) and {record['sandwich']} sub-models at retentions "
               f"drawn from [{lo}, {hi}], each distilled from the full-length outputs of the model being trained "
               f"(in-place distillation), one optimiser step: one model for every retention in that range"
               if (record["sandwich"] or 0) >= 0 else
               f"the final retention drawn per step uniformly from [{lo}, {hi}]")
    else:
        how = f"the fixed final retention {record['retention']} (Pyramid-BERT's procedure, docs/methods.md 1.5)"
    tuning = ("LoRA adapters (peft) on every linear layer of the encoder's layers "
              f"(r = {t['lora_r']}, alpha = {t['lora_alpha']}, lr {t['lr']}), merged into the weights, and the "
              f"checkpoint's own head trained in full (lr {t['head_lr']})" if record["lora"] else
              f"every weight fine-tuned (lr {t['full_lr']})")
    summary = (f"The Train-Select model of the classifier checkpoint `{record['base_model']}` for the "
               f"`{record['selector']}` selector: the same `*ForSequenceClassification` class, head and labels "
               f"({n} labels, {kind}: {', '.join(record['labels'])}), fine-tuned with that selector in the loop. "
               "`AutoModelForSequenceClassification.from_pretrained` loads this folder as it is; Pyramid Lens "
               "uses it for the Train-Select regime of that checkpoint.")
    method = (f"Fine-tuned from `{record['base_model']}` with `{record['selector']}` selection in the loop, start "
              f"layer {record['start_layer']}, using {how}. {tuning}. AdamW with linear warm-up and decay "
              "(docs/methods.md 8.6). No LayerDrop unless the hyper-parameters say so.")
    hyper = {k: t[k] for k in ("epochs", "limit", "examples", "steps", "batch_size", "lr", "head_lr", "full",
                               "full_lr", "weight_decay", "warmup", "lora_r", "lora_alpha", "lora_dropout",
                               "max_length", "seed", "sandwich", "layer_drop", "group_by_length", "device",
                               "train_seconds", "torch") if k in t}
    data = (f"Training: `{t.get('data')}` (shuffled with seed {t.get('seed')}, {t.get('examples')} rows used, "
            f"truncated to {t.get('max_length')} tokens). Evaluation: `{record['metrics'].get('dev', 'none')}`"
            + (f" ({record['metrics']['dev_n']} rows)." if record["metrics"].get("dev_n") else "."))
    return ModelCard(title=f"{name}: Train-Select model of {record['base_model']} ({record['selector']})",
                     summary=summary, method=method, data=data, metrics=record["metrics"], hyper=hyper,
                     command=record.get("command", ""),
                     limits=(f"Trained on `{t.get('data')}` only; expect lower accuracy on text unlike it. Accuracy "
                             "intervals are 95% bootstrap intervals. Not for decisions about people."))

