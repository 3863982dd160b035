"""IMP after a budgeted initial training (Love Retraining, Figures 6-7): the deviation from
the full budget, computed from a hand-made records table."""

import math

import pandas as pd
import pytest

from bench.report.initial_budget import at_largest_budget, deviation_from_full_budget, render_initial_budget


def run(label, weight_decay, seed, budget, val, test):
    return {"run_id": f"{label}-{weight_decay}-{budget}-{seed}", "label": label, "method": "imp", "goal_sparsity": 0.9,
            "seed": seed, "hp_cycles": 1, "hp_weight_decay": weight_decay, "training_epochs": budget,
            "val_accuracy": val, "test_accuracy": test, "sparsity": 0.9, "theoretical_speedup": 5.0}


# Full budget T = 10. Two configurations (weight decay 1e-4, 5e-4) at T_0 = 5 and T_0 = 10.
RECORDS = pd.DataFrame([
    # T_0 = 10: 1e-4 validates at (0.80 + 0.82) / 2 = 0.81 > 0.70, so its test (0.90 + 0.92) / 2 = 0.91 is
    # the reference; 5e-4's better test accuracy is never chosen.
    run("IMP", 1e-4, 0, 10, 0.80, 0.90), run("IMP", 1e-4, 1, 10, 0.82, 0.92),
    run("IMP", 5e-4, 0, 10, 0.70, 0.99), run("IMP", 5e-4, 1, 10, 0.70, 0.99),
    # T_0 = 5: 5e-4 validates at 0.76 > 0.61: test 0.88 and 0.84, mean 0.86.
    run("IMP", 1e-4, 0, 5, 0.60, 0.85), run("IMP", 1e-4, 1, 5, 0.62, 0.87),
    run("IMP", 5e-4, 0, 5, 0.75, 0.88), run("IMP", 5e-4, 1, 5, 0.77, 0.84),
    # A row of the T_0 = 5 point alone (what a claim compares): no run at the full budget.
    run("IMP, half", 5e-4, 0, 5, 0.75, 0.88), run("IMP, half", 5e-4, 1, 5, 0.77, 0.84),
])


def test_the_deviation_is_from_the_configuration_selected_at_the_full_budget():
    points = deviation_from_full_budget(RECORDS, [0.9], full_budget=10).set_index(["label", "training_epochs"])
    full, half = points.loc[("IMP", 10)], points.loc[("IMP", 5)]
    assert full["full_budget_accuracy"] == pytest.approx(0.91)
    # at T: 0.91 - 0.91 = 0, band 0.90 - 0.91 = -0.01 to 0.92 - 0.91 = +0.01
    assert (full["deviation_mean"], full["deviation_min"], full["deviation_max"]) == \
        pytest.approx((0.0, -0.01, 0.01))
    # at T_0 = 5: 0.86 - 0.91 = -0.05, band 0.84 - 0.91 = -0.07 to 0.88 - 0.91 = -0.03
    assert (half["deviation_mean"], half["deviation_min"], half["deviation_max"]) == \
        pytest.approx((-0.05, -0.07, -0.03))
    assert half["run_ids"] == "IMP-0.0005-5-0 IMP-0.0005-5-1"
    assert math.isnan(points.loc[("IMP, half", 5), "deviation_mean"])  # no full-budget run of its own


def test_each_row_is_compared_at_its_largest_budget():
    cells = at_largest_budget(deviation_from_full_budget(RECORDS, [0.9], full_budget=10)).set_index("label")
    assert cells.loc["IMP", "training_epochs"] == 10
    assert cells.loc["IMP", "test_accuracy_mean"] == pytest.approx(0.91)
    assert cells.loc["IMP, half", "training_epochs"] == 5
    assert cells.loc["IMP, half", "test_accuracy_mean"] == pytest.approx(0.86)


def test_the_figure_has_a_panel_per_row_and_its_points_in_a_csv(tmp_path):
    points = deviation_from_full_budget(RECORDS, [0.9], full_budget=10)
    paths = render_initial_budget(points, labels=["IMP"], goals=[0.9], columns=2, out_dir=tmp_path, title="t")
    assert [path.name for path in paths] == ["initial-budget.csv", "initial-budget.pdf", "initial-budget.png"]
    assert all(path.stat().st_size > 0 for path in paths)
    assert len(pd.read_csv(tmp_path / "initial-budget.csv")) == len(points) == 3
