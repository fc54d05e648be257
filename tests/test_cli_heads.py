"""``python -m pyramid train / evaluate / bench`` and the trace's prediction."""

import json
from pathlib import Path

import pytest

from pyramid.analysis.bench import BENCH_KEYS, MEMORY_KEYS, PAIR_KEYS
from pyramid.cli import main
from pyramid.analysis.evaluation import ROW_KEYS

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def run_main(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_cli_writes_an_artifact(capsys, tmp_path, tiny_model_dir):
    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"\"a {w} film\",{y}\n" for w, y in
                                            [("good", "positive"), ("bad", "negative")] * 16), encoding="utf-8")
    out = tmp_path / "head"
    code, stdout, err = run_main(capsys, "train", "--model", str(tiny_model_dir), "--data", str(data),
                                 "--dev", str(data), "--out", str(out), "--name", "t", "--limit", "24",
                                 "--batch-size", "8", "--quiet")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["head"] == "t" and 0.0 <= report["metrics"]["dev_accuracy_full_length"] <= 1.0
    cfg = json.loads((out / "head_config.json").read_text())
    assert cfg["training"]["examples"] == 24 and cfg["trained_with"] is None
    assert cfg["training"]["command"].startswith("python -m pyramid train")


def test_evaluate_cli_json_and_csv(capsys, tmp_path):
    data = tmp_path / "mini.tsv"
    data.write_text("sentence\tlabel\na wonderful , moving film .\t1\na dull , lifeless mess .\t0\n"
                    "the best thing i have seen this year .\t1\nboring and far too long .\t0\n", encoding="utf-8")
    out = tmp_path / "res.csv"
    code, stdout, err = run_main(capsys, "evaluate", "--data", str(data), "--selectors", "coreset,first-k",
                                 "--retention", "1.0,0.3", "--regime", "inference", "--json", "--out", str(out),
                                 "--quiet")
    assert code == 0, err
    rows = json.loads(stdout)
    assert len(rows) == 4 and all(tuple(r) == ROW_KEYS for r in rows)
    assert rows[0]["accuracy"] == 1.0  # the shipped head gets these four right at full length
    assert rows[1]["flops_speedup"] > 1.3
    from pyramid.analysis.results import read_eval_csv

    saved = read_eval_csv(out)
    assert [(r["selector"], r["retention"], r["n"]) for r in saved] == [(r["selector"], r["retention"], r["n"]) for r in rows]
    assert [r["accuracy"] for r in saved] == pytest.approx([r["accuracy"] for r in rows])
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["head"] == "sst2-lora" and "python -m pyramid" in meta["command"]


def test_evaluate_both_regimes_keeps_inference_rows_of_a_selector_without_train_select_model(capsys, tmp_path,
                                                                                          monkeypatch):
    import pyramid.plan as plan

    original = plan.project_plan

    def no_ts_first_k(name, regime="inference", model_name=None):
        if name == "first-k" and regime == "train-select":
            return "no Train-Select model installed (test)", None
        return original(name, regime, model_name)

    monkeypatch.setattr(plan, "project_plan", no_ts_first_k)
    data = tmp_path / "mini.tsv"
    data.write_text("sentence\tlabel\na wonderful film .\t1\na dull mess .\t0\n", encoding="utf-8")
    code, stdout, err = run_main(capsys, "evaluate", "--data", str(data), "--selectors", "first-k",
                                 "--retention", "1.0,0.5", "--regime", "both", "--json", "--quiet")
    assert code == 0, err
    rows = json.loads(stdout)
    assert [(r["regime"], r["selector"]) for r in rows] == [("inference", "first-k")] * 2
    assert "first-k" in err and "train-select rows are left out" in err
    code, _, err = run_main(capsys, "evaluate", "--data", str(data), "--selectors", "first-k", "--regime",
                            "train-select", "--quiet")
    assert code == 2 and "no Train-Select model installed (test)" in err


@pytest.mark.skipif(not (SHARED / "imdb" / "dev.csv").is_file(), reason="../shared/data not present")
@pytest.mark.slow
def test_evaluate_cli_reads_imdb_word_labels_and_truncates(capsys):
    code, stdout, err = run_main(capsys, "evaluate", "--data", str(SHARED / "imdb" / "dev.csv"), "--limit", "3",
                                 "--selectors", "coreset", "--retention", "0.5", "--regime", "inference", "--json",
                                 "--quiet")
    assert code == 0, err
    rows = json.loads(stdout)
    assert rows[0]["n"] == 3 and rows[0]["selector"] == "coreset"


@pytest.mark.slow
def test_bench_cli_json_keys(capsys):
    code, stdout, err = run_main(capsys, "bench", "--config", "default", "--seq-len", "24", "--batch-size", "2",
                                 "--repeats", "1", "--selectors", "coreset,attention", "--json", "--quiet")
    assert code == 0, err
    rows = json.loads(stdout)
    assert len(rows) == 2 and all(tuple(r) == BENCH_KEYS for r in rows)
    for r in rows:
        assert r["full_ms"] > 0 and r["pyramid_ms"] > 0 and r["flops_speedup"] > 1.0
        assert r["measured_speedup"] == pytest.approx(r["full_ms"] / r["pyramid_ms"], rel=0.02)
        assert r["ratio"] == pytest.approx(r["measured_speedup"] / r["flops_speedup"], rel=0.02)


@pytest.mark.slow
def test_bench_pair_times_both_selections_in_one_run(capsys):
    code, stdout, err = run_main(capsys, "bench", "--config", "default", "--seq-len", "40", "--batch-size", "1,2",
                                 "--repeats", "3", "--pair", "coreset-pool:coreset, tome:first-k", "--json", "--quiet")
    assert code == 0, err
    rows = json.loads(stdout)
    assert [(r["selector"], r["baseline"], r["batch_size"]) for r in rows] == [
        ("coreset-pool", "coreset", 1), ("tome", "first-k", 1), ("coreset-pool", "coreset", 2), ("tome", "first-k", 2)]
    for r in rows:
        assert tuple(r) == PAIR_KEYS
        assert r["selection_ms"] > 0 and r["baseline_selection_ms"] > 0 and r["pyramid_ms"] > r["selection_ms"]
        assert r["selection_ratio"] == pytest.approx(r["selection_ms"] / r["baseline_selection_ms"], rel=0.02)


@pytest.mark.slow
def test_memory_of_a_training_step_shrinks_with_the_pyramid():
    from pyramid.analysis.bench import run_memory

    rows = run_memory(["default"], seq_len=512, batch_size=4, selectors=["coreset"], retentions=[0.1])
    assert tuple(rows[0]) == MEMORY_KEYS
    r = rows[0]
    assert r["full_mb"] > 0 and r["pyramid_mb"] < r["full_mb"]


def test_trace_prediction_absent_head_is_null(capsys):
    code, stdout, err = run_main(capsys, "trace", "a fine film", "--head", "/no/such/head")
    assert code == 0
    assert json.loads(stdout)["prediction"] is None and "no prediction" in err
    code, stdout, _ = run_main(capsys, "trace", "a fine film", "--head", "none")
    assert code == 0 and json.loads(stdout)["prediction"] is None
