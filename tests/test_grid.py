"""`python -m pyramid grid`: a 2 x 2 grid of tiny trials in this process and on a local Ray (127.0.0.1),
resuming, failures reported without stopping the grid, bad grid files and Ray addresses refused in one line."""

from __future__ import annotations

import json
import os
import time

import pytest

from pyramid import cli
from pyramid.grid import load_grid

from test_checkpoint_classifier import _save
from test_train_checkpoint import _write

TINY = """
retentions = [1.0, 0.5, 0.3]
retention_range = [0.2, 0.6]
epochs = 1
batch_size = 8
max_length = 32
sandwich = 1
lora_r = 2
lora_alpha = 4
label_column = "topic"
"""


@pytest.fixture()
def setup(tmp_path, minilm):
    root = tmp_path / "models"
    _save(root / "news-bert", "bert", minilm.tokenizer, seed=3)
    data = tmp_path / "data"
    data.mkdir()
    train, dev = _write(data / "train.csv", 32, 0), _write(data / "dev.csv", 16, 1)

    def grid(selectors='["coreset", "attention"]', seeds="[0, 1]", extra="", models=None) -> str:
        path = tmp_path / "grid.toml"
        models = models or f'["{root / "news-bert"}"]'
        path.write_text(f'models = {models}\nselectors = {selectors}\nseeds = {seeds}\ntrain = "{train}"\n'
                        f'dev = "{dev}"\ndataset = "news-dev"\n{TINY}{extra}', encoding="utf-8")
        return str(path)

    return tmp_path, grid


def _run(*args: str) -> int:
    return cli.main(["grid", *args])


@pytest.mark.slow
def test_a_grid_runs_in_process_resumes_and_summarises_the_seeds(setup, capsys):
    tmp, grid = setup
    out, results = tmp / "out", tmp / "results"
    path = grid()
    assert _run(path, "--out", str(out), "--results", str(results)) == 0
    text = capsys.readouterr().out
    assert text.count("news-bert-ts-") >= 4 and "[4/4]" in text
    for sel in ("coreset", "attention"):
        for seed in (0, 1):
            res = json.loads((out / "trials" / f"news-bert-ts-{sel}-s{seed}" / "result.json").read_text())
            assert [r["retention"] for r in res["rows"]] == [1.0, 0.5, 0.3]
            assert res["rows"][0]["regime"] == "inference"  # evaluate() names the classifier's rows so
            assert (out / "trials" / f"news-bert-ts-{sel}-s{seed}" / "model" / "train_select.json").is_file()
    summary = json.loads((results / "seeds__news-dev.json").read_text())
    figures = {(r["recipe"], r["figure"]): r for r in summary["rows"]}
    assert figures[("news-bert-ts-coreset", "coreset_rho0.5")]["seeds"] == [0, 1]
    diff = summary["differences"][0]
    assert {diff["selector_a"], diff["selector_b"]} == {"coreset", "attention"} and "paired_low" in diff
    assert json.loads((results / "seeds__news-dev.json.meta.json").read_text())["command"].startswith("python -m pyramid grid")
    from pyramid.analysis.results import load_seed_differences, load_seed_spread

    assert load_seed_spread("news-dev", results)[0] and load_seed_differences("news-dev", results)

    # resumes: nothing is trained again; one trial removed is the only one run
    (out / "trials" / "news-bert-ts-attention-s1" / "result.json").unlink()
    assert _run(path, "--out", str(out), "--results", str(results)) == 0
    text = capsys.readouterr().out
    assert text.count("done in an earlier run") == 3 and "news-bert-ts-attention-s1: rho 1" in text


@pytest.mark.slow
def test_a_failed_trial_is_reported_and_the_grid_goes_on(setup, capsys, tmp_path):
    tmp, grid = setup
    path = grid(selectors='["coreset"]', seeds="[0]",
                models=f'["{tmp / "models" / "news-bert"}", "{tmp / "models" / "missing"}"]')
    assert _run(path, "--out", str(tmp / "out"), "--results", str(tmp / "r")) == 1
    captured = capsys.readouterr()
    assert "missing-ts-coreset-s0: FAILED" in captured.out and "does not exist" in captured.out
    assert "news-bert-ts-coreset-s0: rho 1" in captured.out
    assert "1 of 2 trials failed" in captured.err
    assert (tmp / "out" / "trials" / "missing-ts-coreset-s0" / "error.txt").is_file()


@pytest.mark.slow
def test_a_grid_on_a_local_ray(setup, capsys, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    tmp, grid = setup
    path = grid()
    assert _run(path, "--ray", "--num-cpus", "2", "--out", str(tmp / "out"), "--results", str(tmp / "r")) == 0
    text = capsys.readouterr().out
    assert "on Ray (a local Ray" in text and "[4/4]" in text
    assert sum(1 for d in (tmp / "out" / "trials").iterdir() if (d / "result.json").is_file()) == 4
    assert (tmp / "r" / "seeds__news-dev.json").is_file()


@pytest.mark.parametrize("extra,message", [
    ("lr_typo = 1\n", "unknown key(s) lr_typo"),
    ("weight_decay = -1\n", "weight_decay"),
    ("seed = 3\n", "unknown key(s) seed"),
])
def test_bad_grid_files_fail_with_one_line(setup, capsys, extra, message):
    _, grid = setup
    assert _run(grid(extra=extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_unknown_selectors_and_missing_files_are_refused(setup, capsys, tmp_path):
    _, grid = setup
    assert _run(grid(selectors='["coreset", "k-means"]')) == 2
    assert "unknown selector(s) k-means" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("models = [\n")
    assert _run(str(bad)) == 2
    assert "not valid TOML" in capsys.readouterr().err
    g = load_grid(grid(), str(tmp_path / "o"))
    assert [t.id for t in g.trials] == ["news-bert-ts-coreset-s0", "news-bert-ts-coreset-s1",
                                       "news-bert-ts-attention-s0", "news-bert-ts-attention-s1"]
    assert g.trials[0].options["retention_range"] == (0.2, 0.6) and g.trials[0].options["epochs"] == 1.0


def test_an_unreachable_ray_address_fails_fast(setup, capsys):
    _, grid = setup
    t0 = time.perf_counter()
    assert _run(grid(), "--ray", "127.0.0.1:9") == 2  # the discard port: nothing listens there
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert err.startswith("error:") and "no Ray cluster answers" in err
    assert not os.path.exists("grid-runs/grid")


def test_a_summary_made_elsewhere_is_not_replaced_unasked(setup, tmp_path):
    from pyramid.grid import write_summary

    _, grid = setup
    g = load_grid(grid(), str(tmp_path / "out"))
    results = [{"trial": t.id, "model": t.model, "selector": t.selector, "seed": t.seed, "settings": t.options,
                "rows": [{"retention": 1.0, "accuracy": 0.5 + 0.01 * t.seed}, {"retention": 0.5, "accuracy": 0.4}]}
               for t in g.trials]
    shipped = tmp_path / "results"
    shipped.mkdir()
    (shipped / "seeds__news-dev.json").write_text('{"rows": [], "differences": []}')
    path, rows, _ = write_summary(g, results, str(shipped), "cmd", keep_others=str(tmp_path / "out"))
    assert path == tmp_path / "out" / "seeds__news-dev.json" and rows
    assert (shipped / "seeds__news-dev.json").read_text() == '{"rows": [], "differences": []}'
    (shipped / "seeds__news-dev.json").unlink()
    first, _, _ = write_summary(g, results, str(shipped), "cmd", keep_others=str(tmp_path / "out"))
    again, _, _ = write_summary(g, results, str(shipped), "cmd", keep_others=str(tmp_path / "out"))
    assert first == again == shipped / "seeds__news-dev.json"  # its own summary: replaced
