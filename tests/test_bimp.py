"""BIMP: the budget split, the linear initial phase, ALLR cycles, exact sparsity."""

import pytest

from methods import METHODS
from methods.core.masks import PruneEvent
from schema import ConfigError

from conftest import assert_state_pruned_to


def bimp(initial, cycles, epochs=200, goal=0.9, lr=0.1):
    hp = {"initial_epochs": initial, "cycles": cycles, "schedule": "allr", "selection": "global"}
    return METHODS["bimp"](hp, {"epochs": epochs, "lr": lr}, goal)


def test_budget_is_split_into_equal_cycles():
    assert bimp(100, 2).cycle_lengths() == [50, 50]
    assert bimp(60, 3).cycle_lengths() == [47, 47, 46]  # 140 epochs: as equal as whole epochs allow
    assert sum(p.epochs for p in bimp(20, 3).phases()) == 200
    with pytest.raises(ConfigError, match="initial_epochs: 199 leaves 1 epochs of the 200-epoch budget for 2 cycles"):
        bimp(199, 2).cycle_lengths()


def test_cycles_reach_the_goal_geometrically():
    # p = 1 - (1 - 0.9)^(1/2): sparsity 1 - 0.1^(1/2) = 0.68377 after cycle 1, 0.9 after cycle 2.
    phases = bimp(100, 2).phases()
    assert [p.prunes for p in phases] == [False, True, True]
    assert phases[1].sparsity == pytest.approx(0.683772, abs=1e-6)
    assert phases[2].sparsity == pytest.approx(0.9)


def test_initial_phase_decays_linearly_and_cycles_use_allr():
    initial, first = bimp(100, 2).phases()[:2]
    lr = initial.schedule(None)
    assert [lr(0), lr(50), lr(99)] == pytest.approx([0.1, 0.05, 0.001])
    # ALLR: d = max(d1, d2), d2 = T_rt / T = 50 / 200 = 0.25. d1 = 0.4 wins: peak 0.04 after
    # the warm-up of 5 epochs, then linear to zero: 0.02 half-way through the remaining 45.
    allr = first.schedule(PruneEvent(0.68, 0.68, relative_change=0.4))
    assert [allr(2.5), allr(5), allr(27.5)] == pytest.approx([0.02, 0.04, 0.02])
    allr = first.schedule(PruneEvent(0.68, 0.68, relative_change=0.1))  # d2 = 0.25 wins
    assert allr(5) == pytest.approx(0.025)


def test_bimp_trains_from_scratch_to_the_exact_goal(train_tiny):
    result = train_tiny("bimp", {"initial_epochs": 2, "cycles": 2}, goal=0.9, epochs=4)
    record = result.record
    assert record["epochs"] == 4 and record["parent_run_id"] is None
    assert_state_pruned_to(result, 0.9)
    assert record["test_accuracy"] > 0.5
