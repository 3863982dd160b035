"""The targets of the retraining studies (Love Retraining; Back to Basics' Figures 1, 2 and 8),
each through `prunebench run` on its smoke profile: the tables split by budget, the ablation
table, the envelope figures, the selection criteria and layer collapse, with every claim judged."""

import pandas as pd
import pytest

from bench.cli import main
from bench.manifest import load

pytestmark = [pytest.mark.slow, pytest.mark.targets]


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, data_root):
    """(results, reports) with the three targets' smoke profiles run inline, sharing their dense runs."""
    base = tmp_path_factory.mktemp("love-retraining")
    where = ["--results", str(base / "results"), "--reports", str(base / "reports"), "--data-root", str(data_root)]
    for target in ("table-retrain-schedules", "table-allr-ablation", "fig-retrain-budget",
                   "table-retrain-schedules-filters", "fig-retrain-budget-imp", "fig-selection-criteria",
                   "fig-layer-collapse"):
        assert main(["run", target, "--profile", "smoke", "--executor", "inline", "--quiet", *where]) == 0
    return base / "results", base / "reports"


def claims_of(reports, target) -> pd.DataFrame:
    claims = pd.read_csv(reports / target / "smoke" / "claims.csv")
    assert list(claims["claim"]) == [claim["text"] for claim in load(target, "smoke").claims]
    assert set(claims["verdict"]) <= {"agree", "disagree", "cannot tell"}
    return claims


def test_the_schedules_table_has_a_column_per_goal_and_budget(smoke_runs):
    _, reports = smoke_runs
    out = reports / "table-retrain-schedules" / "smoke"
    cells = pd.read_csv(out / "split-selection.csv")
    # One-shot and two cycles of one epoch for the fixed schedules, one-shot for the tuned ones.
    assert set(cells["split"]) == {"(1, 1)", "(2, 1)"}
    assert set(cells.loc[cells["split"] == "(2, 1)", "label"]) == {"FT", "LRW", "SLR", "CLR", "LLR", "ALLR"}
    table = (out / "table.tex").read_text()
    assert r"cycles $\times$ retrain\_epochs & 1 $\times$ 1 & 2 $\times$ 1 \\" in table
    assert "Dense: " in table  # the dense model's accuracy is in the caption
    claims = claims_of(reports, "table-retrain-schedules")
    short = claims.set_index("claim").loc["ALLR improves upon FT on a small retraining budget", "evidence"]
    assert short.startswith("90%: ")  # judged on the runs of that budget


def test_the_ablation_table_runs_accallr_and_the_discount_variants(smoke_runs):
    results, reports = smoke_runs
    cells = pd.read_csv(reports / "table-allr-ablation" / "smoke" / "split-selection.csv")
    assert set(cells["label"]) == {"ALLR", "ALLRd1", "ALLRd2", "LLR", "AccALLR"}
    claims_of(reports, "table-allr-ablation")


def test_the_envelope_figure_draws_the_baselines_with_their_budgets(smoke_runs):
    _, reports = smoke_runs
    out = reports / "fig-retrain-budget" / "smoke"
    points = pd.read_csv(out / "envelope.csv")
    budgets = points.groupby("label")["retrain_budget"].apply(set).to_dict()
    assert budgets["IMP, LLR"] == {1, 2} and budgets["IMP, ALLR"] == {1, 2}  # J in {1, 2}, T_rt = 1
    # Renda et al.: 20% per cycle to 36% is 2 cycles of T = 3 epochs.
    assert budgets["Renda et al. (LRW)"] == {6} and budgets["Renda et al. (FT)"] == {6}
    assert "IMP, LLR, at most T/2" not in budgets  # a diagnostic row is judged, not drawn
    assert (out / "envelope.png").stat().st_size > 0
    claims_of(reports, "fig-retrain-budget")


def test_the_filter_table_prunes_half_of_every_convolutions_filters(smoke_runs):
    _, reports = smoke_runs
    cells = pd.read_csv(reports / "table-retrain-schedules-filters" / "smoke" / "split-selection.csv")
    assert set(cells["label"]) == {"FT", "LRW", "SLR", "CLR", "LLR", "ALLR"}
    # Half the filters of every convolution; the linear head keeps its units, so the weights'
    # sparsity stays below the goal. Inner convolutions lose half their filters and half their
    # input channels: a quarter of their multiply-adds is left, a speedup above 2.
    assert ((cells["sparsity_mean"] > 0.45) & (cells["sparsity_mean"] < 0.5)).all()
    assert (cells["theoretical_speedup_mean"] > 2).all()
    claims_of(reports, "table-retrain-schedules-filters")


def test_back_to_basics_envelope_shares_the_baselines_runs(smoke_runs):
    _, reports = smoke_runs
    points = {name: pd.read_csv(reports / name / "smoke" / "envelope.csv").set_index("label")
              for name in ("fig-retrain-budget", "fig-retrain-budget-imp")}
    for baseline in ("Renda et al. (LRW)", "Renda et al. (FT)"):
        assert points["fig-retrain-budget"].loc[baseline, "run_ids"] == points["fig-retrain-budget-imp"].loc[baseline, "run_ids"]
    assert {"IMP, FT", "IMP, SLR", "IMP, CLR"} <= set(points["fig-retrain-budget-imp"].index)
    claims_of(reports, "fig-retrain-budget-imp")


def test_the_selection_criteria_are_drawn_per_retraining_schedule(smoke_runs):
    results, reports = smoke_runs
    out = reports / "fig-selection-criteria" / "smoke"
    cells = pd.read_csv(out / "selection.csv").set_index("label")
    # uniform prunes every layer to 90%; global leaves layers unequal; both reach the goal overall
    assert cells.loc["Uniform, FT", "sparsity_mean"] == pytest.approx(0.9, abs=1e-4)
    assert cells.loc["Global, FT", "sparsity_mean"] == pytest.approx(0.9, abs=1e-4)
    assert cells.loc["Uniform, FT", "theoretical_speedup_mean"] != cells.loc["Global, FT", "theoretical_speedup_mean"]
    assert (out / "pareto.png").stat().st_size > 0
    claims_of(reports, "fig-selection-criteria")


def test_layer_collapse_is_recorded_with_its_cycle(smoke_runs):
    results, reports = smoke_runs
    cells = pd.read_csv(reports / "fig-layer-collapse" / "smoke" / "selection.csv")
    assert set(cells["label"]) == {"Dense", "One Shot, FT", "Iterative, FT", "One Shot, SLR", "Iterative, SLR"}
    assert cells["n_collapsed_seeds"].notna().all()  # every run checked its layers
    records = pd.concat(pd.read_parquet(path) for path in (results / "runs").glob("*/record.parquet"))
    collapsed = records[(records["model"] == "vgg1d") & (records["n_collapsed_layers"] > 0)]
    for row in collapsed.itertuples():  # each emptied layer names where it emptied
        assert len(row.collapsed_at.split(";")) == row.n_collapsed_layers
    claims_of(reports, "fig-layer-collapse")
