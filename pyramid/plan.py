"""What runs where: the one answer to "can this selector run on this model in this regime, on which encoder, and
which head predicts", and the one evaluation plan (which regimes, heads and selectors run) that the command line,
the API, the app's Explorer and its sweep all read (docs/architecture.md).

Selectors hold only their algorithm and descriptor; everything about deployment is here and in
:mod:`pyramid.core.artifacts`:

* **inference-only**: a rule-based selector runs on the model's own encoder and its inference head predicts
  (a classifier checkpoint's own head; ``sst2-lora`` on the default model; none on a plain encoder of another
  name); a learned selector (AdapLeR, TR-BERT, LTP) runs on the encoder of the head its weights were trained
  with, which then predicts, and only on the model it was made for;
* **Train-Select**: every selector runs on, and predicts with, the model fine-tuned with it in the loop: the
  project's ``sst2-lora-ts-<selector>`` heads on the default model, a classifier checkpoint's own
  ``<checkpoint>-ts-<selector>`` models beside it (:func:`pyramid.core.artifacts.checkpoint_train_select`); in
  an evaluation on another project head (an encoder's own LoRA head), the ``<head>-ts-<selector>`` heads made
  from it (:func:`pyramid.core.artifacts.head_train_select`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from .core.artifacts import (ASSETS_DIR, DEFAULT_HEAD, HEADS_DIR, REGIMES, head_base_model, head_identity,
                             head_made_with, head_train_select, head_train_select_name,
                             train_select_head_name)
from .core.loading import DEFAULT_MODEL
from .core.selectors import SELECTORS, get_selector


@dataclass(frozen=True)
class RunPlan:
    """How the registered selector ``selector`` runs on one model in ``regime``.

    Attributes:
        selector, regime: what was asked.
        reason: why it cannot run there (a sentence for people), or None when it can.
        runs_on: the head whose fine-tuned encoder the pyramid must run on (a learned selector's head, a
            Train-Select model), or None: the model's own encoder.
        predicts: the head that predicts by default (``runs_on`` when set, else the inference-only regime's
            head), or None: no classifier on this model, or a Train-Select plan on a checkpoint without its model.
    """

    selector: str
    regime: str
    reason: str | None
    runs_on: str | None
    predicts: str | None

    @property
    def runs(self) -> bool:
        """It can run here."""
        return self.reason is None

    def refusal(self, model_name: str) -> str:
        """The one sentence that says it cannot run (:attr:`reason` with the selector, model and regime)."""
        return f"the {self.selector} selector cannot run on '{model_name}' in the {self.regime} regime: {self.reason}"


def _check_regime(regime: str) -> None:
    if regime not in REGIMES:
        raise ValueError(f"unknown regime '{regime}'; choose one of: {', '.join(REGIMES)}")


def project_plan(name: str, regime: str = "inference", model_name: str | None = None) -> tuple[str | None, str | None]:
    """``(reason, runs_on)`` for the project's own heads and weights on the model ``model_name`` (None: the default
    model): the shipped artifact of a learned selector (or Token Dropping's table) must load and be made for that
    model, and the head it runs on (its weights' head, or the Train-Select head ``sst2-lora-ts-<name>``) must be
    installed and belong to it. Builds the selector only to read its weights' config.

    Raises:
        KeyError: unknown selector. ValueError: unknown regime.
    """
    _check_regime(regime)
    model_name = model_name or DEFAULT_MODEL
    try:
        sel = get_selector(name, regime)
    except KeyError:
        raise
    except ValueError as exc:  # a learned selector's artifact is missing or corrupt
        return str(exc), None
    head = sel.head if sel.head is not None else (train_select_head_name(name) if regime == "train-select" else None)
    made_for = getattr(getattr(sel, "config", None), "base_model", None)
    if made_for is not None and made_for != model_name:
        return f"the {sel.short} weights were made for '{made_for}', not '{model_name}'", head
    if head is not None:
        base = head_base_model(head)
        if base is None:
            return f"its head '{head}' is not installed (see the README's training commands)", head
        if base != model_name:
            return f"its head '{head}' belongs to '{base}', not '{model_name}'", head
    return None, head


def checkpoint_refusal(selector: str | None) -> str | None:
    """Why ``train`` cannot fine-tune a classifier checkpoint with ``selector`` (None when it can).

    Only selectors without learned weights of their own train there (every fixed-schedule and merging
    selector): AdapLeR's predictors, TR-BERT's policies, LTP's thresholds and Token Dropping's table were
    made for the default model's ``sst2-lora`` head, and their trainers take a project head, not a
    checkpoint's own head.
    """
    if selector is None:
        return ("it is a fine-tuned classifier checkpoint: give --selector (and --retention-range LO,HI) to "
                "fine-tune its Train-Select model")
    info = SELECTORS[selector]
    if info.artifacts:
        return (f"{info.short} needs weights of its own trained on the default model's {DEFAULT_HEAD} head; its "
                f"trainer (python -m pyramid train-{selector.replace('-', '')}) does not take a checkpoint's own head. "
                "Every fixed-schedule and merging selector trains on a checkpoint")
    if not info.uses_retention:
        return f"{info.short} sets its own lengths; it does not train with a retention schedule"
    return None


def plan_run(model, name: str, regime: str = "inference") -> RunPlan:
    """How the registered selector ``name`` runs on ``model`` (a :class:`pyramid.api.Model`) in ``regime``.

    Raises:
        KeyError: unknown selector. ValueError: unknown regime.
    """
    _check_regime(regime)
    info = SELECTORS[name]
    if regime == "train-select" and model.has_own_head:
        refusal = checkpoint_refusal(name)
        own = None if refusal is not None else model.train_select_model(name)
        reason = None
        if refusal is not None:
            reason = f"it has no Train-Select model for a fine-tuned classifier checkpoint: {refusal}"
        elif own is None:
            reason = (f"'{model.name}' has no Train-Select model for {info.short} yet: make it with `python -m pyramid "
                      f"train --model {model.encoder.path} --data FILE --selector {name} --retention-range 0.1,0.5`")
        return RunPlan(name, regime, reason, own, own)
    reason, runs_on = project_plan(name, regime, model.name)
    if reason is not None and model.has_own_head:
        reason = (f"{info.short} needs the project's own weights, trained on the states of the {DEFAULT_HEAD} head of "
                  f"{DEFAULT_MODEL}; '{model.name}' is a fine-tuned classifier with its own head, so only the "
                  f"selectors without learned weights run on it ({reason})")
    return RunPlan(name, regime, reason, runs_on, runs_on if runs_on is not None else model.inference_head)


def shown_regime(model, name: str, regime: str) -> tuple[str, str | None]:
    """The regime in which to show the selector ``name`` asked for in ``regime`` on ``model``: ``regime`` when it
    runs there; else, for Train-Select, its inference-only run, with a sentence that says so (the app's rule: a
    selector without a Train-Select model here is still shown). ``(regime, note or None)``.

    Raises:
        KeyError: unknown selector. ValueError: unknown regime.
    """
    plan = plan_run(model, name, regime)
    if plan.runs or regime == "inference":
        return regime, None
    return "inference", (f"{SELECTORS[name].short} has no Train-Select model here ({plan.reason}); showing its "
                         "inference-only run.")


def unavailable_reason(name: str, model_name: str | None = None, regime: str = "inference") -> str | None:
    """Why the project's heads and weights cannot run the selector ``name`` on ``model_name`` in ``regime`` (None:
    they can): :func:`project_plan`'s reason, for callers with a model's name and no loaded model.

    Raises:
        KeyError: unknown selector. ValueError: unknown regime.
    """
    return project_plan(name, regime, model_name)[0]


def model_cards(head: str | None, selector: str, regime: str) -> list[tuple[str, Path]]:
    """The model cards (``README.md``) of what a selector runs with in a regime, shipped ones only.

    Args:
        head: the head that predicts (:attr:`pyramid.plan.RunPlan.predicts`), or None.
        selector: the selector's registry name; regime: its regime (which of its shipped artifacts).

    Returns:
        ``[(title, path)]``: the sentiment head that classifies under it, then its learned weights
        (AdapLeR predictors, TR-BERT policies, LTP thresholds, the Token Dropping table), each only when
        the folder is shipped in ``assets/`` with a card. Each card states its data, hyper-parameters,
        command, dev figures and deviations from the paper.
    """
    cards = []
    card = HEADS_DIR / str(head) / "README.md"
    if head is not None and card.is_file():
        cards.append((f"sentiment head `{head}`", card))
    info = SELECTORS.get(selector)
    name = info.artifacts.get(regime) if info is not None else None
    if name:
        for card in sorted(ASSETS_DIR.glob(f"*/{name}/README.md")):
            if card.parent.parent != HEADS_DIR:
                cards.append((f"{info.short} weights `{name}`", card))
    return cards


def usable_selectors(model_name: str | None = None, regime: str = "inference") -> list[str]:
    """Registry names of the selectors the project's heads and weights run on ``model_name`` in ``regime``, in
    registry order (for a loaded model, :meth:`pyramid.api.Model.selectors`)."""
    return [name for name in SELECTORS if unavailable_reason(name, model_name, regime) is None]


@dataclass
class EvaluationRun:
    """One classifier's share of an evaluation: ``regime``, the ``head`` that predicts and the ``selectors`` run
    on it."""

    regime: str
    head: str
    selectors: list[str]


@dataclass
class EvaluationPlan:
    """Which regimes, heads and selectors an evaluation runs (:func:`plan_evaluation`).

    Attributes:
        runs: the inference-only regime's classifier with every selector that runs on it, then in Train-Select
            each selector with its own model.
        left_out: the :class:`RunPlan` of each selector asked for that cannot run on this model in a regime (its
            ``reason``; :meth:`RunPlan.refusal` says it).
        elsewhere: the plans of learned selectors that run on this model, but on another head than the one
            evaluated (their weights read that head's states), with that as their ``reason``.
    """

    runs: list[EvaluationRun] = field(default_factory=list)
    left_out: list[RunPlan] = field(default_factory=list)
    elsewhere: list[RunPlan] = field(default_factory=list)

    @property
    def first_head(self) -> str | None:
        """The first classifier that runs (its labels name the data's classes), or None."""
        return self.runs[0].head if self.runs else None


def _another_head(model, head: str | None, planned: str | None) -> bool:
    """``head`` is a project head other than the model's own inference head and than the Train-Select head the
    plan gave (``planned``): an encoder's own LoRA head, such as a 12-layer model's ``mpnet12-sst2-lora``, whose
    Train-Select heads are its own, not the default head's."""
    if head is None or model.has_own_head:
        return False
    ident = head_identity(head)
    if planned is not None and head_identity(planned) == ident:
        return False
    return model.inference_head is None or ident != head_identity(model.inference_head)


def _head_train_select_plan(model, name: str, head: str) -> RunPlan:
    """Train-Select for ``name`` when the evaluation's head is ``head``: ``head`` itself when it was fine-tuned with
    that selector in the loop, else the head fine-tuned from it with that selector
    (:func:`pyramid.core.artifacts.head_train_select`, ``<head>-ts-<selector>`` beside it), on this model."""
    found = head if head_made_with(head, name) is not None else head_train_select(head, name)  # itself, or beside
    base = head_base_model(found) if found is not None else None
    if found is None:
        reason = (f"the head '{head_identity(head)}' has no Train-Select head for {SELECTORS[name].short} (make "
                  f"'{head_train_select_name(head, name)}' with `python -m pyramid train --model MODEL --selector "
                  f"{name} --retention-range 0.1,0.5 --init-head {head}`)")
    elif base != model.name:
        reason = f"its head '{found}' belongs to '{base}', not '{model.name}'"
    else:
        reason = None
    return RunPlan(name, "train-select", reason, found, found)


def plan_evaluation(model, selectors: Sequence[str], regimes: Sequence[str], head: str | None = None) -> EvaluationPlan:
    """The evaluation of ``selectors`` on ``model`` in ``regimes``: the inference-only regime on ``head`` (the
    model's own inference head when None) with every selector that runs there and reads that head's encoder (a
    learned selector made for another head is left out), and Train-Select with each selector on its own model
    (when ``head`` is another project head than the model's own, such as an encoder's own LoRA head, the
    Train-Select heads fine-tuned from it: ``<head>-ts-<selector>`` beside it).
    Nothing is loaded but the selectors' small configs.

    Raises:
        KeyError: unknown selector. ValueError: unknown regime.
    """
    for regime in regimes:
        _check_regime(regime)
    plan = EvaluationPlan()
    for regime in [r for r in REGIMES if r in regimes]:  # the inference-only regime first, whatever the order asked
        wanted = (head or model.inference_head) if regime == "inference" else None
        names = []
        for name in selectors:
            p = plan_run(model, name, regime)
            if regime == "train-select" and _another_head(model, head, p.runs_on):
                p = _head_train_select_plan(model, name, head)
            if p.reason is not None:
                plan.left_out.append(p)
            elif regime == "train-select":
                plan.runs.append(EvaluationRun(regime, p.predicts, [name]))
            elif p.runs_on is not None and head_identity(p.runs_on) != head_identity(wanted):
                plan.elsewhere.append(replace(p, reason=f"it runs on the head '{p.runs_on}', not '{wanted}' (its "
                                                        "weights read that head's states)"))
            else:
                names.append(name)
        if names and wanted is not None:
            plan.runs.append(EvaluationRun(regime, wanted, names))
    return plan
