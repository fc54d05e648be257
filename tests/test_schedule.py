"""Schedules and the analytic FLOPs model."""

import math
from types import SimpleNamespace

import pytest

from pyramid.core.schedule import Schedule, ScheduleError, encoder_flops, flops_speedup, layer_flops

BERT_BASE = SimpleNamespace(hidden_size=768, intermediate_size=3072, num_attention_heads=12)


def test_geometric_lengths_follow_the_formula():
    n, L, rho, s = 100, 6, 0.3, 2
    lengths = Schedule(retention=rho, start_layer=s).lengths(n, L)
    expected = [n] + [math.ceil(n * rho ** ((j - s + 1) / (L - s))) for j in range(2, L)]
    assert expected[-1] == math.ceil(n * rho)  # the last layer receives rho * n tokens
    assert lengths[:-1] == expected
    assert lengths[-1] == lengths[-2]  # nothing dropped after the last layer
    assert len(lengths) == L


@pytest.mark.parametrize("rho", [0.05, 0.2, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("s", [1, 3, 5])
@pytest.mark.parametrize("n", [1, 2, 7, 128, 512])
def test_lengths_are_non_increasing_and_bounded(rho, s, n):
    lengths = Schedule(retention=rho, start_layer=s).lengths(n, 6)
    assert all(b <= a for a, b in zip(lengths, lengths[1:]))
    assert all(1 <= x <= n for x in lengths)
    assert lengths[: s - 1] == [n] * (s - 1)


def test_retention_one_keeps_everything():
    assert Schedule(retention=1.0).lengths(57, 12) == [57] * 12


def test_alive_lengths_shift_by_one_layer():
    sch = Schedule(retention=0.5)
    assert sch.alive_lengths(64, 6) == [64] + sch.lengths(64, 6)[:-1]


def test_explicit_lengths():
    sch = Schedule.explicit([50, 40, 40, 20, 10])
    assert sch.lengths(64, 6) == [50, 40, 40, 20, 10, 10]
    assert sch.lengths(30, 6) == [30, 30, 30, 20, 10, 10]  # clipped to a shorter example
    assert Schedule.explicit([5, 4, 3, 2, 1, 1]).lengths(9, 6) == [5, 4, 3, 2, 1, 1]


@pytest.mark.parametrize("kwargs", [{"retention": 0.0}, {"retention": 1.5}, {"retention": float("nan")},
                                    {"start_layer": 0}, {"min_length": 0}])
def test_invalid_geometric_schedules_raise(kwargs):
    with pytest.raises(ScheduleError):
        Schedule(**kwargs)


def test_invalid_explicit_schedules_raise():
    with pytest.raises(ScheduleError):
        Schedule.explicit([4, 5, 3])  # increasing
    with pytest.raises(ScheduleError):
        Schedule.explicit([4, 0])
    with pytest.raises(ScheduleError):
        Schedule.explicit([4, 3]).lengths(10, 6)  # wrong count
    with pytest.raises(ScheduleError):
        Schedule.explicit([5, 4, 3, 2, 1, 0 + 2]).lengths(10, 6)  # drops after the last layer
    with pytest.raises(ScheduleError):
        Schedule(start_layer=7).lengths(10, 6)


def test_layer_flops_match_adapler_formula_for_bert_base():
    # docs/methods.md 0.3: AdapLeR's per-layer model for BERT-base is 3156 m^2 + 14,233,554 m.
    for m in (64, 128, 512):
        ours = layer_flops(m, 768, 3072, 12)
        theirs = 3156 * m * m + 14_233_554 * m
        assert abs(ours - theirs) / theirs < 0.01


def test_flops_speedup_reproduces_methods_table():
    # docs/methods.md 1.3 table, L = 12, "selection from after layer 1" (our start_layer=1).
    table = {128: (1.38, 1.98, 2.48, 2.97), 512: (1.41, 2.05, 2.57, 3.10)}
    for n, targets in table.items():
        for rho, target in zip((0.5, 0.2, 0.1, 0.05), targets):
            alive = Schedule(retention=rho, start_layer=1).alive_lengths(n, 12)
            assert flops_speedup(n, alive, BERT_BASE) == pytest.approx(target, abs=0.015)


def test_selection_cost_lowers_speedup():
    alive = Schedule(retention=0.3).alive_lengths(128, 6)
    base = flops_speedup(128, alive, BERT_BASE)
    assert flops_speedup(128, alive, BERT_BASE, selection_flops=1e8) < base
    assert encoder_flops([128] * 6, BERT_BASE) / encoder_flops(alive, BERT_BASE) == pytest.approx(base)
