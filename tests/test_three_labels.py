"""No two-label assumption in the trainers: a 3-label project head on a tiny random encoder, and every trainer that
takes a head (AdapLeR, TR-BERT, LTP) keeps its three labels in what it writes. (Token Dropping's trainer reads no
labels; the checkpoint trainer's 3-label and multi-label runs are in test_train_checkpoint.py.)"""

from __future__ import annotations

import json

import pytest
import torch

from test_train_checkpoint import _write

pytestmark = pytest.mark.slow

LABELS = ["politics", "sport", "weather"]  # a file's label words, in sorted order


@pytest.fixture(scope="module")
def three(tmp_path_factory, tiny_encoder):
    from pyramid.training.heads import TrainSettings, train_classifier

    root = tmp_path_factory.mktemp("three")
    train = _write(root / "train.csv", 96, 0, column="label")
    dev = _write(root / "dev.csv", 24, 1, column="label")
    s = TrainSettings(data=train, dev=dev, out=str(root / "head3"), name="head3", epochs=1, batch_size=16, lr=5e-3,
                      head_lr=5e-3, lora_r=4, lora_alpha=8, max_length=32, command="pytest")
    clf = train_classifier(tiny_encoder, s, progress=False)
    return clf, root, train, dev


def _labels(folder) -> list[str]:
    return json.loads((folder / "head_config.json").read_text())["labels"]


def test_a_head_learns_the_files_three_labels(three):
    clf, root, _, _ = three
    assert clf.labels == LABELS and _labels(root / "head3") == LABELS
    assert clf.head.out.out_features == 3
    assert "3-label classification head" in (root / "head3" / "README.md").read_text()


def test_adapler_joint_keeps_three_labels(three, tiny_encoder):
    from pyramid.training.adapler import AdaplerSettings, train_adapler

    clf, root, train, dev = three
    s = AdaplerSettings(data=train, dev=dev, joint=True, out=str(root / "ad"), head_out=str(root / "ad-head"),
                        name="ad", head=clf.config.name, epochs=1, holdout=16, batch_size=16, max_length=32,
                        lr=1e-2, lora_lr=5e-3, head_lr=5e-3, eta_lr=1e-2, phi=0.01, command="pytest")
    train_adapler(clf, s, base=tiny_encoder, progress=False)
    assert _labels(root / "ad-head") == LABELS


def test_trbert_joint_keeps_three_labels(three, tiny_encoder, tmp_path):
    from pyramid.training.trbert import TrbertSettings, train_trbert

    clf, root, train, _ = three
    rl = TrbertSettings(data=train, dev=None, out=str(tmp_path / "rl"), name="rl", head=clf.config.name, alpha=1.0,
                        epochs=1, batch_size=16, samples=2, max_length=32, lr=1e-2, command="pytest")
    torch.manual_seed(0)
    train_trbert(clf, rl, progress=False)
    joint = TrbertSettings(data=train, dev=None, phase="joint", init_policy=str(tmp_path / "rl"), head=clf.config.name,
                           out=str(tmp_path / "pol"), head_out=str(tmp_path / "joint-head"), name="joint", alpha=1.0,
                           epochs=1, batch_size=8, samples=2, max_length=32, lr=1e-3, lora_lr=5e-3, head_lr=5e-3,
                           command="pytest")
    train_trbert(clf, joint, base=tiny_encoder, progress=False)
    assert _labels(tmp_path / "joint-head") == LABELS


def test_ltp_keeps_three_labels(three, tiny_encoder, tmp_path):
    from pyramid.training.ltp import LtpSettings, train_ltp

    clf, root, train, dev = three
    s = LtpSettings(data=train, dev=dev, head=str(root / "head3"), name="ltp3", out=str(tmp_path / "ltp"),
                    head_out=str(tmp_path / "ltp-head"), inference_out=str(tmp_path / "ltp-inf"), batch_size=16,
                    max_length=32, lam=0.5, theta_final=0.2, reference_length=8, temperature=1e-2, lr=5e-3,
                    head_lr=5e-3, theta_lr=1e-2, hard_lr=5e-3, command="pytest")
    train_ltp(tiny_encoder, s, progress=False)
    assert _labels(tmp_path / "ltp-head") == LABELS
