"""The paper's numbers beside ours, claims judged against the seed spread, `extends`."""

import math

import pandas as pd
import pytest

from bench.manifest import load
from bench.report.paper import evaluate_claims, judge, paper_vs_ours, reference_table, render_paper_vs_ours


def cell(label, goal, mean, std, n=3, **more):
    return {"label": label, "goal_sparsity": goal, "test_accuracy_mean": mean, "test_accuracy_std": std,
            "n_seeds": n, "theoretical_speedup_mean": 10.0, "sparsity_mean": goal, "run_ids": f"{label}-{goal}", **more}


@pytest.mark.parametrize("a, b, verdict", [
    # difference 0.02, standard error sqrt(2 * 0.005^2 / 3) = 0.00408: 0.02 > 2 * 0.00408 -> agree
    ((0.92, 0.005), (0.90, 0.005), "agree"),
    # difference 0.005 < 2 * 0.00408 -> cannot tell
    ((0.905, 0.005), (0.90, 0.005), "cannot tell"),
    ((0.88, 0.005), (0.90, 0.005), "disagree"),
    # a single seed (std NaN) gives no spread to judge against
    ((0.91, math.nan), (0.90, 0.005), "cannot tell"),
])
def test_judge_against_two_standard_errors(a, b, verdict):
    better, worse = pd.Series(cell("A", 0.9, *a)), pd.Series(cell("B", 0.9, *b))
    assert judge(better, worse, "test_accuracy")[0] == verdict


@pytest.mark.parametrize("a, b, verdict", [
    ((0.905, 0.005), (0.90, 0.005), "agree"),  # within two standard errors (0.00816): it reaches B
    ((0.895, 0.005), (0.90, 0.005), "agree"),  # -0.005, still within
    ((0.88, 0.005), (0.90, 0.005), "disagree"),  # -0.02, beyond
    ((0.91, math.nan), (0.90, 0.005), "cannot tell"),
])
def test_a_claim_that_one_row_matches_another(a, b, verdict):
    better, worse = pd.Series(cell("A", 0.9, *a)), pd.Series(cell("B", 0.9, *b))
    assert judge(better, worse, "test_accuracy", "matches")[0] == verdict


def test_claims_combine_goals_and_skip_missing_ones():
    cells = pd.DataFrame([cell("A", 0.9, 0.92, 0.005), cell("B", 0.9, 0.90, 0.005),
                          cell("A", 0.95, 0.905, 0.005), cell("B", 0.95, 0.90, 0.005)])
    claims = [{"text": "A beats B", "better": "A", "worse": "B", "metric": "test_accuracy", "goals": None},
              {"text": "A beats B at 90%", "better": "A", "worse": "B", "metric": "test_accuracy", "goals": [0.9]},
              {"text": "B beats A at 90%", "better": "B", "worse": "A", "metric": "test_accuracy", "goals": [0.9]},
              {"text": "at 99.5%", "better": "A", "worse": "B", "metric": "test_accuracy", "goals": [0.995]}]
    verdicts = evaluate_claims(cells, claims, [0.9, 0.95]).set_index("claim")["verdict"]
    assert verdicts.to_dict() == {"A beats B": "cannot tell", "A beats B at 90%": "agree",
                                  "B beats A at 90%": "disagree", "at 99.5%": "cannot tell"}


def test_paper_numbers_sit_beside_ours():
    reference = reference_table("back_to_basics_table4_resnet56_cifar10.csv")
    cells = pd.DataFrame([cell("IMP", 0.9, 0.95, 0.01)])
    table = paper_vs_ours(cells, reference, ["IMP", "GMP"], [0.9]).set_index("label")
    assert table.loc["IMP", "paper_accuracy"] == 92.79 and table.loc["IMP", "ours_accuracy"] == pytest.approx(95.0)
    assert table.loc["GMP", "paper_accuracy"] == 92.84 and math.isnan(table.loc["GMP", "ours_accuracy"])


def test_figure_and_second_layout_extend_the_table_and_share_its_runs():
    table = {s.run_id for s in load("table-imp-vs-stable", "cpu").expand()}
    for target in ("fig-stability", "table-bimp-vs-stable"):
        manifest = load(target, "cpu")
        assert {s.run_id for s in manifest.expand()} == table
    assert load("fig-stability").report["kind"] == "stability"
    assert load("table-bimp-vs-stable").report["time_column"] == "throughput"


def test_a_collapsed_side_is_named_in_the_evidence_the_claims_and_the_comparison(tmp_path):
    cells = pd.DataFrame([cell("IMP", 0.98, 0.90, 0.005, n_collapsed_seeds=0),
                          cell("DPF", 0.98, 0.089, 0.001, n_collapsed_seeds=3, collapsed_layers="stem.0;fc"),
                          cell("GMP", 0.98, 0.85, 0.005)])
    claims = [{"text": "IMP beats DPF", "better": "IMP", "worse": "DPF", "metric": "test_accuracy", "goals": None},
              {"text": "IMP beats GMP", "better": "IMP", "worse": "GMP", "metric": "test_accuracy", "goals": None}]
    judged = evaluate_claims(cells, claims, [0.98]).set_index("claim")
    assert judged.loc["IMP beats DPF", "evidence"] == "98%: +81.10 (agree; worse side DPF collapsed in 3 of 3 seeds)"
    assert judged.loc["IMP beats DPF", "collapse"] == "DPF at 98% (3 of 3 seeds)"
    assert judged.loc["IMP beats GMP", "collapse"] == "" and "collapsed" not in judged.loc["IMP beats GMP", "evidence"]
    comparison = paper_vs_ours(cells, reference_table("back_to_basics_table4_resnet56_cifar10.csv"), ["IMP", "DPF"], [0.98])
    render_paper_vs_ours(comparison, judged.reset_index(), caption="test", out_dir=tmp_path)
    tex = (tmp_path / "paper-vs-ours.tex").read_text()
    dpf = next(line for line in tex.splitlines() if line.startswith("DPF &"))
    assert r"8.90 $\pm$ 0.10$^\dagger$" in dpf and "\u2020: our configuration ended with a collapsed layer" in tex
    assert pd.read_csv(tmp_path / "claims.csv")["collapse"].fillna("").tolist() == ["DPF at 98% (3 of 3 seeds)", ""]


def test_a_belief_is_judged_on_its_own_rows_and_shown_below_the_claim_it_explains(tmp_path):
    cells = pd.DataFrame([cell("IMP+", 0.98, 0.90, 0.005), cell("DPF", 0.98, 0.089, 0.001, n_collapsed_seeds=3),
                          cell("DPF, uniform", 0.98, 0.80, 0.005, n_collapsed_seeds=0),
                          cell("GMP", 0.98, 0.85, 0.005)])
    belief = {"text": "DPF collapses; kept alive it recovers", "better": "DPF, uniform", "worse": "DPF",
              "metric": "test_accuracy", "goals": [0.98]}
    claims = [{"text": "DPF beats IMP+", "better": "DPF", "worse": "IMP+", "metric": "test_accuracy", "goals": None,
               "belief": belief},
              {"text": "IMP+ beats GMP", "better": "IMP+", "worse": "GMP", "metric": "test_accuracy", "goals": None,
               "belief": {**belief, "text": "never shown: the claim agrees"}}]
    judged = evaluate_claims(cells, claims, [0.98])
    first = judged.iloc[0]
    assert (first["verdict"], first["belief_verdict"]) == ("disagree", "agree")
    # 0.80 - 0.089 = 71.10 points; standard error sqrt((0.005^2 + 0.001^2) / 3) is far below
    assert first["belief_evidence"] == "98%: +71.10 (agree; worse side DPF collapsed in 3 of 3 seeds)"
    render_paper_vs_ours(paper_vs_ours(cells, reference_table("back_to_basics_table4_resnet56_cifar10.csv"),
                                       ["IMP+", "DPF"], [0.98]), judged, caption="test", out_dir=tmp_path)
    tex = (tmp_path / "paper-vs-ours.tex").read_text()
    assert r"\emph{Belief: DPF collapses; kept alive it recovers}" in tex and "never shown" not in tex
    assert pd.read_csv(tmp_path / "claims.csv")["belief_verdict"].tolist() == ["agree", "agree"]


def test_a_claim_is_judged_where_its_hyperparameters_say():
    # Overall A trails B, but among the runs with the short budget A leads: the claim "A beats
    # B at retrain_epochs = 1" is judged on the cells of those runs only.
    overall = pd.DataFrame([cell("A", 0.9, 0.90, 0.005), cell("B", 0.9, 0.92, 0.005)])
    short = pd.DataFrame([cell("A", 0.9, 0.88, 0.005), cell("B", 0.9, 0.85, 0.005)])
    claims = [{"text": "A beats B on a short budget", "better": "A", "worse": "B", "metric": "test_accuracy",
               "goals": None, "where": {"retrain_epochs": 1}},
              {"text": "A beats B", "better": "A", "worse": "B", "metric": "test_accuracy", "goals": None}]
    asked = []
    judged = evaluate_claims(overall, claims, [0.9], lambda where: asked.append(where) or short).set_index("claim")
    assert asked == [{"retrain_epochs": 1}]
    assert judged.loc["A beats B on a short budget", "verdict"] == "agree"
    assert judged.loc["A beats B", "verdict"] == "disagree"


def test_a_speedup_difference_is_shown_as_a_ratio_not_in_points():
    cells = pd.DataFrame([cell("A", 0.9, 0.9, 0.0, theoretical_speedup_mean=12.5, theoretical_speedup_std=0.1),
                          cell("B", 0.9, 0.9, 0.0, theoretical_speedup_mean=10.0, theoretical_speedup_std=0.1)])
    claims = [{"text": "A is faster", "better": "A", "worse": "B", "metric": "theoretical_speedup", "goals": None}]
    assert evaluate_claims(cells, claims, [0.9]).loc[0, "evidence"] == "90%: +2.50 (agree)"
