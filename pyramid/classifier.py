"""Sequence classifiers on the pyramid: LoRA adapters (peft) plus a head on [CLS].

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

from .artifacts import DEFAULT_HEAD, HEADS_DIR, JsonConfig
from .encoder import PyramidEncoder, PyramidOutput
from .loading import DEFAULT_MODEL, LoadedEncoder, encoder_from_model
from .schedule import Schedule
from .selectors import Selector, full_length_selector

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
    FFN in and out: the names come from the model family, :mod:`pyramid.families`; BERT's by default).
    ``pooler`` is left out: the head reads [CLS] itself."""
    from peft import LoraConfig

    from .families import family_of

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


class SequenceClassifier:
    """A base encoder with a merged LoRA adapter and a classification head.

    Attributes:
        encoder: :class:`LoadedEncoder` holding the merged weights (a private copy).
        head: :class:`ClassificationHead` in eval mode.
        config: :class:`HeadConfig`.
        path: artifact folder.
    """

    def __init__(self, encoder: LoadedEncoder, head: ClassificationHead, config: HeadConfig, path: str):
        self.encoder = encoder
        self.head = head
        self.config = config
        self.path = path

    @property
    def labels(self) -> list[str]:
        """The label names in the order of the head's outputs (``[C]``)."""
        return list(self.config.labels)

    def pyramid(self, selector: Selector, schedule: Schedule) -> PyramidEncoder:
        """A :class:`PyramidEncoder` on this classifier's (merged) encoder."""
        return PyramidEncoder(self.encoder, selector, schedule)

    @torch.inference_mode()
    def predict(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        selector: Selector,
        schedule: Schedule,
        seed: int = 0,
    ) -> tuple[torch.Tensor, PyramidOutput]:
        """Class probabilities of a batch under a selector and schedule.

        Args:
            input_ids, attention_mask: ``(B, N)``, right padded, [CLS] first.
            selector, schedule: the pyramid to run; a fixed-length selector with
                ``Schedule(retention=1.0)`` is the full model (AdapLeR ignores the schedule).
            seed: seed for stochastic selectors.

        Returns:
            ``(probs (B, C) float32 on the CPU, the PyramidOutput on the model's device)``.
        """
        device = next(self.head.parameters()).device  # the model's (a GPU while a trainer runs there)
        if input_ids.device != device:
            input_ids = input_ids.to(device)
            attention_mask = attention_mask.to(device) if attention_mask is not None else None
        out = self.pyramid(selector, schedule)(input_ids, attention_mask, seed=seed)
        logits = self.head(out.cls_hidden)  # (B, C)
        return torch.softmax(logits.float(), dim=-1).cpu(), out


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


def encoder_for_selector(selector: Selector, base: LoadedEncoder,
                         classifier: "SequenceClassifier | None" = None) -> LoadedEncoder:
    """The encoder a selector must run on: ``base``, or the fine-tuned encoder of the head it names
    (:attr:`Selector.head`: a learned selector's weights read its head's states; in the Train-Select
    regime every selector runs on the model fine-tuned with it).

    Args:
        selector: any selector.
        base: the loaded base encoder.
        classifier: an already-loaded classifier to reuse when it is that head.

    Raises:
        HeadLoadError: the head cannot be loaded on ``base``.
    """
    head = selector.head
    if head is None:
        return base
    if classifier is not None and classifier.config.name == head:
        return classifier.encoder
    return load_classifier(head, base).encoder


@dataclass
class Prediction:
    """A classifier's answer on one text, full length and under one pyramid.

    Attributes:
        labels: label names.
        full_probs: ``[C]`` probabilities of the full-length model.
        probs: ``[C]`` probabilities with the pyramid (selector and schedule) active.
        head: the head's name.
    """

    labels: list[str]
    full_probs: list[float]
    probs: list[float]
    head: str

    @property
    def full_label(self) -> str:
        """The full-length model's predicted label (arg max of ``full_probs``)."""
        return self.labels[max(range(len(self.full_probs)), key=self.full_probs.__getitem__)]

    @property
    def label(self) -> str:
        """The predicted label with the pyramid active (arg max of ``probs``)."""
        return self.labels[max(range(len(self.probs)), key=self.probs.__getitem__)]

    def to_json(self) -> dict:
        """The ``prediction`` object of the trace JSON: ``labels, full_probs, probs``."""
        return {"labels": list(self.labels), "full_probs": list(self.full_probs), "probs": list(self.probs)}


def predict_ids(classifier: SequenceClassifier, input_ids: list[int], selector: Selector, schedule: Schedule,
                seed: int = 0, full_probs: list[float] | None = None) -> Prediction:
    """Classify one tokenised text at full length and with the pyramid.

    Args:
        input_ids: ``[N]`` token ids, [CLS] first (as :func:`pyramid.trace.tokenize` gives them).
        full_probs: the full-length probabilities when already known (several selectors, one text).
    """
    ids = torch.tensor([input_ids], dtype=torch.long)  # (1, N)
    if full_probs is None:
        full, _ = classifier.predict(ids, None, full_length_selector(), Schedule(retention=1.0), seed=seed)
        full_probs = [float(x) for x in full[0]]
    pyr, _ = classifier.predict(ids, None, selector, schedule, seed=seed)
    return Prediction(classifier.labels, list(full_probs), [float(x) for x in pyr[0]], classifier.config.name)
