"""No trainer reads an evaluation file before its training ends.

Each trainer (and ``scripts/train_bbc.py``) runs a tiny training with its **default** data options, while every
file opened (``open``, ``io.open``, ``os.open``: the csv readers, pathlib and pandas go through them) and every
optimiser step (torch's global step hook) is recorded in order. An evaluation file (a ``dev``, ``test``,
``validation`` or ``holdout`` file, or anything under an ``imdb`` folder: the files results and cards are
measured on) may be read only after the last optimiser step: a read before it, by a default, an option or any
code path, fails the test. (The older check in test_structure.py compares the defaults only.)
"""

from __future__ import annotations

import builtins
import io
import os
import re
import sys

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

pytestmark = pytest.mark.slow

EVAL_NAME = re.compile(r"(^|[/\\])(dev|test|validation|holdout)[^/\\]*\.(tsv|csv|txt|jsonl?)$|[/\\]imdb[/\\]", re.I)


class Recorder:
    """The order of file reads and optimiser steps during a run."""

    def __init__(self):
        self.events: list[tuple[str, str]] = []

    def leaks(self) -> list[str]:
        """Evaluation files read before the last optimiser step."""
        steps = [i for i, (kind, _) in enumerate(self.events) if kind == "step"]
        if not steps:
            raise AssertionError("no optimiser step was recorded: the run did not train")
        return sorted({p for i, (kind, p) in enumerate(self.events[: steps[-1]]) if kind == "read" and EVAL_NAME.search(p)})

    def reads(self) -> list[str]:
        return [p for kind, p in self.events if kind == "read"]


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder()
    real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

    def note(path, mode="r"):
        if isinstance(path, (str, bytes, os.PathLike)) and not any(m in str(mode) for m in "wax+"):
            rec.events.append(("read", os.path.realpath(os.fsdecode(path))))

    def rec_open(file, mode="r", *args, **kwargs):
        note(file, mode)
        return real_open(file, mode, *args, **kwargs)

    def rec_io_open(file, mode="r", *args, **kwargs):
        note(file, mode)
        return real_io_open(file, mode, *args, **kwargs)

    def rec_os_open(path, flags, *args, **kwargs):
        if not flags & (os.O_WRONLY | os.O_RDWR):
            note(path)
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", rec_open)
    monkeypatch.setattr(io, "open", rec_io_open)
    monkeypatch.setattr(os, "open", rec_os_open)
    handle = register_optimizer_step_post_hook(lambda *a: rec.events.append(("step", "")))
    yield rec
    handle.remove()


def test_the_recorder_sees_a_leak(recorder, tmp_path):
    """The check can fail: a dev file read before a step is reported."""
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\na\t0\n")
    open(dev).read()
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    p.sum().backward()
    opt.step()
    assert recorder.leaks() == [str(dev.resolve())]


def _tiny(tmp_path):
    """Options shared by the tiny runs: few rows, short texts, small batches; data options left at their defaults."""
    return dict(limit=32, max_length=24, batch_size=16)


def test_train_reads_no_evaluation_file_before_training_ends(recorder, tiny_encoder, tmp_path):
    from pyramid.training.heads import TrainSettings, train_classifier

    s = TrainSettings(out=str(tmp_path / "h"), name="h", selector="coreset", retention_range=(0.2, 0.6), sandwich=0,
                      epochs=1, lora_r=2, lora_alpha=4, command="pytest", **_tiny(tmp_path))
    train_classifier(tiny_encoder, s, progress=False)
    assert recorder.leaks() == []
    assert any(p.endswith("sst2/dev.tsv") for p in recorder.reads())  # measured on, after training


def test_the_learned_trainers_read_no_evaluation_file_before_training_ends(recorder, trained, tiny_encoder, tmp_path):
    from pyramid.training.adapler import AdaplerSettings, train_adapler
    from pyramid.training.ltp import LtpSettings, train_ltp
    from pyramid.training.token_dropping import TokenDroppingSettings, train_token_dropping
    from pyramid.training.trbert import TrbertSettings, train_trbert

    clf, head_dir, _, _ = trained
    runs = {
        "adapler": lambda: train_adapler(clf, AdaplerSettings(out=str(tmp_path / "ad"), name="ad", head=clf.config.name,
                                                              epochs=1, holdout=8, command="pytest",
                                                              **_tiny(tmp_path)), progress=False),
        "trbert": lambda: train_trbert(clf, TrbertSettings(out=str(tmp_path / "tr"), name="tr", head=clf.config.name,
                                                           epochs=1, samples=2, command="pytest", **_tiny(tmp_path)),
                                       progress=False),
        "ltp": lambda: train_ltp(tiny_encoder, LtpSettings(head=str(head_dir), name="lt", out=str(tmp_path / "lt"),
                                                           head_out=str(tmp_path / "lt-head"),
                                                           inference_out=str(tmp_path / "lt-inf"), reference_length=8,
                                                           command="pytest", **_tiny(tmp_path)), progress=False),
        "token-dropping": lambda: train_token_dropping(tiny_encoder, TokenDroppingSettings(
            out=str(tmp_path / "td"), name="td", limit=32, max_length=24, head_steps=3, batch_size=16,
            command="pytest"), progress=False),
    }
    for name, run in runs.items():
        recorder.events.clear()
        torch.manual_seed(0)
        run()
        assert recorder.leaks() == [], name


def test_train_bbc_reads_dev_only_after_training(recorder, tmp_path, monkeypatch):
    """scripts/train_bbc.py, on a tiny copy of its data folder (train.csv, dev.csv), a few steps."""
    import train_bbc  # scripts/ is on pytest's path (pytest.ini)

    rows = ["text,label"] + [f'"{w} news today",{y}' for w, y in [("goal", "sport"), ("vote", "politics")] * 8]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "dev.csv").write_text("\n".join(rows[:7]) + "\n")
    monkeypatch.setattr(sys, "argv", ["train_bbc.py", "--data", str(tmp_path), "--out", str(tmp_path / "m"),
                                      "--epochs", "1", "--batch-size", "8", "--max-length", "16"])
    train_bbc.main()
    assert recorder.leaks() == []
    assert str((tmp_path / "dev.csv").resolve()) in recorder.reads()
