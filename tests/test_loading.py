"""Loading models: the default, local folders, and every way it can fail."""

import json

import pytest

from pyramid.core.loading import DEFAULT_MODEL, ModelLoadError, load_encoder


def test_default_model_is_a_6_layer_bert(minilm):
    assert minilm.name == DEFAULT_MODEL
    assert minilm.num_layers == 6 and minilm.config.hidden_size == 384
    assert minilm.max_length == 512
    assert minilm.config._attn_implementation == "pyramid"


def test_local_folder_loads(tiny_model_dir):
    enc = load_encoder(str(tiny_model_dir))
    assert enc.num_layers == 4 and enc.model.config.model_type == "bert"


def test_missing_path(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_encoder(str(tmp_path / "nope" / "model"))


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json"):
        load_encoder(str(tmp_path))


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="file"):
        load_encoder(str(f))


def test_not_a_bert_family_encoder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1}))
    with pytest.raises(ModelLoadError, match="runs these encoder families: bert"):
        load_encoder(str(tmp_path))


def test_corrupt_weights(tmp_path, tiny_model_dir):
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="Could not load"):
        load_encoder(str(tmp_path / "m"))


def test_hub_ids_can_be_disabled():
    with pytest.raises(ModelLoadError, match="disabled"):
        load_encoder("bert-base-uncased", allow_hub=False)


def test_empty_name():
    with pytest.raises(ModelLoadError, match="empty"):
        load_encoder("   ")


def test_the_default_models_folder_is_the_default_model(capsys):
    """Given by its folder, the default model is still the default model: the same shipped artifacts
    apply in the CLI and the app (one answer to "which selectors run on this model")."""
    from pyramid.cli import main
    from pyramid.core.loading import DEFAULT_MODEL, default_model_path, model_identity
    from pyramid.plan import usable_selectors

    folder = default_model_path()
    assert model_identity(folder, folder) == DEFAULT_MODEL
    assert usable_selectors(model_identity(folder, folder)) == usable_selectors(DEFAULT_MODEL)
    code = main(["trace", "a fine film", "--model", folder, "--selector", "token-dropping", "--head", "none"])
    assert code == 0, capsys.readouterr().err


def test_another_local_model_is_named_by_its_folder(tmp_path, tiny_model_dir):
    from pyramid.core.loading import model_identity

    assert model_identity(str(tiny_model_dir), str(tiny_model_dir)) == tiny_model_dir.name
