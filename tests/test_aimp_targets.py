"""AIMP's Table I / Figure 1 (table-aimp) and Table II (table-aimp-rates): their profiles, the
report's medians, deltas, speed-ups and curves on synthetic records, and the smoke profiles
end to end through the CLI."""

import math

import pandas as pd
import pytest

from bench.cli import main
from bench.manifest import load
from bench.report.aimp import iteration_curves, median_cells, paper_numbers, render_aimp_table, with_paper
from bench.report.paper import evaluate_claims
from bench.report.select import select_cells
from bench.report.site import environment, target_card, target_page
from bench.store import RunStore

GOAL_20 = 1 - 0.8 ** 20


@pytest.mark.parametrize("target", ["table-aimp", "table-aimp-lrr", "table-aimp-rates"])
@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_every_profile_expands(target, profile):
    assert load(target, profile).expand()


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_section_v_e_is_table_i_with_lrr_rows_and_shares_its_dense_runs(profile):
    table_i, lrr = load("table-aimp", profile), load("table-aimp-lrr", profile)
    assert [row.label for row in lrr.rows] == ["IMP+LRR", "AIMP_50+LRR"]
    assert lrr.training == table_i.training and lrr.seeds == table_i.seeds
    assert lrr.report["baselines"] == ["IMP+LRR"] and [claim["better"] for claim in lrr.claims] == ["AIMP_50+LRR"]
    assert "IMP+LRR" not in {row.label for row in table_i.rows}
    dense = {spec.parent.run_id for spec in table_i.expand() if spec.label == "IMP+WR"}
    assert {spec.parent.run_id for spec in lrr.expand()} == dense


def test_the_cpu_profile_scales_tau_as_shares_of_t():
    specs = [spec for spec in load("table-aimp", "cpu").expand() if spec.method == "rewinding"]
    hp = {spec.label: spec.hp for spec in specs}
    assert {label: hp[label]["partial_epochs"] for label in hp if label.startswith("AIMP_") and "WR" in label} == {
        "AIMP_50+WR": 5, "AIMP_40+WR": 4, "AIMP_30+WR": 3, "AIMP_20+WR": 2, "AIMP_50+WR, dense truncated at 50": 5}
    assert (hp["IMP+WR"]["technique"], hp["IMP+WR"]["retrain_epochs"], hp["IMP+WR"]["partial_epochs"]) == ("wr", 15, None)
    lrr = {spec.label: spec.hp for spec in load("table-aimp-lrr", "cpu").expand()}
    assert {label: (hp["technique"], hp["retrain_epochs"], hp["partial_epochs"]) for label, hp in lrr.items()} == {
        "IMP+LRR": ("lrr", 16, None), "AIMP_50+LRR": ("lrr", 16, 5)}
    assert all(spec.hp["clip_grad_norm"] == 1.0 and spec.hp["prune_fraction"] == 0.2 for spec in specs)
    assert {spec.seed for spec in specs} == {0, 1}  # cut from the paper's 5 for cost
    truncated = {spec.parent.hp.get("stop_epoch") for spec in specs if spec.label.endswith("truncated at 50")}
    assert truncated == {5}
    assert {spec.parent.hp.get("stop_epoch") for spec in specs if not spec.label.endswith("truncated at 50")} == {None}


def test_the_paper_profile_is_the_papers_setting():
    manifest = load("table-aimp", "paper")
    assert (manifest.training["model"], manifest.training["epochs"], manifest.training["batch_size"]) == \
        ("vgg19", 160, 128)
    hp = {spec.label: spec.hp for spec in manifest.expand() if spec.method == "rewinding"}
    assert [hp[f"AIMP_{tau}+WR"]["partial_epochs"] for tau in (20, 30, 40, 50)] == [20, 30, 40, 50]
    assert hp["IMP+WR"]["retrain_epochs"] == 159


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_table_ii_pairs_each_rate_with_its_goal_and_shares_p20_with_table_i(profile):
    rates = [spec for spec in load("table-aimp-rates", profile).expand() if spec.method == "rewinding"]
    pairs = {(spec.hp["prune_fraction"], round(spec.goal_sparsity, 9)) for spec in rates}
    iterations = {0.2: 20, 0.3: 12, 0.4: 9} if profile != "smoke" else {0.2: 2, 0.3: 2, 0.4: 2}
    assert pairs == {(p, round(1 - (1 - p) ** k, 9)) for p, k in iterations.items()}
    table_i = {spec.run_id for spec in load("table-aimp", profile).expand()}
    assert {spec.run_id for spec in rates if spec.hp["prune_fraction"] == 0.2} <= table_i


def records(rows: list[tuple]) -> pd.DataFrame:
    """Synthetic records: (label, technique, seed, test_accuracy, own_epochs)."""
    return pd.DataFrame([{"run_id": f"{label}-{seed}", "label": label, "method": "rewinding", "hp_technique": technique,
                          "hp_prune_fraction": 0.2, "goal_sparsity": GOAL_20, "seed": seed,
                          "test_accuracy": accuracy, "val_accuracy": accuracy, "sparsity": GOAL_20,
                          "own_epochs": epochs} for label, technique, seed, accuracy, epochs in rows])


SYNTHETIC = records([
    ("IMP+WR", "wr", 0, 0.90, 300), ("IMP+WR", "wr", 1, 0.80, 300), ("IMP+WR", "wr", 2, 0.95, 300),
    ("AIMP_50+WR", "wr", 0, 0.91, 91), ("AIMP_50+WR", "wr", 1, 0.50, 91), ("AIMP_50+WR", "wr", 2, 0.92, 91),
    ("IMP+LRR", "lrr", 0, 0.97, 320), ("AIMP_50+LRR", "lrr", 0, 0.93, 111),
])


def test_cells_are_medians_with_delta_and_speedup_against_imp_of_the_same_technique():
    cells = median_cells(SYNTHETIC, ["IMP+WR", "IMP+LRR"]).set_index("label")
    assert cells.loc["IMP+WR", "test_accuracy_median"] == 0.90  # the mean would be 0.883
    assert cells.loc["AIMP_50+WR", "test_accuracy_median"] == 0.91
    assert cells.loc["AIMP_50+WR", "delta"] == pytest.approx(0.01)
    assert cells.loc["AIMP_50+WR", "speedup"] == pytest.approx(300 / 91)
    assert cells.loc["AIMP_50+LRR", "delta"] == pytest.approx(-0.04)  # against IMP+LRR, not IMP+WR
    assert cells.loc["AIMP_50+LRR", "speedup"] == pytest.approx(320 / 111)
    assert (cells.loc["IMP+WR", "n_seeds"], cells.loc["IMP+WR", "run_ids"]) == (3, "IMP+WR-0 IMP+WR-1 IMP+WR-2")


def test_the_papers_numbers_stand_beside_ours():
    cells = with_paper(median_cells(SYNTHETIC, ["IMP+WR", "IMP+LRR"])).set_index("label")
    assert (cells.loc["AIMP_50+WR", "paper_accuracy"], cells.loc["AIMP_50+WR", "paper_speedup"]) == \
        pytest.approx((90.71, 2.88))
    assert cells.loc["AIMP_50+WR", "paper_delta"] == pytest.approx(0.07)
    assert cells.loc["IMP+WR", "paper_retraining_epochs"] == 3200
    assert cells.loc["AIMP_50+LRR", "paper_delta"] == pytest.approx(93.62 - 93.68)
    rates = paper_numbers().set_index(["label", "pruning_rate"])
    assert rates.loc[("AIMP_50+WR", 30), "accuracy"] == pytest.approx(90.53)


def test_the_sites_table_shows_the_latex_tables_medians_not_means(tmp_path):
    manifest = load("table-aimp", "smoke", registries=False)
    report = tmp_path / "table-aimp" / "smoke"
    report.mkdir(parents=True)
    cells = with_paper(median_cells(SYNTHETIC, ["IMP+WR", "IMP+LRR"]))
    render_aimp_table(cells, labels=["IMP+WR", "AIMP_50+WR"], caption="", out_dir=report)
    select_cells(SYNTHETIC, [GOAL_20]).to_csv(report / "selection.csv", index=False)
    card = target_card(manifest, RunStore(tmp_path / "results"), tmp_path)
    page = target_page(manifest, card, tmp_path, [])
    assert page["table"] is None
    assert [(row["label"], row["cells"][3], row["cells"][5]) for row in page["own_table"]["sections"][0]["rows"]] == \
        [("IMP+WR", "90.00", "+0.00"), ("AIMP_50+WR", "91.00", "+1.00")]  # IMP+WR's mean is 88.33
    html = environment().get_template("site_target.html.j2").render(page=page, root="../")
    assert "<td>90.00</td>" in html and "88.33" not in html


def test_figure_1_is_the_median_after_every_iteration_from_the_histories():
    runs = SYNTHETIC[SYNTHETIC["label"] == "IMP+WR"]
    def history(accuracies):
        rows = []
        for j, accuracy in enumerate(accuracies, start=1):
            rows += [{"phase": f"retrain {j}", "epoch": 2 * j - 1, "test_accuracy": math.nan, "sparsity": math.nan},
                     {"phase": f"retrain {j}", "epoch": 2 * j, "test_accuracy": accuracy, "sparsity": 1 - 0.8 ** j}]
        return pd.DataFrame(rows)
    histories = {"IMP+WR-0": history([0.5, 0.7]), "IMP+WR-1": history([0.6, 0.9]), "IMP+WR-2": history([0.9, 0.8])}
    curve = iteration_curves(histories, runs).set_index("iteration")
    assert curve["test_accuracy_median"].tolist() == [0.6, 0.8]
    assert curve["remaining_median"].tolist() == pytest.approx([0.8, 0.64])


def test_a_claim_on_medians_judges_the_medians():
    cells = select_cells(SYNTHETIC, [GOAL_20])
    claim = {"text": "", "better": "AIMP_50+WR", "worse": "IMP+WR", "metric": "test_accuracy", "goals": None,
             "relation": "matches"}
    on_means, on_medians = (evaluate_claims(cells, [{**claim, "statistic": s}], [GOAL_20]).iloc[0]
                            for s in ("mean", "median"))
    assert on_medians["evidence"].startswith(f"{GOAL_20 * 100:g}%: +1.00")
    assert on_means["evidence"].startswith(f"{GOAL_20 * 100:g}%: -10.67")


@pytest.mark.slow
@pytest.mark.targets
def test_aimp_smoke_end_to_end(dirs):
    results, reports, where = dirs
    for target in ("table-aimp", "table-aimp-lrr", "table-aimp-rates"):
        assert main(["run", target, "--profile", "smoke", "--executor", "inline", "--quiet", *where]) == 0
    out = reports / "table-aimp" / "smoke"
    assert all((out / name).stat().st_size > 0 for name in ("standalone.tex", "curve.pdf", "curve.png", "claims.csv"))
    table = pd.read_csv(out / "aimp.csv").set_index("label")
    assert table.loc["IMP+WR", "own_epochs"] == 14  # 2 iterations of t = T - 1 = 7
    assert table.loc["AIMP_50+WR", "own_epochs"] == 9  # (tau - 1) + 7 with tau = 3 of 8
    curve = pd.read_csv(out / "curve.csv")
    assert curve.groupby("label")["iteration"].max().eq(2).all()
    lrr = pd.read_csv(reports / "table-aimp-lrr" / "smoke" / "aimp.csv").set_index("label")
    assert lrr.loc["IMP+LRR", "own_epochs"] == 16  # 2 iterations of t = T = 8
    rates = pd.read_csv(reports / "table-aimp-rates" / "smoke" / "aimp.csv")
    assert sorted(rates["pruning_rate"].unique()) == [20, 30, 40]
