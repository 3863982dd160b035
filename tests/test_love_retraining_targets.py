"""Love Retraining's Figures 6-7 (fig-budget-initial-training) and Table 28
(table-bimp-vs-gmp): their profiles, and their smoke profiles end to end through the CLI."""

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.manifest import load
from bench.store import RunStore


def dense_ids(target: str, profile: str) -> set[str]:
    specs = load(target, profile).expand()
    return {spec.parent.run_id if spec.parent else spec.run_id for spec in specs
            if spec.method == "dense" or (spec.parent and spec.parent.method == "dense")}


def test_the_cpu_profiles_train_as_the_headline_at_twice_its_budget():
    """T = 24 with the milestones at 11 and 22, where the headline cuts T to 12 for its 12
    minutes; the dense runs are those of table-retrain-schedules."""
    headline = load("table-imp-vs-stable", "cpu").training
    at_24 = {**headline, "epochs": 24, "lr_schedule": {**headline["lr_schedule"], "milestones": [11, 22]}}
    assert load("table-bimp-vs-gmp", "cpu").training == at_24
    assert dense_ids("table-bimp-vs-gmp", "cpu") <= dense_ids("table-retrain-schedules", "cpu")
    # the figure budgets the initial training: the same training but for its linear decay
    figure = load("fig-budget-initial-training", "cpu").training
    assert figure == {**at_24, "lr_schedule": {**at_24["lr_schedule"], "kind": "linear", "milestones": []}}


def test_the_figure_varies_the_initial_training_and_retrains_in_absolute_epochs():
    specs = load("fig-budget-initial-training", "cpu").expand()
    budgets = {label: sorted({spec.training["epochs"] for spec in specs if spec.label == label})
               for label in {spec.label for spec in specs}}
    assert budgets["One Shot, ALLR"] == [2, 6, 12, 18, 24]  # 10, 25, 50, 75, 100% of 24
    assert budgets["Iterative, ALLR, half the initial training"] == [12]
    retraining = {(spec.hp["cycles"], spec.hp["retrain_epochs"]) for spec in specs}
    assert retraining == {(1, 4), (3, 2)}  # 30 and 3 x 15 of 200 epochs: 15% and 7.5% of 24
    assert all(spec.parent.training["epochs"] == spec.training["epochs"] for spec in specs)


def smoke(target: str, where: list[str]) -> None:
    assert main(["run", target, "--profile", "smoke", "--executor", "inline", "--quiet", *where]) == 0


@pytest.mark.slow
@pytest.mark.targets
def test_fig_budget_initial_training_smoke_end_to_end(dirs):
    results, reports, where = dirs
    smoke("fig-budget-initial-training", where)
    out = reports / "fig-budget-initial-training" / "smoke"
    assert all((out / name).stat().st_size > 0 for name in ("initial-budget.pdf", "initial-budget.png", "claims.csv"))
    # every record carries its training budget T_0, the dense parent's epochs
    for config in (results / "runs").glob("*/config.json"):
        record = pd.read_parquet(config.parent / "record.parquet").iloc[0]
        assert record["training_epochs"] == json.loads(config.read_text())["training"]["epochs"]
    points = pd.read_csv(out / "initial-budget.csv").set_index(["label", "training_epochs"])
    for label in ("One Shot, LLR", "One Shot, ALLR", "Iterative, LLR", "Iterative, ALLR"):
        full, half = points.loc[(label, 2)], points.loc[(label, 1)]
        assert full["deviation_mean"] == 0
        assert half["deviation_mean"] == pytest.approx(half["test_accuracy_mean"] - full["test_accuracy_mean"])
    claims = pd.read_csv(out / "claims.csv")
    assert list(claims["verdict"]) == ["cannot tell", "cannot tell"]  # one seed: no spread to judge against


@pytest.mark.slow
@pytest.mark.targets
def test_table_bimp_vs_gmp_smoke_end_to_end(dirs):
    _, reports, where = dirs
    smoke("table-bimp-vs-gmp", where)
    out = reports / "table-bimp-vs-gmp" / "smoke"
    table = (out / "table.tex").read_text()
    for row in load("table-bimp-vs-gmp", "smoke").rows:
        assert f"\n{row.label} & " in table
    assert "Method & Time & Accuracy" in table
    claims = pd.read_csv(out / "claims.csv")
    assert len(claims) == 10
    assert set(claims["verdict"]) == {"cannot tell"}


@pytest.mark.slow
def test_a_row_the_profile_leaves_without_runs_is_not_in_the_table(dirs, write_manifest):
    _, reports, where = dirs
    path = write_manifest(lambda data: data["rows"][1].update(constraint="goal_sparsity > 1"))
    assert main(["run", str(path), "--profile", "base", "--executor", "inline", "--quiet", *where]) == 0
    table = (reports / Path(path).stem / "base" / "table.tex").read_text()
    assert "\nDense & " in table and "IMP" not in table
