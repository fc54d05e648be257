"""Sequence classifiers on the pyramid: the project's LoRA heads, and fine-tuned classifier checkpoints.

Two kinds, one interface (:class:`Classifier`: ``labels``, ``logits`` from the last layer's states,
``probabilities``, ``predict``):

* :class:`SequenceClassifier`: the project's own heads (``sst2-lora`` and the Train-Select heads), a
  LoRA adapter plus a head on [CLS], described below;
* :class:`CheckpointClassifier`: a user's ``*ForSequenceClassification`` checkpoint, predicting with its
  own head, computed as its transformers class does (:meth:`pyramid.core.families.base.Family.classification_logits`),
  with its ``id2label`` and any number of labels, single-label (softmax) or multi-label (sigmoid).

Project heads: LoRA adapters (peft) plus a head on [CLS].

A trained artifact is a folder (``assets/heads/<name>/`` for the shipped ones)::

    adapter_config.json, adapter_model.safetensors   peft LoRA adapter of the encoder
    head.safetensors                                 the classification head's weights
    head_config.json                                 labels, base model, LoRA and training settings
    README.md                                        the model card

For inference the adapter is merged into a private copy of the base encoder's weights
(``merge_and_unload``), so the pyramid runs plain BERT layers at full speed, and the classifier
reads the [CLS] state after the last layer (docs/methods.md 1.5: the same selector and schedule run in
training, for a head fine-tuned with the pyramid in the loop, and in inference).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .core.artifacts import HEADS_DIR, JsonConfig
from .core.encoder import PyramidEncoder, PyramidOutput
from .core.loading import DEFAULT_MODEL, LoadedEncoder, encoder_from_model
from .core.schedule import Schedule
from .core.selectors import Selector, full_length_selector

PYRAMID_HEAD = "sst2-lora-pyramid"
"""Head fine-tuned from the pre-trained model with core-set selection in the loop at the fixed
final retention 0.3 (Pyramid-BERT's own setting, docs/methods.md 1.5)."""
HEAD_FILES = ("adapter_config.json", "adapter_model.safetensors", "head.safetensors", "head_config.json")


class HeadLoadError(ValueError):
    """A head artifact is missing, incomplete, corrupt, or made for another base model."""


class ClassificationHead(nn.Module):
    """BERT's sequence-classification head on the [CLS] state: dense, tanh, dropout, linear.

    Shapes: ``cls (B, d) -> logits (B, C)``. This is ``BertPooler`` + ``BertForSequenceClassification``'s
    classifier, trained from scratch (all-MiniLM-L6-v2 ships no trained pooler for classification).
    """

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` -> ``(B, C)`` logits."""
        return self.out(self.dropout(torch.tanh(self.dense(cls))))


@dataclass
class HeadConfig(JsonConfig):
    """Everything needed to rebuild a head, and how it was made (written to ``head_config.json``).

    Attributes:
        name: artifact name.
        labels: label names, index = label id.
        base_model: the encoder the adapter belongs to (``DEFAULT_MODEL`` or a path/hub id).
        hidden_size, num_layers: of the base model, checked at load time.
        lora: ``r``, ``alpha``, ``dropout``, ``target_modules``.
        trained_with: ``None`` (full length) or ``{"selector", "retention", "start_layer"}``.
        max_length: longest tokenised training input (tokens).
        training: hyper-parameters, data, command, seconds.
        metrics: for instance ``{"dev_accuracy": 0.89}``.
    """

    name: str
    labels: list[str]
    base_model: str
    hidden_size: int
    num_layers: int
    lora: dict
    trained_with: dict | None = None
    max_length: int = 128
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def schedule(self) -> Schedule | None:
        """The schedule the head was fine-tuned with, or None for a full-length head."""
        if not self.trained_with:
            return None
        return Schedule(retention=float(self.trained_with["retention"]),
                        start_layer=int(self.trained_with.get("start_layer", 1)))


def lora_config(r: int = 16, alpha: int = 32, dropout: float = 0.05, target_modules=None, family=None):
    """A peft ``LoraConfig`` on every linear layer of the encoder's layers (Q, K, V, attention output,
    FFN in and out: the names come from the model family, :mod:`pyramid.core.families`; BERT's by default).
    ``pooler`` is left out: the head reads [CLS] itself."""
    from peft import LoraConfig

    from .core.families import family_of

    targets = target_modules or (family or family_of("bert")).lora_targets
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), bias="none")


def resolve_head_path(name: str | os.PathLike) -> Path:
    """A shipped head's name (``sst2-lora``) or a folder -> the folder.

    Raises:
        HeadLoadError: neither exists.
    """
    p = Path(name)
    if p.is_dir():
        return p
    shipped = HEADS_DIR / str(name)
    if shipped.is_dir():
        return shipped
    known = sorted(d.name for d in HEADS_DIR.iterdir() if d.is_dir()) if HEADS_DIR.is_dir() else []
    raise HeadLoadError(
        f"No classifier head '{name}': not a folder, and not one of the shipped heads {known}. "
        "Train one with `python -m pyramid train`."
    )


OWN_HEAD = "own"
"""Head name meaning "the checkpoint's own head" (a fine-tuned classifier folder, :class:`CheckpointClassifier`)."""


class Classifier:
    """A text classifier whose encoder the pyramid runs: the last layer's states -> class probabilities.

    Subclasses set ``encoder`` (:class:`LoadedEncoder`), ``name`` (what result rows, notes and the app
    call it) and ``multi_label``, and implement :meth:`logits` and :attr:`labels`.

    Attributes:
        encoder: the encoder the pyramid runs (the classifier's own weights).
        name: the classifier's name (a head artifact's name, or a checkpoint folder's name).
        multi_label: True when classes are independent (sigmoid per class), False for one class per
            text (softmax over classes).
    """

    encoder: LoadedEncoder
    name: str = "classifier"
    multi_label: bool = False

    @property
    def labels(self) -> list[str]:
        """The label names in the order of the logits (``[C]``)."""
        raise NotImplementedError

    def logits(self, last_hidden_state: torch.Tensor) -> torch.Tensor:
        """``(B, N_L, d)`` last-layer states (first token in slot 0) -> ``(B, C)`` logits."""
        raise NotImplementedError

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` logits -> ``(B, C)`` float32 probabilities: softmax over classes (single-label), or a
        sigmoid per class (multi-label, as transformers' ``multi_label_classification`` trains them)."""
        logits = logits.float()
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

    @property
    def device(self) -> torch.device:
        """Where the classifier's weights are (a GPU while a trainer runs there)."""
        return next(self.encoder.model.parameters()).device

    def pyramid(self, selector: Selector, schedule: Schedule, proportional_attention: bool = True) -> PyramidEncoder:
        """A :class:`PyramidEncoder` on this classifier's encoder (``proportional_attention``: see
        :class:`PyramidEncoder`)."""
        return PyramidEncoder(self.encoder, selector, schedule, proportional_attention=proportional_attention)

    @torch.inference_mode()
    def predict(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        selector: Selector,
        schedule: Schedule,
        seed: int = 0,
        proportional_attention: bool = True,
    ) -> tuple[torch.Tensor, PyramidOutput]:
        """Class probabilities of a batch under a selector and schedule (one pyramid pass).

        Args:
            input_ids, attention_mask: ``(B, N)``, right padded, [CLS] first.
            selector, schedule: the pyramid to run; a fixed-length selector with
                ``Schedule(retention=1.0)`` is the full model (AdapLeR ignores the schedule).
            seed: seed for stochastic selectors.
            proportional_attention: merging selectors add ``log(size)`` to later attention logits (default on).

        Returns:
            ``(probs (B, C) float32 on the CPU, the PyramidOutput on the model's device)``.
        """
        device = self.device
        if input_ids.device != device:
            input_ids = input_ids.to(device)
            attention_mask = attention_mask.to(device) if attention_mask is not None else None
        out = self.pyramid(selector, schedule, proportional_attention)(input_ids, attention_mask, seed=seed)
        return self.probabilities(self.logits(out.last_hidden_state)).cpu(), out


class SequenceClassifier(Classifier):
    """A base encoder with a merged LoRA adapter and a classification head (the project's heads).

    Attributes:
        encoder: :class:`LoadedEncoder` holding the merged weights (a private copy).
        head: :class:`ClassificationHead` in eval mode.
        config: :class:`HeadConfig`.
        path: artifact folder.
    """

    multi_label = False

    def __init__(self, encoder: LoadedEncoder, head: ClassificationHead, config: HeadConfig, path: str):
        self.encoder = encoder
        self.head = head
        self.config = config
        self.path = path

    @property
    def name(self) -> str:
        """The head artifact's name (``sst2-lora``...)."""
        return self.config.name

    @property
    def labels(self) -> list[str]:
        """The label names in the order of the head's outputs (``[C]``)."""
        return list(self.config.labels)

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    def logits(self, last_hidden_state: torch.Tensor) -> torch.Tensor:
        """``(B, N_L, d)`` -> ``(B, C)``: :class:`ClassificationHead` on the [CLS] state (slot 0)."""
        return self.head(last_hidden_state[:, 0])


class CheckpointClassifier(Classifier):
    """A fine-tuned ``*ForSequenceClassification`` checkpoint predicting with its own head.

    The pyramid runs the checkpoint's base model (``encoder.model``); :meth:`logits` applies the
    checkpoint's head modules to the last layer's states exactly as the family's transformers class
    does after its base model (BERT/ALBERT pooler + classifier, RoBERTa/XLM-R/CamemBERT/ELECTRA/MPNet
    classification head on the first token, DistilBERT pre-classifier, DeBERTa-v2 context pooler), so
    at retention 1.0 the probabilities are ``AutoModelForSequenceClassification``'s (tested within 1e-4
    per family). Labels come from the checkpoint's ``id2label``; ``problem_type ==
    "multi_label_classification"`` makes it multi-label (a sigmoid per class).

    Args:
        encoder: a :class:`LoadedEncoder` whose ``classifier_model`` is set (:func:`pyramid.core.loading.load_encoder`
            of a classifier folder, or :func:`checkpoint_encoder`).

    Raises:
        ValueError: the encoder carries no classification head.
    """

    def __init__(self, encoder: LoadedEncoder):
        if encoder.classifier_model is None:
            raise ValueError(f"'{encoder.name}' is not a sequence-classification checkpoint"
                             + (f": {encoder.head_note}" if encoder.head_note else ""))
        self.encoder = encoder
        self.model = encoder.classifier_model
        cfg = self.model.config
        id2label = getattr(cfg, "id2label", None) or {}
        self._labels = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(int(cfg.num_labels))]
        self.multi_label = getattr(cfg, "problem_type", None) == "multi_label_classification"
        self.name = encoder.name

    @property
    def labels(self) -> list[str]:
        """The checkpoint's label names (``id2label`` in id order)."""
        return list(self._labels)

    def logits(self, last_hidden_state: torch.Tensor) -> torch.Tensor:
        """``(B, N_L, d)`` -> ``(B, C)`` with the checkpoint's own head (see the class docstring)."""
        return self.encoder.family.classification_logits(self.model, last_hidden_state)


def checkpoint_encoder(classifier_model, tokenizer, name: str = "custom-classifier") -> LoadedEncoder:
    """Wrap an already-built ``*ForSequenceClassification`` model (tests, notebooks) as a
    :class:`LoadedEncoder` whose base model the pyramid runs and whose head stays attached.

    Raises:
        ModelLoadError: the family is not supported.
    """
    enc = encoder_from_model(classifier_model.base_model, tokenizer, name=name)
    classifier_model.eval()
    enc.classifier_model = classifier_model
    return enc


def _check_files(path: Path) -> None:
    missing = [f for f in HEAD_FILES if not (path / f).is_file()]
    if missing:
        raise HeadLoadError(f"The head folder '{path}' is incomplete: missing {', '.join(missing)}.")


def load_classifier(name: str | os.PathLike, base: LoadedEncoder) -> SequenceClassifier:
    """Load a head artifact on top of ``base`` (which is not modified).

    Args:
        name: a shipped head's name or a folder.
        base: the loaded base encoder; its weights are copied before the adapter is merged.

    Raises:
        HeadLoadError: missing/incomplete/corrupt artifact, or one made for another base model
            (different name, hidden size or depth).
    """
    path = resolve_head_path(name)
    _check_files(path)
    try:
        config = HeadConfig.from_json((path / "head_config.json").read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a corrupt artifact
        raise HeadLoadError(f"'{path}/head_config.json' is not a valid head config: {exc}") from exc
    if config.base_model != base.name and not (config.base_model == DEFAULT_MODEL and base.name is None):
        raise HeadLoadError(
            f"The head '{config.name}' was trained on '{config.base_model}', but the loaded encoder is "
            f"'{base.name}'. Predictions need the matching base model."
        )
    if (config.hidden_size, config.num_layers) != (base.config.hidden_size, base.num_layers):
        raise HeadLoadError(f"The head '{config.name}' does not fit this encoder's shape.")
    try:
        from peft import PeftModel
        from safetensors.torch import load_file

        import warnings

        model = copy.deepcopy(base.model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers deprecations raised inside peft
            peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=False)
        merged = peft_model.merge_and_unload()
        head = ClassificationHead(config.hidden_size, len(config.labels))
        head.load_state_dict(load_file(str(path / "head.safetensors")))
    except Exception as exc:  # noqa: BLE001
        raise HeadLoadError(f"Could not load the head '{path}': {exc}") from exc
    head.eval()
    merged.eval()
    encoder = encoder_from_model(merged, base.tokenizer, name=base.name)
    encoder.path = base.path
    return SequenceClassifier(encoder, head, config, str(path))


def encoder_for_head(head: str | None, base: LoadedEncoder,
                     classifier: "SequenceClassifier | None" = None) -> LoadedEncoder:
    """The encoder a plan runs on (:attr:`pyramid.plan.RunPlan.runs_on`): ``base`` when ``head`` is None, else the
    fine-tuned encoder of that head (a learned selector's weights read its head's states; in the Train-Select
    regime every selector runs on the model fine-tuned with it).

    Args:
        head: the head's name or folder, or None.
        base: the loaded base encoder.
        classifier: an already-loaded classifier to reuse when it is that head.

    Raises:
        HeadLoadError: the head cannot be loaded on ``base``.
    """
    if head is None:
        return base
    if classifier is not None and classifier.name == head:
        return classifier.encoder
    return load_classifier(head, base).encoder


MULTI_LABEL_THRESHOLD = 0.5
"""A multi-label classifier predicts every label whose sigmoid probability reaches this."""


@dataclass
class Prediction:
    """A classifier's answer on one text, full length and under one pyramid.

    Attributes:
        labels: ``[C]`` label names, from the classifier (any number).
        full_probs: ``[C]`` probabilities of the full-length model, or None when they were not asked for
            (a prediction shown without its full-length answer costs one pass less).
        probs: ``[C]`` probabilities with the pyramid (selector and schedule) active.
        head: the classifier's name (a head artifact, or a checkpoint folder's name).
        multi_label: independent labels (sigmoid probabilities; every label at or above
            :data:`MULTI_LABEL_THRESHOLD` is predicted) instead of one class per text (softmax, arg max).
    """

    labels: list[str]
    full_probs: list[float] | None
    probs: list[float]
    head: str
    multi_label: bool = False

    def _picked(self, probs: list[float] | None) -> list[str]:
        if probs is None:
            return []
        if self.multi_label:
            return [name for name, p in zip(self.labels, probs) if p >= MULTI_LABEL_THRESHOLD]
        return [self.labels[max(range(len(probs)), key=probs.__getitem__)]]

    @property
    def predicted(self) -> list[str]:
        """The predicted labels with the pyramid active: one (arg max) for a single-label classifier,
        every label at or above the threshold (possibly none) for a multi-label one."""
        return self._picked(self.probs)

    @property
    def full_predicted(self) -> list[str]:
        """The full-length model's predicted labels (see :attr:`predicted`; empty without ``full_probs``)."""
        return self._picked(self.full_probs)

    @property
    def label(self) -> str:
        """The predicted label with the pyramid active (labels joined by ", " for a multi-label
        classifier; "(none)" when no label reaches the threshold)."""
        return ", ".join(self.predicted) or "(none)"

    @property
    def full_label(self) -> str | None:
        """The full-length model's predicted label (as :attr:`label`; None without ``full_probs``)."""
        if self.full_probs is None:
            return None
        return ", ".join(self.full_predicted) or "(none)"

    @property
    def changed(self) -> bool | None:
        """The pyramid changed the prediction of the full-length model (None without ``full_probs``)."""
        if self.full_probs is None:
            return None
        return self.predicted != self.full_predicted

    def top(self, k: int = 3, full: bool = False) -> list[tuple[str, float]]:
        """The ``k`` most probable labels, ``[(label, probability)]`` in decreasing probability (ties in label
        order), with the pyramid active or at full length (``full``).

        Raises:
            ValueError: ``full`` without ``full_probs``.
        """
        probs = self.full_probs if full else self.probs
        if probs is None:
            raise ValueError("this prediction was made without its full-length answer")
        order = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
        return [(self.labels[i], float(probs[i])) for i in order[: max(1, int(k))]]

    def to_json(self) -> dict:
        """The ``prediction`` object of the trace JSON: ``head, multi_label, labels, full_probs, probs,
        full_label, label, full_predicted, predicted``."""
        return {"head": self.head, "multi_label": bool(self.multi_label), "labels": list(self.labels),
                "full_probs": None if self.full_probs is None else list(self.full_probs), "probs": list(self.probs),
                "full_label": self.full_label,
                "label": self.label, "full_predicted": self.full_predicted, "predicted": self.predicted}


def prediction_of(classifier: Classifier, probs, full_probs) -> Prediction:
    """A :class:`Prediction` from ``[C]`` probabilities (tensors or lists) of ``classifier`` (``full_probs`` may
    be None)."""
    full = None if full_probs is None else [float(x) for x in full_probs]
    return Prediction(classifier.labels, full, [float(x) for x in probs], classifier.name,
                      multi_label=classifier.multi_label)


def full_probabilities(classifier: Classifier, input_ids: list[int]) -> list[float]:
    """``[C]`` probabilities of ``classifier`` at full length on one tokenised text (one encoder pass)."""
    ids = torch.tensor([input_ids], dtype=torch.long)  # (1, N)
    full, _ = classifier.predict(ids, None, full_length_selector(), Schedule(retention=1.0))
    return [float(x) for x in full[0]]


def predict_ids(classifier: Classifier, input_ids: list[int], selector: Selector, schedule: Schedule,
                seed: int = 0, full_probs: list[float] | None = None, full_length: bool = True) -> Prediction:
    """Classify one tokenised text with the pyramid, next to the full-length answer.

    Args:
        input_ids: ``[N]`` token ids, [CLS] first (as :func:`pyramid.trace.tokenize` gives them).
        full_probs: the full-length probabilities when already known (several selectors, one text);
            otherwise one more pass computes them.
        full_length: False to skip the full-length answer (``full_probs`` None in the result).
    """
    ids = torch.tensor([input_ids], dtype=torch.long)  # (1, N)
    if full_probs is None and full_length:
        full_probs = full_probabilities(classifier, input_ids)
    pyr, _ = classifier.predict(ids, None, selector, schedule, seed=seed)
    return prediction_of(classifier, pyr[0], full_probs)
