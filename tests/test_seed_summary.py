"""scripts/seed_summary.py: heads group by name without their -sK suffix; mean and sample deviation over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import seed_summary  # scripts/ is on pytest's path (pytest.ini)

ROOT = Path(__file__).resolve().parent.parent


def _head(tmp_path: Path, name: str, seed: int, acc: dict, lr: float = 1e-3, selector: str = "coreset") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    cfg = {"name": name, "trained_with": {"selector": selector},
           "training": {"seed": seed, "lr": lr, "command": f"python -m pyramid train --seed {seed}"},
           "metrics": {"dev": "dev.tsv", **{f"dev_accuracy_{k}": v for k, v in acc.items()}}}
    (folder / "head_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return folder


def test_seeds_of_one_head_group_together_with_mean_and_sample_std(tmp_path, capsys):
    folders = [_head(tmp_path, "ts-coreset", 0, {"coreset_rho0.3": 0.86}),
               _head(tmp_path, "ts-coreset-s1", 1, {"coreset_rho0.3": 0.87}),
               _head(tmp_path, "ts-coreset-s2", 2, {"coreset_rho0.3": 0.88}),
               _head(tmp_path, "ts-random", 0, {"random_rho0.3": 0.85})]
    out = tmp_path / "seeds.json"
    assert seed_summary.main([str(f) for f in folders] + ["--out", str(out)]) == 0
    rows = {(r["recipe"], r["figure"]): r for r in json.loads(out.read_text())["rows"]}
    r = rows[("ts-coreset", "coreset_rho0.3")]
    assert r["seeds"] == [0, 1, 2] and r["mean"] == pytest.approx(87.0) and r["std"] == pytest.approx(1.0)
    assert rows[("ts-random", "random_rho0.3")]["std"] is None  # one seed: no spread
    assert "87.00 +- 1.00" in capsys.readouterr().out


def test_a_seed_trained_with_other_settings_is_flagged(tmp_path, capsys):
    folders = [_head(tmp_path, "h", 0, {"full_length": 0.9}), _head(tmp_path, "h-s1", 1, {"full_length": 0.9}, lr=5e-4)]
    seed_summary.main([str(f) for f in folders])
    assert "differ in lr" in capsys.readouterr().err


def test_differences_between_selectors_have_a_welch_interval_over_seeds(tmp_path):
    from scipy import stats

    cs, rd = [86.0, 87.0, 88.0], [84.0, 84.5, 85.5]
    folders = [_head(tmp_path, "ts-coreset" + ("" if k == 0 else f"-s{k}"), k,
                     {"coreset_rho0.3": v / 100, "coreset_rho0.1": 0.8, "full_length": 0.9}) for k, v in enumerate(cs)]
    folders += [_head(tmp_path, "ts-random" + ("" if k == 0 else f"-s{k}"), k, {"random_rho0.3": v / 100},
                      selector="random") for k, v in enumerate(rd)]
    folders += [_head(tmp_path, "ts-attention", 0, {"attention_rho0.3": 0.9}, selector="attention")]  # one seed
    out = tmp_path / "seeds.json"
    assert seed_summary.main([str(f) for f in folders] + ["--out", str(out)]) == 0
    diffs = json.loads(out.read_text())["differences"]
    assert len(diffs) == 1  # only rho 0.3 is common; one seed of attention gives no interval
    d = diffs[0]
    assert (d["selector_a"], d["selector_b"], d["retention"]) == ("coreset", "random", 0.3)
    assert d["diff"] == pytest.approx(2.33, abs=0.01) and d["a_ahead"] == 3 and d["paired_seeds"] == 3
    ci = stats.ttest_ind(cs, rd, equal_var=False).confidence_interval(0.95)
    assert (d["low"], d["high"]) == (round(ci.low, 2), round(ci.high, 2)) and d["low"] < d["diff"] < d["high"]


def test_cards_get_a_seeds_section_once(tmp_path):
    folders = [_head(tmp_path, "ts-coreset" + ("" if k == 0 else f"-s{k}"), k, {"coreset_rho0.3": v})
               for k, v in enumerate((0.86, 0.87, 0.88))]
    card = folders[0] / "README.md"
    card.write_text("# ts-coreset\n\n## Metrics\nx\n\n## Hyper-parameters\ny\n", encoding="utf-8")
    for _ in range(2):  # a second run replaces the section instead of adding one
        assert seed_summary.main([str(f) for f in folders] + ["--cards"]) == 0
    text = card.read_text(encoding="utf-8")
    assert text.count("## Seeds") == 1 and text.index("## Metrics") < text.index("## Seeds") < text.index("## Hyper")
    assert "| coreset_rho0.3 | 86.00 | 87.00 | 88.00 | 87.00 ± 1.00 |" in text
    assert "Seed 2: `python -m pyramid train --seed 2`" in text
    assert not (folders[1] / "README.md").exists()  # only seed 0's card


def test_no_interval_when_every_seed_scored_the_same(tmp_path):
    folders = [_head(tmp_path, "a" + ("" if k == 0 else f"-s{k}"), k, {"coreset_rho0.3": 0.86}) for k in range(2)]
    folders += [_head(tmp_path, "b" + ("" if k == 0 else f"-s{k}"), k, {"random_rho0.3": 0.85}, selector="random")
                for k in range(2)]
    d = seed_summary.differences(seed_summary.summarize([seed_summary.read_head(f) for f in folders]))[0]
    assert d["diff"] == pytest.approx(1.0) and d["low"] is None and d["high"] is None
