"""BIMP: the budget split, the linear initial phase, ALLR cycles, exact sparsity."""

import pytest
import torch
from torch import nn

from methods import METHODS
from methods.core.masks import PruneEvent
from schema import ConfigError

from conftest import assert_state_pruned_to


def bimp(initial, cycles, epochs=200, goal=0.9, lr=0.1, schedule="allr", d1_over="all"):
    hp = {"initial_epochs": initial, "cycles": cycles, "schedule": schedule, "selection": "global",
          "d1_over": d1_over}
    return METHODS["bimp"](hp, {"epochs": epochs, "lr": lr}, goal)


def test_budget_is_split_into_J_minus_1_equal_cycles_and_the_rest():
    # The authors' split: J - 1 cycles of (T - T_0) // J epochs, the remainder to the last.
    assert bimp(100, 2).cycle_lengths() == [50, 50]
    assert bimp(60, 3).cycle_lengths() == [46, 46, 48]  # 140 = 46 + 46 + 48
    assert bimp(190, 4).cycle_lengths() == [2, 2, 2, 4]
    assert bimp(195, 2).cycle_lengths() == [2, 3]
    assert sum(p.epochs for p in bimp(20, 3).phases()) == 200
    with pytest.raises(ConfigError, match="initial_epochs: 199 leaves 1 epochs of the 200-epoch budget for 2 cycles"):
        bimp(199, 2).cycle_lengths()


def test_cycles_reach_the_goal_geometrically():
    # p = 1 - (1 - 0.9)^(1/2): sparsity 1 - 0.1^(1/2) = 0.68377 after cycle 1, 0.9 after cycle 2.
    phases = bimp(100, 2).phases()
    assert [p.prunes for p in phases] == [False, True, True]
    assert phases[1].sparsity == pytest.approx(0.683772, abs=1e-6)
    assert phases[2].sparsity == pytest.approx(0.9)
    # The retraining opens with a fresh optimizer that the cycles then share, as IMP's do.
    assert [p.keeps_optimizer for p in phases] == [False, False, True]


def cycle_schedule(method, d1, steps=2):
    method.setup(None, steps)
    return method.phases()[1].schedule(PruneEvent(0.68, 0.68, relative_change=d1))


def test_initial_phase_decays_linearly_and_cycles_use_allr_with_d2_over_T0():
    initial = bimp(100, 2).phases()[0]
    lr = initial.schedule(None)
    assert [lr(0), lr(50), lr(99)] == pytest.approx([0.1, 0.05, 0.001])
    # ALLR: d2 = T_rt / T_0 = 50 / 100 = 0.5 (not 50 / 200). A cycle of 50 epochs of 2 iterations:
    # n = 100, W = 10 iterations (5 epochs), R = 90. d1 = 0.7 wins: peak 0.07, half of it at k = 5
    # (t = 2.5) on the half-cosine ramp, then 0.07 (1 - j / 90): 0.035 at j = 45 (t = 27.5).
    allr = cycle_schedule(bimp(100, 2), d1=0.7)
    assert [allr(0), allr(2.5), allr(5), allr(27.5)] == pytest.approx([0.0, 0.035, 0.07, 0.035])
    assert cycle_schedule(bimp(100, 2), d1=0.4)(5) == pytest.approx(0.05)  # d2 = 0.5 wins


def test_clr_ends_at_the_last_lr_of_the_initial_phase():
    # T_0 = 100 epochs of 2 iterations: eta_T = 0.1 (1 - 199 / 200) = 0.0005; at j = 45 CLR is
    # 0.0005 + 0.0995 / 2, at j = 89 (t = 49.5) 0.0005 + 0.0995 (1 + cos(89 pi / 90)) / 2.
    clr = cycle_schedule(bimp(100, 2, schedule="clr"), d1=0.0)
    assert [clr(27.5), clr(49.5)] == pytest.approx([0.05025, 0.00053030636])


def small_model():
    """Linear(2, 2) -> BatchNorm(2) -> Linear(2, 1): prunable weights (4, -3, 1, -1, 2, 0.5),
    BatchNorm weight (10, 10) and bias (5, 5)."""
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[4.0, -3.0], [1.0, -1.0]]))
        model[1].weight.fill_(10.0)
        model[1].bias.fill_(5.0)
        model[2].weight.copy_(torch.tensor([[2.0, 0.5]]))
    return model


@pytest.mark.parametrize("d1_over, d1", [("all", 0.24545247), ("prunable", 0.73635740)])
def test_d1_over_all_parameters_and_the_nominal_fraction(d1_over, d1):
    # Goal 0.9 in one cycle prunes round(0.9 * 6) = 5 weights (realised 5 / 6), the nominal s = 0.9.
    # W - W_p = (-3, 1, -1, 2, 0.5): ||.||^2 = 15.25. ||W||^2 = 31.25 over the prunable weights,
    # 31.25 + 200 + 50 = 281.25 over all parameters: d1 = sqrt(15.25 / (281.25 * 0.9)) = 0.245452,
    # or sqrt(15.25 / (31.25 * 0.9)) = 0.736357.
    model = small_model()
    event = bimp(100, 1, d1_over=d1_over).prune(model, 0.9)
    assert event.fraction == pytest.approx(5 / 6)
    assert event.relative_change == pytest.approx(d1, abs=1e-7)
    assert model[1].weight.tolist() == [10.0, 10.0]


def test_bimp_trains_from_scratch_to_the_exact_goal(train_tiny):
    result = train_tiny("bimp", {"initial_epochs": 2, "cycles": 2}, goal=0.9, epochs=4)
    record = result.record
    assert record["epochs"] == 4 and record["parent_run_id"] is None
    assert_state_pruned_to(result, 0.9)
    assert record["test_accuracy"] > 0.5
