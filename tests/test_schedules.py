"""Every retraining schedule against values computed by hand for T = 200, eta_1 = 0.1,
decay by 10 after epochs 90 and 180, T_rt = 20 (warm-up: 10% of the cycle = 2 epochs)."""

import math

import pytest

from methods.core.schedules import allr_factor, retraining_schedule, training_schedule

TRAIN = training_schedule(0.1, 200, "stepped", milestones=(90, 180), gamma=0.1)


def sched(kind, d1=0.0):
    return retraining_schedule(kind, TRAIN, 200, 20, d1=d1)


@pytest.mark.parametrize("t, lr", [(0, 0.1), (89.99, 0.1), (90, 0.01), (179.5, 0.01), (180, 0.001), (199.9, 0.001)])
def test_training_schedule_steps_after_epochs_90_and_180(t, lr):
    assert TRAIN(t) == pytest.approx(lr)


@pytest.mark.parametrize("kind, t, lr", [
    # FT: the last learning rate of training, constant.
    ("ft", 0, 0.001), ("ft", 10, 0.001), ("ft", 19.9, 0.001),
    # LRW: the last 20 epochs of training are [180, 200): all at 0.001.
    ("lrw", 0, 0.001), ("lrw", 19.9, 0.001),
    # SLR: warm-up 0 -> 0.1 over [0, 2); then training compressed: tau = (t - 2) * 200 / 18,
    # so the decays land at t = 2 + 90 * 18/200 = 10.1 and t = 2 + 180 * 18/200 = 18.2.
    ("slr", 0, 0.0), ("slr", 1, 0.05), ("slr", 2, 0.1), ("slr", 10, 0.1), ("slr", 10.09, 0.1), ("slr", 10.11, 0.01),
    ("slr", 15, 0.01), ("slr", 18.19, 0.01), ("slr", 18.21, 0.001), ("slr", 19.9, 0.001),
    # CLR: warm-up, then 0.1 * (1 + cos(pi * (t - 2) / 18)) / 2: 0.1 at t=2, 0.05 at t=11, ~0 at t=20.
    ("clr", 1, 0.05), ("clr", 2, 0.1), ("clr", 11, 0.05), ("clr", 6.5, 0.1 * (1 + math.cos(math.pi / 4)) / 2),
    # LLR: warm-up, then 0.1 * (1 - (t - 2) / 18): 0.1 at 2, 0.05 at 11, 0.025 at 15.5.
    ("llr", 1, 0.05), ("llr", 2, 0.1), ("llr", 11, 0.05), ("llr", 15.5, 0.025),
])
def test_retraining_schedules_by_hand(kind, t, lr):
    assert sched(kind)(t) == pytest.approx(lr, abs=1e-12)


def test_lrw_rewinds_into_the_original_schedule_when_the_cycle_is_long():
    lrw = retraining_schedule("lrw", TRAIN, 200, 120)  # replays epochs [80, 200)
    assert [lrw(t) for t in (0, 9.9, 10, 99.9, 100)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_allr_discounts_the_initial_rate_by_d():
    # d2 = 20 / 200 = 0.1. With d1 = 0.3, d = 0.3: peak 0.03 at t = 2, 0.015 at t = 11.
    allr = sched("allr", d1=0.3)
    assert [allr(1), allr(2), allr(11)] == pytest.approx([0.015, 0.03, 0.015])
    # With d1 below d2, d = d2 = 0.1: peak 0.01.
    assert sched("allr", d1=0.05)(2) == pytest.approx(0.01)


@pytest.mark.parametrize("d1, rt, total, d", [(0.3, 20, 200, 0.3), (0.05, 20, 200, 0.1), (0.0, 300, 200, 1.0),
                                              (1.7, 5, 200, 1.0)])
def test_allr_factor(d1, rt, total, d):
    assert allr_factor(d1, rt, total) == pytest.approx(d)


def test_linear_training_schedule_and_warmup():
    linear = training_schedule(0.2, 100, "linear", warmup_epochs=5)
    assert [linear(0), linear(2.5), linear(5), linear(50)] == pytest.approx([0.0, 0.0975, 0.19, 0.1])


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="slr"):
        retraining_schedule("srl", TRAIN, 200, 20)
