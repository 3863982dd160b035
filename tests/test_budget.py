"""The envelope of test accuracy over the retraining budget (Love Retraining, Figures 3-5),
computed from a hand-made records table."""

import pandas as pd
import pytest

from bench.report.budget import envelope, render_envelope, with_budget


def run(label, config, seed, epochs, val, test, method="imp", goal=0.9):
    return {"run_id": f"{label}-{config}-{seed}", "label": label, "method": method, "goal_sparsity": goal,
            "seed": seed, "hp_cycles": config, "epochs": epochs, "val_accuracy": val, "test_accuracy": test,
            "sparsity": goal, "theoretical_speedup": 5.0}


# T = 10 training epochs. Configuration 1 retrains 2 epochs, 2 retrains 6, 3 retrains 12.
RECORDS = pd.DataFrame([
    run("IMP", 1, 0, 12, 0.80, 0.81), run("IMP", 1, 1, 12, 0.82, 0.79),
    run("IMP", 2, 0, 16, 0.90, 0.88), run("IMP", 2, 1, 16, 0.88, 0.92),
    # Configuration 3 has the better test accuracy but the worse validation: never chosen.
    run("IMP", 3, 0, 22, 0.85, 0.99), run("IMP", 3, 1, 22, 0.85, 0.99),
    run("Dense", 0, 0, 10, 0.95, 0.94, method="dense", goal=None),
])


def test_the_envelope_selects_on_validation_among_the_runs_within_each_budget():
    points = envelope(with_budget(RECORDS, 10), [0.9]).set_index(["label", "retrain_budget"])
    assert sorted(points.loc["IMP"].index) == [2, 6, 12]
    at_2, at_6, at_12 = (points.loc[("IMP", x)] for x in (2, 6, 12))
    assert at_2["test_accuracy_mean"] == pytest.approx(0.80)  # only configuration 1: (0.81 + 0.79) / 2
    assert (at_2["test_accuracy_min"], at_2["test_accuracy_max"]) == (0.79, 0.81)
    assert at_6["test_accuracy_mean"] == pytest.approx(0.90)  # configuration 2 validates at 0.89 > 0.81
    assert at_12["test_accuracy_mean"] == pytest.approx(0.90)  # configuration 3 validates at 0.85 < 0.89
    assert at_12["run_ids"] == "IMP-2-0 IMP-2-1"
    assert points.loc[("Dense", 0), "test_accuracy_mean"] == pytest.approx(0.94)


def test_the_envelope_figure_is_written(tmp_path):
    points = envelope(with_budget(RECORDS, 10), [0.9])
    paths = render_envelope(points, labels=["Dense", "IMP"], baselines=[], goals=[0.9], out_dir=tmp_path, title="t")
    assert all(path.stat().st_size > 0 for path in paths)
    assert len(pd.read_csv(tmp_path / "envelope.csv")) == len(points)


def test_a_goal_column_split_by_the_retraining_budget(tmp_path):
    from bench.report.split_table import render_split_table, select_split_cells

    records = pd.DataFrame([
        # T_rt = 1: configuration lr 0.1 validates better (0.8) than lr 0.01 (0.7)
        {**run("linear", 1, 0, 11, 0.80, 0.79), "hp_retrain_epochs": 1, "hp_lr": 0.1},
        {**run("linear", 1, 0, 11, 0.70, 0.90), "hp_retrain_epochs": 1, "hp_lr": 0.01, "run_id": "x"},
        # T_rt = 2: only lr 0.01
        {**run("linear", 1, 0, 12, 0.85, 0.84), "hp_retrain_epochs": 2, "hp_lr": 0.01, "run_id": "y"},
        run("Dense", 0, 0, 10, 0.95, 0.94, method="dense", goal=None),
    ])
    cells = select_split_cells(records, [0.9], ["retrain_epochs"]).set_index("split")
    assert list(cells.index) == [(1,), (2,)]  # the dense model has no budget: no cell here
    assert cells.loc[[(1,)], "test_accuracy_mean"].item() == pytest.approx(0.79)
    assert cells.loc[[(2,)], "run_ids"].item() == "y"
    render_split_table(cells.reset_index(), labels=["linear"], goals=[0.9], split_by=["retrain_epochs"], bold=1,
                       caption="c", out_dir=tmp_path)
    table = (tmp_path / "table.tex").read_text()
    assert r"linear & \textbf{79.00} & \textbf{84.00} \\" in table
    assert r"retrain\_epochs & 1 & 2 \\" in table


def test_the_envelope_per_weight_decay_has_a_panel_per_value(tmp_path):
    from bench.report.budget import envelope_by

    records = with_budget(RECORDS.assign(hp_weight_decay=[1e-4, 1e-4, 5e-4, 5e-4, 1e-4, 1e-4, 5e-4]), 10)
    points = envelope_by(records, [0.9], "weight_decay")
    assert set(points["panel"]) == {"weight_decay = 0.0001", "weight_decay = 0.0005"}
    # at weight decay 1e-4, configuration 2 is absent: the envelope at 12 epochs is configuration 3's
    low = points[(points["panel"] == "weight_decay = 0.0001") & (points["label"] == "IMP")].set_index("retrain_budget")
    assert sorted(low.index) == [2, 12]
    assert low.loc[12, "test_accuracy_mean"] == pytest.approx(0.99)
    paths = render_envelope(points, labels=["Dense", "IMP"], baselines=[], goals=[0.9], out_dir=tmp_path, title="t",
                            stem="envelope-by-weight_decay")
    assert [path.name for path in paths] == ["envelope-by-weight_decay.csv", "envelope-by-weight_decay.pdf",
                                             "envelope-by-weight_decay.png"]
