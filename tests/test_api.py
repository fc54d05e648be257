"""The Python API (``pyramid.run``, ``pyramid.load``, ``pyramid.show``): one pass per answer, the README's
notebook example, and the installed package with its ``pyramid-lens`` command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pyramid
from pyramid.core.encoder import PyramidEncoder
from pyramid.core.schedule import Schedule

ROOT = Path(__file__).resolve().parent.parent
TEXT = "a gripping , funny film , though the ending drags on far too long ."


@pytest.fixture(scope="module")
def model():
    return pyramid.load()


@pytest.fixture
def passes(monkeypatch):
    """Counts the encoder passes (PyramidEncoder.forward calls) made while a test runs."""
    count = {"n": 0}
    forward = PyramidEncoder.forward

    def counting(self, *args, **kwargs):
        count["n"] += 1
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(PyramidEncoder, "forward", counting)
    return count


def test_run_returns_the_trace_with_the_prediction_of_the_same_pass(model):
    trace = pyramid.run(TEXT, model, selector="coreset", retention=0.3)
    pred = trace.prediction
    assert pred.head == "sst2-lora" and pred.labels == ["negative", "positive"]
    assert trace.regime == "inference" and len(trace.layers) == 6
    assert len(trace.layers[-1].alive) < trace.n_tokens
    # the same answer as a prediction made without a trace (one pass each, same weights, same kept tokens)
    again = model.predict(TEXT, "coreset", schedule=Schedule(retention=0.3))
    assert again.probs == pytest.approx(pred.probs, abs=1e-6)
    assert pred.full_probs == again.full_probs
    assert trace.to_json()["prediction"] == pred.to_json()


def test_one_pass_per_answer_and_full_length_once_per_text(model, passes):
    text = "an utterly new sentence about a film that nobody has traced before ."
    model.trace(text, "coreset", schedule=Schedule(retention=0.3))
    assert passes["n"] == 2  # the trace (its prediction comes from it), and the full-length answer once
    model.trace(text, "attention", schedule=Schedule(retention=0.3))
    assert passes["n"] == 3  # the full-length answer is not recomputed for the same text
    model.trace(text, "random", schedule=Schedule(retention=1.0))
    assert passes["n"] == 4
    model.full_prediction(text)
    assert passes["n"] == 4
    model.trace(text, "coreset", regime="train-select", schedule=Schedule(retention=0.3))
    assert passes["n"] == 6  # another classifier: its own full-length answer


def test_train_select_and_learned_selectors_predict_with_their_own_heads(model):
    ts = pyramid.run(TEXT, model, "coreset", regime="train-select", retention=0.3)
    assert ts.prediction.head == "sst2-lora-ts-coreset" and ts.regime == "train-select"
    if model.unavailable("adapler") is None:
        learned = pyramid.run(TEXT, model, "adapler")
        assert learned.prediction.head == "sst2-lora"


def test_head_none_traces_the_model_as_loaded(model):
    trace = pyramid.run(TEXT, model, "attention", head="none", retention=0.5)
    assert trace.prediction is None


def test_token_ids_are_accepted(model):
    ids = model.tokenize(TEXT).input_ids
    by_ids = pyramid.run(ids, model, "first-k", retention=0.5)
    by_text = pyramid.run(TEXT, model, "first-k", retention=0.5)
    assert by_ids.tokens == by_text.tokens and by_ids.prediction.probs == pytest.approx(by_text.prediction.probs)
    with pytest.raises(pyramid.trace.EmptyTextError):
        pyramid.run([101, 102], model)


def test_a_selector_that_cannot_run_says_why(tiny_model_dir):
    plain = pyramid.Model.load(str(tiny_model_dir))
    trace = plain.trace("a fine film", "coreset")
    assert trace.prediction is None and "no classifier" in trace.prediction_note
    with pytest.raises(ValueError, match="cannot run on"):
        plain.trace("a fine film", "adapler")


def test_show_gives_html_and_figures(model):
    trace = pyramid.run(TEXT, model, "coreset", retention=0.3)
    html = pyramid.show(trace)
    assert "pl-pyr" in html._repr_html_() and "predicted" in html
    assert pyramid.show(trace, "overview").data[0].type == "heatmap"
    strip = pyramid.show(trace, "strip")  # the app's HTML strip: one column per token
    assert strip._repr_html_().count('class="pl-sc"') == trace.n_tokens and "predicted" in strip
    assert pyramid.show(trace, "coverage").layout.yaxis.title.text
    with pytest.raises(ValueError, match="unknown view"):
        pyramid.show(trace, "nope")
    runs = [pyramid.run(TEXT, model, name, retention=0.3) for name in ("coreset", "tome", "first-k")]
    fig = pyramid.show(runs, "survival", words=True, saliency=[1.0] * runs[0].n_tokens)
    depth = next(t for t in fig.data if t.type == "heatmap" and t.colorbar.title.text)
    assert len(depth.y) == 3 and depth.z.shape[1] == len(runs[0].words) + 2  # words + [CLS], [SEP]
    assert any(t.type == "heatmap" and list(t.y) == ["saliency"] for t in fig.data)


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_notebook_example_runs(capsys):
    code = _readme_example()
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    trace = namespace["trace"]
    assert trace.prediction is not None and trace.prediction.label in trace.prediction.labels
    assert "pl-pyr" in namespace["figure"]._repr_html_()


def test_pyproject_packages_every_subpackage_of_pyramid():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "pyramid").rglob("__init__.py")}
    assert found <= listed, f"missing from pyproject.toml's packages (pip install . would leave them out): {found - listed}"


@pytest.mark.slow
def test_pip_install_gives_the_package_its_assets_and_the_command(tmp_path):
    pytest.importorskip("setuptools")
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheel_dir)], check=True, capture_output=True, timeout=600)
    wheel = next(wheel_dir.glob("pyramid_lens-*.whl"))
    import zipfile

    # every subpackage is in the wheel (an editable install beside the test would hide a missing one below)
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in (ROOT / "pyramid").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names, f"{init.parent.name} is missing from the wheel (pyproject)"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    assert (target / "bin" / "pyramid-lens").is_file()
    assert (target / "pyramid" / "assets" / "heads" / "sst2-lora" / "head.safetensors").is_file()
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "pyramid", "trace", "a gripping film", "--retention", "0.3"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["prediction"]["head"] == "sst2-lora"  # the packaged head, away from the checkout
    probe = subprocess.run([sys.executable, "-c", "import pyramid.core.artifacts as a; print(a.ASSETS_DIR)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == str(target / "pyramid" / "assets")


def test_scrub_gives_the_traces_pyramid_at_every_retention(model):
    from pyramid.present.figures import layer_states, states_of_rows
    from pyramid.core.schedule import Schedule
    from pyramid.words import trace_groups

    frames = model.scrub(TEXT, "tome", retentions=[0.1, 0.5, 1.0])
    assert sorted(frames) == [0.1, 0.5, 1.0]
    for rho in (0.1, 0.5):
        tr = model.trace(TEXT, "tome", "inference", Schedule(retention=rho))
        g = trace_groups(tr, True)
        assert (states_of_rows(frames[rho], tr.n_tokens, g)[1] == layer_states(tr, g)[1]).all()
    assert all(kept == alive for _, alive, kept, _ in frames[1.0])
    with pytest.raises(ValueError, match="own lengths"):
        model.scrub(TEXT, "adapler")
