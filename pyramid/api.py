"""The one flow from a text to a trace with its prediction, used by the command line, the app and notebooks.

    import pyramid

    model = pyramid.load()                                   # MiniLM-L6 and its sst2-lora head (offline)
    trace = pyramid.run("A gripping, funny film.", model, selector="coreset", retention=0.3)
    trace.prediction.label, trace.prediction.top(2)          # ('positive', [('positive', 0.98), ...])
    pyramid.show(trace)                                      # the token pyramid, inline in Jupyter

A :class:`Model` is a loaded encoder plus the classifiers that predict on it, loaded on first use:

* the **inference-only** regime predicts with the model's own head when it is a fine-tuned
  classifier checkpoint (:class:`pyramid.classifier.CheckpointClassifier`), with the project's
  ``sst2-lora`` head on the default model, and not at all on a plain encoder of another name;
* the **Train-Select** regime predicts with the model fine-tuned with the selector in the loop: the
  project's heads on the default model, and on a classifier checkpoint its own ``<checkpoint>-ts-<selector>``
  models beside it (``python -m pyramid train --model DIR --selector S``; :meth:`Model.train_select_model`);
* a learned selector (AdapLeR, TR-BERT, LTP) always runs on the encoder of the head its weights were
  trained with.

The pyramid runs on the encoder of the classifier that predicts, and the prediction comes from that
same pass (the last layer's first-token state fed to the head); the full-length probabilities are
computed once per classifier and text and cached (docs/methods.md 0.3). So a trace shows exactly the
tokens that produced its prediction.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Callable, Sequence

import torch

from .core.artifacts import DEFAULT_HEAD, head_base_model
from .classifier import (OWN_HEAD, CheckpointClassifier, Classifier, HeadLoadError, Prediction, full_probabilities,
                         load_classifier, predict_ids)
from .core.loading import DEFAULT_MODEL, LoadedEncoder, load_encoder
from .core.schedule import Schedule
from .core.selectors import SELECTORS, Selector, get_selector
from .tokenization import TokenizedText, tokenize
from .core.encoder import PyramidEncoder
from .plan import RunPlan, plan_run
from .trace import Trace, trace_text

FULL_CACHE_ENTRIES = 1024
"""Full-length probability vectors a :class:`Model` keeps (one per classifier and text; a few floats each)."""


SCRUB_RETENTIONS = tuple(round(0.05 * i, 2) for i in range(1, 21))
"""The ρ slider's retentions: 0.05, 0.10, ..., 1.0."""


class Model:
    """A loaded encoder and the classifiers that predict on it (see the module docstring).

    Thread-safe: one instance serves every session of the app; classifiers load once, under a lock.

    Args:
        encoder: a :class:`LoadedEncoder` (:func:`pyramid.core.loading.load_encoder`).
        on_load: called after each classifier is loaded (the app freezes long-lived objects then).

    Attributes:
        encoder: the loaded encoder (for a classifier checkpoint, its base model with the head attached).
    """

    def __init__(self, encoder: LoadedEncoder, on_load: Callable[[], None] | None = None):
        self.encoder = encoder
        self.on_load = on_load
        self._classifiers: dict[str, Classifier] = {}
        self._load_lock = threading.Lock()
        self._full: OrderedDict[tuple, list[float]] = OrderedDict()
        self._full_lock = threading.Lock()
        self._train_select: dict[str, object] = {}  # name -> folder of a checkpoint's Train-Select models
        self._ts_stamp: dict[str, float | None] = {}  # name -> its train_select.json's time when loaded

    @classmethod
    def load(cls, name: str | None = None, *, allow_hub: bool = True) -> "Model":
        """Load a model by name: None or ``DEFAULT_MODEL``, a local folder (a plain encoder or a
        fine-tuned ``*ForSequenceClassification`` checkpoint), or a hub id.

        Raises:
            ModelLoadError: see :func:`pyramid.core.loading.load_encoder`.
        """
        return cls(load_encoder(name, allow_hub=allow_hub))

    # ---- what the model is -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The model's identity (``DEFAULT_MODEL``, a folder's name, or a hub id)."""
        return self.encoder.name

    @property
    def num_layers(self) -> int:
        """Number of encoder layers L."""
        return self.encoder.num_layers

    @property
    def config(self):
        """The encoder's ``PretrainedConfig``."""
        return self.encoder.config

    @property
    def tokenizer(self):
        """The model's tokenizer."""
        return self.encoder.tokenizer

    @property
    def max_length(self) -> int:
        """Longest input in tokens ([CLS] and [SEP] included)."""
        return self.encoder.max_length

    @property
    def has_own_head(self) -> bool:
        """The model is a fine-tuned classifier checkpoint predicting with its own head."""
        return self.encoder.has_own_head

    @property
    def inference_head(self) -> str | None:
        """The head of the inference-only regime: :data:`OWN_HEAD` for a classifier checkpoint,
        ``sst2-lora`` when it was trained on this model (the default model), else None (no prediction)."""
        if self.has_own_head:
            return OWN_HEAD
        if head_base_model(DEFAULT_HEAD) == self.name:
            return DEFAULT_HEAD
        return None

    def describe_head(self, head: str | None = None) -> str:
        """A phrase for people: which classifier predicts (``"the sst2-lora head"``, ``"its own head
        (3 labels)"``, ``"no classifier"``)."""
        head = self.inference_head if head is None else head
        if head is None:
            return "no classifier"
        if head == OWN_HEAD:
            n = int(getattr(self.encoder.classifier_model.config, "num_labels", 0))
            kind = "multi-label" if getattr(self.config, "problem_type", None) == "multi_label_classification" else \
                "single-label"
            return f"its own classification head ({n} labels, {kind})"
        return f"the {head} head"

    # ---- classifiers -------------------------------------------------------------------------

    def classifier(self, head: str) -> Classifier:
        """The classifier named ``head`` on this model, loaded once: :data:`OWN_HEAD` (a checkpoint's own
        head), a shipped head's name or a head folder.

        Raises:
            HeadLoadError: no such head, or one made for another model; ``OWN_HEAD`` on a model without one.
        """
        if head in self._train_select and self._stale(head):
            self._classifiers.pop(head, None)  # retrained since it was loaded
        found = self._classifiers.get(head)
        if found is not None:
            return found
        with self._load_lock:
            found = self._classifiers.get(head)
            if found is None:
                if head == OWN_HEAD:
                    if not self.has_own_head:
                        note = f" ({self.encoder.head_note})" if self.encoder.head_note else ""
                        raise HeadLoadError(f"'{self.name}' is not a fine-tuned classifier checkpoint{note}.")
                    found = CheckpointClassifier(self.encoder)
                elif head in self._train_select:  # a checkpoint's own Train-Select model: a checkpoint itself
                    from .core.loading import ModelLoadError

                    try:
                        self._ts_stamp[head] = self._stamp(head)
                        found = CheckpointClassifier(load_encoder(str(self._train_select[head]), allow_hub=False))
                    except (ModelLoadError, ValueError) as exc:
                        raise HeadLoadError(f"Could not load the Train-Select model '{head}': {exc}") from exc
                else:
                    found = load_classifier(head, self.encoder)
                self._classifiers[head] = found
                if self.on_load is not None:
                    self.on_load()
        return found

    def _stamp(self, head: str) -> float | None:
        from .core.artifacts import TRAIN_SELECT_FILE

        try:
            return (self._train_select[head] / TRAIN_SELECT_FILE).stat().st_mtime
        except OSError:
            return None

    def _stale(self, head: str) -> bool:
        """A checkpoint's Train-Select model was written again since it was loaded."""
        return head in self._ts_stamp and self._ts_stamp[head] != self._stamp(head)

    def train_select_model(self, name: str) -> str | None:
        """The name of this checkpoint's own Train-Select model for the selector ``name`` (the folder
        ``<checkpoint>-ts-<name>`` beside it, made by ``python -m pyramid train --model DIR --selector NAME``;
        :func:`pyramid.core.artifacts.checkpoint_train_select`), or None: not a classifier checkpoint, or none made.
        Looked up on every call (a model trained while the app runs is found), reading no weights."""
        if not self.has_own_head:
            return None
        from .core.artifacts import checkpoint_train_select

        folder = checkpoint_train_select(self.encoder.path, self.name, name)
        if folder is None:
            return None
        from .core.loading import model_identity

        key = model_identity(str(folder), str(folder))
        self._train_select[key] = folder
        return key

    def selector(self, name: str | Selector, regime: str = "inference") -> Selector:
        """The registered selector ``name`` in ``regime`` (a learned one with that regime's weights); an instance is
        returned as it is. Where it runs on this model is :meth:`plan`'s answer.

        Raises:
            KeyError: unknown selector. ValueError: unknown regime, or a learned selector's missing artifact.
        """
        return get_selector(name, regime)

    def plan(self, name: str, regime: str = "inference") -> RunPlan:
        """How the registered selector ``name`` runs on this model in ``regime``: whether it can, on which encoder,
        and which head predicts (:func:`pyramid.plan.plan_run`, the one place that answers).

        Raises:
            KeyError: unknown selector. ValueError: unknown regime.
        """
        return plan_run(self, name, regime)

    def unavailable(self, name: str, regime: str = "inference") -> str | None:
        """Why the registered selector ``name`` cannot run on this model in ``regime`` (None when it can):
        ``plan(name, regime).reason``.

        Raises:
            KeyError: unknown selector. ValueError: unknown regime.
        """
        return self.plan(name, regime).reason

    def selectors(self, regime: str = "inference") -> list[str]:
        """Registry names of the selectors that run on this model in ``regime``, in registry order."""
        return [name for name in SELECTORS if self.plan(name, regime).runs]

    def model_cards(self, plan: RunPlan) -> list[tuple[str, "object"]]:
        """``[(title, path of README.md)]``: the cards of what a :class:`RunPlan` runs with on this model: a
        checkpoint's own Train-Select model and the checkpoint's card, or the project's shipped head that predicts
        and the selector's shipped weights (:func:`pyramid.plan.model_cards`)."""
        from pathlib import Path

        from .plan import model_cards

        if not self.has_own_head:
            return model_cards(plan.predicts, plan.selector, plan.regime)
        cards = []
        if plan.runs_on is not None and plan.runs_on in self._train_select:
            cards.append((f"Train-Select model `{plan.runs_on}`", Path(self._train_select[plan.runs_on]) / "README.md"))
        cards.append((f"checkpoint `{self.name}`", Path(self.encoder.path) / "README.md"))
        return [(title, path) for title, path in cards if path.is_file()]

    # ---- running -----------------------------------------------------------------------------

    def tokenize(self, text: str, max_length: int | None = None) -> TokenizedText:
        """Tokenise ``text`` for this model (see :func:`pyramid.trace.tokenize`)."""
        return tokenize(self.encoder, text, max_length)

    def full_probs(self, classifier: Classifier, input_ids: Sequence[int]) -> list[float]:
        """``[C]`` full-length probabilities of ``classifier`` on a tokenised text: one encoder pass the first
        time, then from a bounded cache (:data:`FULL_CACHE_ENTRIES`)."""
        key = (classifier.name, tuple(int(i) for i in input_ids))
        with self._full_lock:
            found = self._full.get(key)
            if found is not None:
                self._full.move_to_end(key)
                return list(found)
        probs = full_probabilities(classifier, list(key[1]))
        self._remember(key, probs)
        return list(probs)

    def _remember(self, key: tuple, probs: list[float]) -> None:
        with self._full_lock:
            self._full[key] = list(probs)
            self._full.move_to_end(key)
            while len(self._full) > FULL_CACHE_ENTRIES:
                self._full.popitem(last=False)

    def _resolve(self, selector: str | Selector, regime: str, head: str | None) -> tuple[Selector, Classifier | None,
                                                                                       Classifier | None, str | None]:
        """``(selector, classifier that predicts or None, classifier whose encoder runs or None, note)``, from the
        selector's :meth:`plan` (an instance's own weights name their head themselves)."""
        if isinstance(selector, str):
            plan = self.plan(selector, regime)
            if not plan.runs:
                raise ValueError(plan.refusal(self.name))
            sel = get_selector(selector, regime)
        else:
            sel = selector
            plan = self.plan(sel.name, sel.regime) if sel.name in SELECTORS else None
            if sel.head is None and plan is not None and not plan.runs:
                raise ValueError(plan.refusal(self.name))
            if sel.head is None and plan is None and sel.regime == "train-select":
                raise ValueError(f"the unregistered selector '{sel.name}' has no Train-Select model on '{self.name}'")
        own = sel.head if sel.head is not None else (plan.runs_on if plan is not None else None)
        wanted = head if head is not None else (own if own is not None else self.inference_head)
        runs_on = self.classifier(own) if own is not None else None  # learned weights read their head's states
        if wanted is None or str(wanted).lower() == "none":
            note = None if wanted is not None else f"no classifier was trained on '{self.name}'"
            return sel, None, runs_on, note
        if own is not None and wanted != own:
            return sel, None, runs_on, f"the {sel.name} selector ({sel.regime}) runs on the head '{own}', not '{wanted}'"
        try:
            clf = self.classifier(wanted)
        except HeadLoadError as exc:
            if head is not None:
                raise
            return sel, None, runs_on, str(exc)
        return sel, clf, clf, None

    def trace(self, text: str | Sequence[int] | TokenizedText, selector: str | Selector = "coreset",
              regime: str = "inference", schedule: Schedule | None = None, *, seed: int = 0,
              max_length: int | None = None, head: str | None = None, proportional_attention: bool = True) -> Trace:
        """Run the pyramid on one text and return its trace with the prediction from the same pass.

        Args:
            text: a text, a :class:`TokenizedText`, or token ids ([CLS] first, [SEP] last).
            selector: a registry name or a :class:`Selector` (an instance keeps its own regime).
            regime: ``inference`` or ``train-select`` (for a name).
            schedule: the length schedule (default ``Schedule(retention=0.5)``).
            seed: seed of stochastic selectors.
            max_length: token limit for a text (the model's when None).
            head: the classifier that predicts: None for the regime's (:attr:`RunPlan.predicts` of :meth:`plan`),
                ``"none"`` for no prediction, :data:`OWN_HEAD`, or a head name or folder.
            proportional_attention: with a merging selector (ToMe, core-set pooling), add ``log(size)`` to
                the attention logits of later layers (docs/methods.md 10.1; on by default).

        Returns:
            :class:`Trace` with ``prediction`` (None, with ``prediction_note`` saying why, when no
            classifier fits).

        Raises:
            EmptyTextError: empty text. KeyError: unknown selector. ValueError: a selector that cannot
            run on this model in ``regime``, or a bad schedule. HeadLoadError: an explicit ``head`` that
            cannot be loaded.
        """
        schedule = schedule or Schedule(retention=0.5)
        tokenized = self._tokenized(text, max_length)
        sel, clf, runs_on, note = self._resolve(selector, regime, head)
        full = None
        if clf is not None:
            key = (clf.name, tuple(tokenized.input_ids))
            with self._full_lock:
                full = list(self._full[key]) if key in self._full else None
        encoder = runs_on.encoder if (clf is None and runs_on is not None) else self.encoder
        trace = trace_text(encoder, "", sel, schedule, seed=seed, tokenized=tokenized, classifier=clf, full_probs=full,
                           proportional_attention=proportional_attention)
        trace.model = self.name
        if trace.prediction is not None and full is None:
            self._remember((clf.name, tuple(tokenized.input_ids)), trace.prediction.full_probs)
        trace.prediction_note = note
        return trace

    def predict(self, text: str | Sequence[int] | TokenizedText, selector: str | Selector = "coreset",
                regime: str = "inference", schedule: Schedule | None = None, *, seed: int = 0,
                max_length: int | None = None, head: str | None = None, full_length: bool = True) -> Prediction | None:
        """The prediction alone (one pass without the trace's states and coverage, plus the cached
        full-length answer unless ``full_length`` is False); None when no classifier fits. Other arguments
        as :meth:`trace`."""
        schedule = schedule or Schedule(retention=0.5)
        tokenized = self._tokenized(text, max_length)
        sel, clf, _, _ = self._resolve(selector, regime, head)
        if clf is None:
            return None
        full = self.full_probs(clf, tokenized.input_ids) if full_length else None
        return predict_ids(clf, list(tokenized.input_ids), sel, schedule, seed=seed, full_probs=full,
                           full_length=full_length)

    def full_prediction(self, text: str | Sequence[int] | TokenizedText, *, max_length: int | None = None,
                        head: str | None = None) -> Prediction | None:
        """The full-length answer of the inference-only regime's classifier (or ``head``); None without one."""
        tokenized = self._tokenized(text, max_length)
        head = self.inference_head if head is None else head
        if head is None or str(head).lower() == "none":
            return None
        clf = self.classifier(head)
        full = self.full_probs(clf, tokenized.input_ids)
        from .classifier import prediction_of

        return prediction_of(clf, full, full)

    @torch.inference_mode()
    def scrub(self, text: str | Sequence[int] | TokenizedText, selector: str | Selector = "coreset",
              regime: str = "inference", retentions: Sequence[float] = SCRUB_RETENTIONS, *, start_layer: int = 1,
              seed: int = 0, max_length: int | None = None) -> dict[float, list[tuple[str, set, set, set]]]:
        """The selector's pyramid of one text at every retention in ``retentions``: per retention the rows
        ``(label, alive, kept, merged)`` of :func:`pyramid.trace.pyramid_rows`, on the encoder :meth:`trace` runs
        (one lean pass each: no hidden states, coverage or prediction), for the ρ slider.

        Raises:
            EmptyTextError, KeyError, ValueError: as :meth:`trace`; ValueError also for a selector that sets its own
            lengths (the retention changes nothing).
        """
        from .trace import pyramid_rows

        tokenized = self._tokenized(text, max_length)
        sel, clf, runs_on, _ = self._resolve(selector, regime, None)
        if not sel.uses_retention:
            raise ValueError(f"the {sel.name} selector sets its own lengths: the retention changes nothing")
        encoder = clf.encoder if clf is not None else (runs_on.encoder if runs_on is not None else self.encoder)
        ids = torch.tensor([tokenized.input_ids], dtype=torch.long, device=encoder.model.device)
        out = {}
        for rho in retentions:
            pyr = PyramidEncoder(encoder, sel, Schedule(retention=float(rho), start_layer=start_layer))
            out[float(rho)] = pyramid_rows(pyr(ids, torch.ones_like(ids), seed=seed))
        return out

    def _tokenized(self, text, max_length: int | None) -> TokenizedText:
        if isinstance(text, TokenizedText):
            return text
        if isinstance(text, str):
            return self.tokenize(text, max_length)
        ids = [int(i) for i in (text.tolist() if isinstance(text, torch.Tensor) else text)]
        if len(ids) < 3:
            from .tokenization import EmptyTextError

            raise EmptyTextError("The token ids hold no token between [CLS] and [SEP].")
        tok = self.tokenizer
        return TokenizedText(input_ids=ids, tokens=tok.convert_ids_to_tokens(ids), truncated=False,
                             original_length=len(ids), max_length=len(ids))


@lru_cache(maxsize=4)
def _cached_model(name: str | None, allow_hub: bool) -> Model:
    return Model.load(name, allow_hub=allow_hub)


def load(name: str | None = None, *, allow_hub: bool = True) -> Model:
    """Load a model once per process (the last four names are kept): None or ``DEFAULT_MODEL`` for
    MiniLM-L6 with its sentiment heads, a local folder (a plain encoder or a fine-tuned
    ``*ForSequenceClassification`` checkpoint, safetensors only), or a hub id where there is network.

    Raises:
        ModelLoadError: see :func:`pyramid.core.loading.load_encoder`.
    """
    return _cached_model(None if name in (None, DEFAULT_MODEL) else str(name), allow_hub)


def run(text: str | Sequence[int] | TokenizedText, model: str | Model | LoadedEncoder | None = None,
        selector: str | Selector = "coreset", *, regime: str = "inference", retention: float = 0.5,
        start_layer: int = 1, schedule: Schedule | None = None, seed: int = 0, max_length: int | None = None,
        head: str | None = None, proportional_attention: bool = True) -> Trace:
    """Run a pyramid encoder on one text: the trace of every layer with the prediction from the same pass.

    Args:
        text: a text, or token ids ([CLS] first, [SEP] last).
        model: a :class:`Model`, a loaded encoder, or a name for :func:`load` (None: the default model).
        selector: a registry name (``coreset``, ``attention``, ``random``, ``first-k``, ``adapler``...)
            or a :class:`Selector`.
        regime: ``inference`` (selection added to the model's full-length classifier) or ``train-select``
            (the project's model fine-tuned with that selector in the loop).
        retention, start_layer: the geometric length schedule (docs/methods.md 1.3), unless ``schedule``.
        seed: seed of stochastic selectors.
        max_length: token limit (the model's own when None); longer texts are truncated.
        head: which classifier predicts (see :meth:`Model.trace`).
        proportional_attention: merging selectors add ``log(size)`` to later attention logits (default on).

    Returns:
        :class:`pyramid.trace.Trace`; ``trace.prediction`` is a :class:`pyramid.classifier.Prediction`
        (``label``, ``top(k)``, ``probs`` next to ``full_probs``) or None with ``prediction_note``.

    Raises:
        ModelLoadError, EmptyTextError, KeyError (unknown selector), ValueError (bad schedule, or a selector
        that cannot run on the model in that regime), HeadLoadError (an explicit head that cannot load).
    """
    if isinstance(model, LoadedEncoder):
        model = Model(model)
    elif not isinstance(model, Model):
        model = load(model)
    if schedule is None:
        schedule = Schedule(retention=float(retention), start_layer=int(start_layer))
    return model.trace(text, selector, regime, schedule, seed=seed, max_length=max_length, head=head,
                       proportional_attention=proportional_attention)
