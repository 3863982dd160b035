"""Every retraining schedule against values computed by hand from the formulas of the authors'
code (ZIB-IOL/BIMP, runners/baseRunner.py, define_retrain_schedule) for T = 200, eta_1 = 0.1,
decay by 10 after epochs 90 and 180, T_rt = 20 and 5 iterations per epoch: a cycle of
n = 100 iterations k at t = k / 5, warm-up W = int(0.1 n) = 10 iterations (2 epochs), then
R = 90 iterations j = k - 10; training has N = 1000 iterations and eta_T = 0.001."""

import math

import pytest

from methods.core.schedules import accuracy_drop, allr_factor, retraining_schedule, training_schedule

TRAIN = training_schedule(0.1, 200, "stepped", milestones=(90, 180), gamma=0.1)


def sched(kind, d1=0.0, retrain=20, steps=5, training=TRAIN, epochs=200, **tuned):
    return retraining_schedule(kind, training, epochs, retrain, d1=d1, steps_per_epoch=steps, **tuned)


@pytest.mark.parametrize("t, lr", [(0, 0.1), (89.99, 0.1), (90, 0.01), (179.5, 0.01), (180, 0.001), (199.9, 0.001)])
def test_training_schedule_steps_after_epochs_90_and_180(t, lr):
    assert TRAIN(t) == pytest.approx(lr)


@pytest.mark.parametrize("kind, t, lr", [
    # FT: eta_T, constant. LRW: training iterations 900 + k, all at 0.001.
    ("ft", 0, 0.001), ("ft", 10, 0.001), ("ft", 19.8, 0.001), ("lrw", 0, 0.001), ("lrw", 19.8, 0.001),
    # Warm-up, a half cosine 0.1 (1 - cos(pi k / 10)) / 2: 0 at k = 0, 0.0095492 at k = 2, 0.05 at k = 5,
    # the peak at k = 10 (t = 2); a linear ramp would give 0.02 at k = 2.
    ("slr", 0, 0.0), ("slr", 0.4, 0.1 * (1 - math.cos(0.2 * math.pi)) / 2), ("slr", 1, 0.05), ("slr", 2, 0.1),
    ("clr", 0.4, 0.0095491503), ("clr", 1, 0.05), ("llr", 1, 0.05), ("llr", 1.8, 0.1 * (1 - math.cos(0.9 * math.pi)) / 2),
    # SLR: iteration j replays training iteration floor(1000 j / 90): j = 40 -> 444 (epoch 88.8, 0.1),
    # j = 41 -> 455 (0.01), j = 80 -> 888 (0.01), j = 81 -> 900 exactly (0.001), j = 89 -> 988.
    ("slr", 10.0, 0.1), ("slr", 10.2, 0.01), ("slr", 18.0, 0.01), ("slr", 18.2, 0.001), ("slr", 19.8, 0.001),
    # CLR: 0.001 + 0.099 (1 + cos(pi j / 90)) / 2: 0.1 at j = 0, 0.0505 at j = 45, 0.00103015 at j = 89.
    ("clr", 2, 0.1), ("clr", 11, 0.0505), ("clr", 19.8, 0.0010301541),
    # LLR: 0.1 (1 - j / 90): 0.1 at j = 0, 0.05 at j = 45, 0.1 / 90 at j = 89.
    ("llr", 2, 0.1), ("llr", 11, 0.05), ("llr", 19.8, 0.1 / 90),
])
def test_retraining_schedules_by_hand(kind, t, lr):
    assert sched(kind)(t) == pytest.approx(lr, abs=1e-9)


def test_warmup_is_a_whole_number_of_iterations():
    # T_rt = 3, 7 iterations per epoch: n = 21, W = int(2.1) = 2, R = 19. LLR at k = 1, 2, 3.
    llr = sched("llr", retrain=3, steps=7)
    assert [llr(1 / 7), llr(2 / 7), llr(3 / 7)] == pytest.approx([0.05, 0.1, 0.1 * (1 - 1 / 19)])
    # n = 5 < 10: no warm-up, 0.1 (1 - k / 5) from the first iteration.
    llr = sched("llr", retrain=1, steps=5)
    assert [llr(0), llr(0.2), llr(0.8)] == pytest.approx([0.1, 0.08, 0.02])


def test_eta_T_is_the_last_iteration_of_training():
    # Linear training 0.2 (1 - i / 400) over 100 epochs of 4 iterations: eta_T = 0.2 / 400 = 0.0005.
    linear = training_schedule(0.2, 100, "linear")
    assert sched("ft", training=linear, epochs=100, steps=4)(3) == pytest.approx(0.0005)
    # CLR with T_rt = 10: n = 40, W = 4, R = 36; at j = 35: 0.0005 + 0.1995 (1 + cos(35 pi / 36)) / 2.
    clr = sched("clr", training=linear, epochs=100, retrain=10, steps=4)
    assert clr(39 / 4) == pytest.approx(0.0005 + 0.1995 * (1 + math.cos(35 * math.pi / 36)) / 2)
    # Whole epochs (one iteration each, the default): eta_T is the LR of the last epoch.
    assert retraining_schedule("ft", linear, 100, 10)(0) == pytest.approx(0.002)


def test_lrw_rewinds_into_the_original_schedule_when_the_cycle_is_long():
    lrw = sched("lrw", retrain=120)  # replays epochs [80, 200)
    assert [lrw(t) for t in (0, 9.8, 10, 99.8, 100)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_allr_discounts_the_initial_rate_by_d():
    # d2 = 20 / 200 = 0.1. With d1 = 0.3, d = 0.3: peak 0.03 at k = 10 (t = 2), 0.015 at k = 5 and j = 45.
    allr = sched("allr", d1=0.3)
    assert [allr(1), allr(2), allr(11), allr(19.8)] == pytest.approx([0.015, 0.03, 0.015, 0.03 / 90])
    # With d1 below d2, d = d2 = 0.1: peak 0.01.
    assert sched("allr", d1=0.05)(2) == pytest.approx(0.01)


@pytest.mark.parametrize("d1, rt, total, d", [(0.3, 20, 200, 0.3), (0.05, 20, 200, 0.1), (0.0, 300, 200, 1.0),
                                              (1.7, 5, 200, 1.0)])
def test_allr_factor(d1, rt, total, d):
    assert allr_factor(d1, rt, total) == pytest.approx(d)


# The tuned schedules with initial value 0.05 and a warm-up of 10%: W = int(0.1 * 100) = 10, R = 90.
# Warm-up 0.05 (1 - cos(pi k / 10)) / 2: k = 2 (t = 0.4) 0.05 (1 - 0.809017) / 2 = 0.0047746, k = 5 (t = 1)
# 0.025, its last iteration k = 9 (t = 1.8) 0.05 (1 + 0.951057) / 2 = 0.0487764; the peak 0.05 at k = 10 (t = 2).
# Midpoint j = 45 (t = 11): constant 0.05; stepped 0.05 / 0.1 times training iteration floor(45 000 / 90) = 500
# (epoch 100, 0.01) = 0.005; cosine 0.05 (1 + cos(pi / 2)) / 2 = 0.025; linear 0.05 (1 - 45 / 90) = 0.025.
# Last iteration j = 89 (t = 19.8): stepped 0.5 times training iteration 988 (0.001) = 0.0005; cosine
# 0.05 (1 + cos(89 pi / 90)) / 2 = 1.52293e-5 (to zero, not to eta_T as CLR); linear 0.05 / 90.
WARM_10 = [(0.4, 0.0047745751), (1, 0.025), (1.8, 0.0487764129), (2, 0.05)]


@pytest.mark.parametrize("kind, t, lr", [
    *[(kind, t, lr) for kind in ("constant", "stepped", "cosine", "linear") for t, lr in WARM_10],
    ("constant", 11, 0.05), ("constant", 19.8, 0.05),
    ("stepped", 10.0, 0.05), ("stepped", 10.2, 0.005), ("stepped", 11, 0.005), ("stepped", 18.2, 0.0005),
    ("stepped", 19.8, 0.0005),
    ("cosine", 11, 0.025), ("cosine", 19.8, 1.5229324523e-05),
    ("linear", 11, 0.025), ("linear", 19.8, 0.05 / 90),
])
def test_tuned_schedules_with_warmup_by_hand(kind, t, lr):
    assert sched(kind, initial_lr=0.05, warmup=0.1)(t) == pytest.approx(lr, abs=1e-9)


# Without warm-up: W = 0, R = n = 100, j = k; every schedule starts at 0.05. Midpoint j = 50 (t = 10):
# stepped: training iteration 500 (0.01) -> 0.005, its first step at j = 45 (iteration 450, epoch 90), j = 44 ->
# iteration 440 (epoch 88, 0.1) -> 0.05; cosine and linear 0.025. Last j = 99 (t = 19.8): stepped iteration 990
# (0.001) -> 0.0005; cosine 0.05 (1 + cos(99 pi / 100)) / 2 = 1.23360e-5; linear 0.05 (1 - 99 / 100) = 0.0005.
@pytest.mark.parametrize("kind, t, lr", [
    ("constant", 0, 0.05), ("constant", 10, 0.05), ("constant", 19.8, 0.05),
    ("stepped", 0, 0.05), ("stepped", 8.8, 0.05), ("stepped", 9, 0.005), ("stepped", 10, 0.005),
    ("stepped", 19.8, 0.0005),
    ("cosine", 0, 0.05), ("cosine", 10, 0.025), ("cosine", 19.8, 1.233599086e-05),
    ("linear", 0, 0.05), ("linear", 10, 0.025), ("linear", 19.8, 0.0005),
])
def test_tuned_schedules_without_warmup_by_hand(kind, t, lr):
    assert sched(kind, initial_lr=0.05, warmup=0.0)(t) == pytest.approx(lr, abs=1e-9)


def test_stepped_at_the_first_training_lr_is_slr():
    stepped, slr = sched("stepped", initial_lr=0.1, warmup=0.1), sched("slr")
    assert [stepped(k / 5) for k in range(100)] == [slr(k / 5) for k in range(100)]


def test_tuned_warmup_is_a_whole_number_of_iterations():
    # n = 21 (T_rt = 3, 7 per epoch), warm-up 10%: W = int(2.1) = 2, R = 19; linear 0.5 at k = 1, 2, 3:
    # 0.5 (1 - cos(pi / 2)) / 2 = 0.25, 0.5, 0.5 (1 - 1 / 19).
    linear = sched("linear", retrain=3, steps=7, initial_lr=0.5, warmup=0.1)
    assert [linear(1 / 7), linear(2 / 7), linear(3 / 7)] == pytest.approx([0.25, 0.5, 0.5 * 18 / 19])


@pytest.mark.parametrize("kind, tuned", [("cosine", {}), ("linear", {"initial_lr": 0.1}), ("llr", {"warmup": 0.1}),
                                         ("ft", {"initial_lr": 0.1, "warmup": 0.0})])
def test_tuned_schedules_need_an_initial_lr_and_a_warmup_and_fixed_ones_take_neither(kind, tuned):
    with pytest.raises(ValueError, match=kind):
        sched(kind, **tuned)


@pytest.mark.parametrize("d1, discount, d", [
    (0.3, "d1", 0.3), (0.05, "d1", 0.05), (1.7, "d1", 1.0),  # ALLRd1: d1 alone, below d2 = 0.1 too
    (0.3, "d2", 0.1), (0.05, "d2", 0.1), (0.0, None, 0.1), (0.3, None, 0.3),  # ALLRd2: d2 = 20 / 200
])
def test_allr_with_d1_or_d2_alone(d1, discount, d):
    assert allr_factor(d1, 20, 200, discount) == pytest.approx(d)
    # The peak d * 0.1 at k = 10 (t = 2), half of it at j = 45 (t = 11).
    allr = sched("allr", d1=d1, discount=discount)
    assert [allr(2), allr(11)] == pytest.approx([d * 0.1, d * 0.05])


def test_allr_d2_alone_is_clipped_to_one():
    assert allr_factor(0.2, 300, 200, "d2") == 1.0


@pytest.mark.parametrize("dense, sparse, d1", [(0.75, 0.5, 1 / 3), (0.9, 0.1, 8 / 9), (0.5, 0.75, 0.0),
                                               (0.0, 0.0, 0.0)])
def test_accallr_d1_is_the_relative_drop_in_train_accuracy(dense, sparse, d1):
    # (0.75 - 0.5) / 0.75 = 1 / 3, (0.9 - 0.1) / 0.9 = 8 / 9; a gain clips to 0.
    assert accuracy_drop(dense, sparse) == pytest.approx(d1)


def test_linear_training_schedule_and_warmup():
    linear = training_schedule(0.2, 100, "linear", warmup_epochs=5)
    assert [linear(0), linear(2.5), linear(5), linear(50)] == pytest.approx([0.0, 0.0975, 0.19, 0.1])


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="slr"):
        retraining_schedule("srl", TRAIN, 200, 20)
