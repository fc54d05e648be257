"""LoRA sentiment heads: training writes a small complete artifact; loading merges it exactly;
broken artifacts give clear errors. A tiny random-weight BERT keeps this fast."""

import copy
import json

import pytest
import torch

from pyramid.classifier import HEAD_FILES, HeadLoadError, load_classifier, predict_ids
from pyramid.analysis.evaluation import ROW_KEYS, evaluate, example_speedups
from pyramid.data import read_labelled
from pyramid.core.loading import encoder_from_model
from pyramid.core.schedule import Schedule
from pyramid.core.selectors import get_selector
from pyramid.trace import trace_flops, trace_text

def test_artifact_is_complete_small_and_documented(trained):
    clf, out, _, _ = trained
    for name in HEAD_FILES + ("README.md",):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size < 5_000_000
    cfg = json.loads((out / "head_config.json").read_text())
    assert cfg["trained_with"] == {"selector": "coreset", "retention": 0.5, "start_layer": 1}
    assert cfg["base_model"] == "tiny-bert"
    assert "dev_accuracy_full_length" in cfg["metrics"]
    card = (out / "README.md").read_text()
    assert "selection in the loop (Train-Select)" in card and "pytest" in card
    assert "without those options" not in card  # the fixture names no output folder


def test_card_says_where_a_command_with_output_folders_writes(tmp_path):
    from pyramid.training.common import ModelCard

    def card(command):
        return ModelCard(title="t", summary="s", method="m", data="d", command=command).render(tmp_path)

    for command in ("python -m pyramid train-adapler --joint true --out /scratch/a --head-out /scratch/h",
                    "python -m pyramid train --out=/scratch/h"):
        assert "without those options the same command writes into `assets/`" in card(command)
    for command in ("python -m pyramid train --selector coreset", "python -m pyramid train --outline x", ""):
        assert "without those options" not in card(command)


def test_card_writes_unset_options_as_not_set(tmp_path):
    from pyramid.training.common import ModelCard

    text = ModelCard(title="t", summary="s", method="m", data="d", hyper={"limit": None, "lr": 0.001}).render(tmp_path)
    assert "| limit | not set |" in text and "| lr | 0.001 |" in text and "None" not in text


def test_training_does_not_touch_the_base_model_and_learns_lora(trained, tiny_encoder):
    clf, out, _, before = trained
    after = tiny_encoder.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    from safetensors.torch import load_file

    lora = load_file(str(out / "adapter_model.safetensors"))
    lora_b = [v for k, v in lora.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero; training moved it
    merged = clf.encoder.model.state_dict()
    assert any(not torch.allclose(before[k], merged[k]) for k in before if k in merged)


def test_merged_adapter_matches_unmerged_peft_model(trained, tiny_encoder):
    from peft import PeftModel

    clf, out, _, _ = trained
    model = copy.deepcopy(tiny_encoder.model)
    PeftModel.from_pretrained(model, str(out)).eval()
    unmerged = encoder_from_model(model, tiny_encoder.tokenizer, name="tiny-bert")
    ids = torch.tensor([tiny_encoder.tokenizer("the film was good and lovely")["input_ids"]])
    from pyramid.core.encoder import PyramidEncoder

    with torch.inference_mode():
        ref = clf.head(PyramidEncoder(unmerged, get_selector("coreset"), Schedule(retention=1.0))(ids).cls_hidden)
        probs, _ = clf.predict(ids, None, get_selector("coreset"), Schedule(retention=1.0))
    assert torch.allclose(torch.softmax(ref, -1), probs, atol=1e-5)


def test_predict_ids_full_and_pyramid(trained, tiny_encoder):
    clf, *_ = trained
    ids = tiny_encoder.tokenizer("the film was quite a good story and a wonderful one")["input_ids"]
    p = predict_ids(clf, ids, get_selector("coreset"), Schedule(retention=1.0))
    assert p.full_probs == pytest.approx(p.probs)
    p2 = predict_ids(clf, ids, get_selector("first-k"), Schedule(retention=0.2))
    assert p2.full_probs == pytest.approx(p.full_probs)
    assert sum(p2.probs) == pytest.approx(1.0, abs=1e-5)
    assert set(p2.to_json()) == {"head", "multi_label", "labels", "full_probs", "probs", "full_label", "label",
                                 "full_predicted", "predicted"}
    assert p2.to_json()["label"] == p2.label and p2.predicted == [p2.label]


def test_evaluate_rows(trained):
    clf, _, dev, _ = trained
    data = read_labelled(dev, label_names=clf.labels)
    rows = evaluate(clf, data, ["coreset", "random"], [1.0, 0.2], batch_size=8, progress=False)
    assert [tuple(r) for r in rows] == [ROW_KEYS] * 4
    assert [(r["selector"], r["retention"]) for r in rows] == [("coreset", 1.0), ("coreset", 0.2),
                                                               ("random", 1.0), ("random", 0.2)]
    full = rows[0]
    assert full["agreement"] == 1.0 and full["flops_speedup"] == pytest.approx(1.0)
    assert rows[2]["accuracy"] == full["accuracy"]
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["n"] == 48 for r in rows)
    assert rows[1]["flops_speedup"] > 1.2 and rows[3]["flops_speedup"] > rows[1]["flops_speedup"]


def test_example_speedup_matches_trace_flops(tiny_encoder):
    text = "a long and winding story that never quite finds its feet , but the cast is lovely"
    schedule = Schedule(retention=0.3)
    for name in ("coreset", "attention"):
        trace = trace_text(tiny_encoder, text, name, schedule)
        from pyramid.core.encoder import PyramidEncoder

        ids = torch.tensor([trace.input_ids])
        sel = get_selector(name)
        with torch.inference_mode():
            out = PyramidEncoder(tiny_encoder, sel, schedule)(ids)
        speed, alive = example_speedups(out, tiny_encoder.config)
        assert alive[0].tolist() == trace.alive_counts()
        assert float(speed[0]) == pytest.approx(trace_flops(trace, tiny_encoder.config).speedup, rel=1e-9)


def test_broken_artifacts_give_clear_errors(trained, tiny_encoder, minilm, tmp_path):
    _, out, _, _ = trained
    with pytest.raises(HeadLoadError, match="No classifier head 'nope'"):
        load_classifier("nope", tiny_encoder)
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "head_config.json").write_text("{}")
    with pytest.raises(HeadLoadError, match="incomplete: missing adapter_config.json"):
        load_classifier(incomplete, tiny_encoder)
    corrupt = tmp_path / "corrupt"
    import shutil

    shutil.copytree(out, corrupt)
    (corrupt / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(HeadLoadError, match="Could not load the head"):
        load_classifier(corrupt, tiny_encoder)
    bad_json = tmp_path / "badjson"
    shutil.copytree(out, bad_json)
    (bad_json / "head_config.json").write_text("{not json")
    with pytest.raises(HeadLoadError, match="not a valid head config"):
        load_classifier(bad_json, tiny_encoder)
    with pytest.raises(HeadLoadError, match="was trained on 'tiny-bert'"):
        load_classifier(out, minilm)
