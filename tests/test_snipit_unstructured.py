"""SNIP-it's Table 2 / Table 3 (table-snipit-unstructured): its profiles, the harmonic-mean
selection by hand, the trade-off table and its claims on synthetic records, and the smoke
profile end to end through the CLI."""

import math

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.manifest import load
from bench.report.paper import evaluate_claims, reference_table
from bench.report.select import harmonic_mean, select_cells, select_trade_offs, with_harmonic_means
from bench.report.trade_off import curve_cells, in_setting, render_trade_off_table, trade_off_table
from bench.report.site import environment, target_card, target_page
from bench.runspec import with_parents
from bench.store import RunStore
from schema import ConfigError

from conftest import dry_run_every_profile

TARGET = "table-snipit-unstructured"
GROUPS = {"after_training": ["HoyerSquare"], "during_training": ["IMP-global", "SNIP-it (during)"],
          "before_training": ["GraSP", "Random", "SNIP", "SNIP-it (before)"]}


def test_every_profile_validates_and_dry_runs(tmp_path, capsys):
    dry_run_every_profile(TARGET, tmp_path)
    assert f"{TARGET} [cpu]: 72 runs" in capsys.readouterr().out


def test_the_cpu_profile_fits_twenty_minutes_on_two_cores():
    specs = with_parents(load(TARGET, "cpu").expand())
    assert sum(spec.training["epochs"] for spec in specs) <= 1500
    assert {spec.training["dataset"] for spec in specs} == {"digits"}


def test_the_paper_profile_is_the_papers_setting():
    manifest = load(TARGET, "paper")
    training = manifest.training
    assert (training["optimizer"], training["lr"], training["weight_decay"], training["batch_size"],
            training["grad_clip"], training["epochs"], training["lr_schedule"]["kind"]) == \
        ("adam", 2e-3, 5e-5, 512, 10.0, 80, "constant")
    assert (training["model"], training["dataset"], len(manifest.seeds)) == ("snipit-lenet5", "cifar10", 5)
    specs = manifest.expand()
    hp = {spec.label: spec.hp for spec in specs}
    assert (hp["SNIP-it (during)"]["prune_delay"], hp["SNIP-it (during)"]["prune_interval"]) == (4, 4)
    assert (hp["IMP-global"]["rewind_epoch"], hp["IMP-global"]["steps"], hp["SNIP-it (before)"]["steps"]) == (6, 5, 5)
    lambdas = sorted({spec.hp["hoyer_reg"] for spec in specs if spec.label == "HoyerSquare"})
    assert len(lambdas) == 10 and lambdas[0] == 1e-6 and lambdas[-1] == 5.0  # "10 log intervals in [5, 1e-6]"
    assert np.allclose(np.diff(np.log(lambdas)), np.log(5e6) / 9, rtol=2e-3)
    table2 = {profile: load(TARGET, profile) for profile in ("paper-conv6", "paper-imagenette-resnet18")}
    assert [(m.training["model"], m.training["dataset"], m.training["batch_size"], m.report["reference_setting"])
            for m in table2.values()] == [
        ("snipit-conv6", "cifar10", 512, {"dataset": "CIFAR10", "network": "Conv6"}),
        ("snipit-resnet18", "imagenette", 128, {"dataset": "Imagenette", "network": "ResNet18"})]
    mnist = load(TARGET, "paper-mnist")
    assert (mnist.training["model"], mnist.training["dataset"], mnist.report["reference_setting"]) == \
        ("snipit-mlp5-28x28", "mnist", {"dataset": "MNIST", "network": "MLP5"})


def test_the_harmonic_mean_by_hand():
    hm = harmonic_mean([0.9, 0.0, 0.8, math.nan], [0.5, 0.0, 0.95, 0.9])
    assert hm[0] == pytest.approx(2 * 0.9 * 0.5 / 1.4)  # 0.6429
    assert hm[1] == 0.0 and math.isnan(hm[3]) and harmonic_mean(72.0, 95.0) == pytest.approx(81.916, abs=1e-3)
    assert hm[2] == pytest.approx(0.8686, abs=1e-4)


def runs(label: str, method: str, goal: float | None, val: list[float], test: list[float], sparsity: float,
         **hp) -> list[dict]:
    """Synthetic records of one configuration, a seed per validation accuracy."""
    return [{"run_id": f"{label}-{goal}-{hp}-{seed}", "label": label, "method": method, "goal_sparsity": goal,
             "seed": seed, "val_accuracy": v, "test_accuracy": t, "sparsity": sparsity,
             **{f"hp_{k}": value for k, value in hp.items()}} for seed, (v, t) in enumerate(zip(val, test))]


def synthetic() -> pd.DataFrame:
    return with_harmonic_means(pd.DataFrame([
        *runs("Baseline", "dense", None, [0.97, 0.97], [0.96, 0.98], 0.0),
        # the more accurate configuration is the sparser one's loser on HM: 0.643 against 0.869
        *runs("SNIP-it (during)", "snip-it", 0.5, [0.90, 0.90], [0.91, 0.89], 0.5, timing="during"),
        *runs("SNIP-it (during)", "snip-it", 0.95, [0.80, 0.80], [0.70, 0.74], 0.95, timing="during"),
        *runs("SNIP-it (before)", "snip-it", 0.95, [0.70, 0.72], [0.60, 0.64], 0.95, timing="before"),
        *runs("HoyerSquare", "hoyer-square", None, [0.85, 0.85], [0.84, 0.86], 0.70, hoyer_reg=1e-4),
        *runs("HoyerSquare", "hoyer-square", None, [0.60, 0.62], [0.60, 0.60], 0.97, hoyer_reg=1e-3),
    ]))


def test_the_trade_off_point_has_the_highest_validation_hm_and_reports_test_accuracy():
    cells = select_trade_offs(synthetic()).set_index("label")
    during = cells.loc["SNIP-it (during)"]
    assert during["goal_sparsity"] == 0.95  # not 0.5, whose validation accuracy is higher
    assert during["test_accuracy_mean"] == pytest.approx(0.72)
    hoyer = cells.loc["HoyerSquare"]  # 0.768 (lambda 1e-4) against 0.751 (1e-3)
    assert '"hoyer_reg":0.0001' in hoyer["config"] and hoyer["n_configs"] == 2
    with pytest.raises(ValueError, match="validation"):
        select_trade_offs(synthetic(), "test_accuracy")


def test_within_a_goal_column_the_hm_weighs_the_sparsity_reached():
    records = with_harmonic_means(pd.DataFrame([  # HM 0.847 against 0.810; validation accuracy the other way
        *runs("Random", "random-init", 0.9, [0.80], [0.70], 0.90, draw="exact"),
        *runs("Random", "random-init", 0.9, [0.82], [0.75], 0.80, draw="bernoulli")]))
    by_hm, by_accuracy = (select_cells(records, [0.9], select_by).iloc[0]
                          for select_by in ("val_harmonic_mean", "val_accuracy"))
    assert (by_hm["test_accuracy_mean"], by_accuracy["test_accuracy_mean"]) == (0.70, 0.75)


def test_the_table_has_the_95_percent_interval_hm_and_the_papers_numbers(tmp_path):
    reference = reference_table("snipit_table3_mnist.csv")
    labels = ["Baseline", "HoyerSquare", "SNIP-it (during)", "SNIP-it (before)"]
    groups = {phase: [label for label in members if label in labels] for phase, members in GROUPS.items()}
    table = trade_off_table(select_trade_offs(synthetic()), reference, labels, groups).set_index("label")
    assert list(table.index) == labels and list(table["phase"]) == [
        "baseline", "after_training", "during_training", "before_training"]
    during = table.loc["SNIP-it (during)"]
    assert during["accuracy"] == pytest.approx(72.0)
    assert during["accuracy_ci"] == pytest.approx(1.96 * np.std([70.0, 74.0], ddof=1) / math.sqrt(2))
    assert during["harmonic_mean"] == pytest.approx(2 * 72 * 95 / (72 + 95))
    # the paper's SNIP-it of the matching group: Table 3 has it during (97, 98) and before (95, 97)
    assert (during["paper_accuracy"], during["paper_sparsity"]) == (97, 98)
    before = table.loc["SNIP-it (before)"]
    assert (before["paper_accuracy"], before["paper_sparsity"]) == (95, 97)
    assert table.loc["Baseline", "paper_accuracy"] == 98
    paths = render_trade_off_table(table.reset_index(), caption="Synthetic", paper_header="Paper: MNIST, MLP5",
                                   out_dir=tmp_path)
    tex = (tmp_path / "table.tex").read_text()
    assert all(path.stat().st_size > 0 for path in paths)
    assert tex.index("Prunes after training") < tex.index("Prunes during training") < tex.index(
        "Prunes before training")
    ci = during["accuracy_ci"]
    assert rf"72.0 $\pm$ {ci:.1f} & 95.0 & {during['harmonic_mean']:.1f} & 97 $\pm$ 0.1 & 98 & 97" in tex


def test_the_site_shows_the_trade_off_table_as_the_latex_table_does(tmp_path):
    labels = ["Baseline", "HoyerSquare", "SNIP-it (during)"]
    groups = {phase: [label for label in members if label in labels] for phase, members in GROUPS.items()}
    table = trade_off_table(select_trade_offs(synthetic()), reference_table("snipit_table3_mnist.csv"), labels, groups)
    report = tmp_path / TARGET / "smoke"
    render_trade_off_table(table, caption="", paper_header="Paper", out_dir=report)
    manifest = load(TARGET, "smoke", registries=False)
    page = target_page(manifest, target_card(manifest, RunStore(tmp_path / "results"), tmp_path), tmp_path, [])
    sections = page["own_table"]["sections"]
    assert [section["title"] for section in sections] == [None, "Prunes after training", "Prunes during training"]
    ci = table.set_index("label").loc["SNIP-it (during)", "accuracy_ci"]
    assert sections[2]["rows"][0]["cells"][:2] == [f"72.0 \u00b1 {ci:.1f}", "95.0"]
    html = environment().get_template("site_target.html.j2").render(page=page, root="../")
    assert "<i>Prunes during training</i>" in html and f"72.0 \u00b1 {ci:.1f}" in html and "$\\pm$" not in html


def test_the_papers_numbers_are_those_of_the_reference_setting():
    reference = reference_table("snipit_table2_unstructured.csv")
    rows = in_setting(reference, {"dataset": "Imagenette", "network": "Conv6"}, "m.toml")
    assert len(rows) == 8 and rows.loc[rows["phase"] == "during_training", "accuracy_mean"].tolist() == [77, 87]
    with pytest.raises(ConfigError, match="did you mean 'network'") as error:
        in_setting(reference, {"netwrk": "Conv6"}, "m.toml")
    assert (error.value.file, error.value.key) == ("m.toml", "report.reference_setting.netwrk")


def test_a_learned_sparsity_row_draws_a_point_per_configuration():
    points = curve_cells(synthetic(), [0.5, 0.95], "val_harmonic_mean")
    assert sorted(points.loc[points["label"] == "HoyerSquare", "sparsity_mean"]) == [0.70, 0.97]
    assert sorted(points.loc[points["label"] == "SNIP-it (during)", "goal_sparsity"]) == [0.5, 0.95]


def test_a_claim_on_the_hm_is_judged_at_the_trade_off_points():
    records = synthetic()
    claim = {"text": "", "better": "SNIP-it (during)", "worse": "SNIP-it (before)", "metric": "harmonic_mean",
             "goals": None}
    on_hm = evaluate_claims(select_cells(records, [0.95], "val_harmonic_mean"), [claim], [0.95],
                            trade_offs=select_trade_offs(records)).iloc[0]
    during, before = harmonic_mean([0.70, 0.74], 0.95).mean(), harmonic_mean([0.60, 0.64], 0.95).mean()
    assert on_hm["evidence"].startswith(f"trade-off: {(during - before) * 100:+.2f}")
    assert on_hm["verdict"] == "agree"


@pytest.mark.slow
@pytest.mark.targets
def test_snipit_unstructured_smoke_end_to_end(dirs):
    _, reports, where = dirs
    assert main(["run", TARGET, "--profile", "smoke", "--executor", "inline", "--quiet", *where]) == 0
    out = reports / TARGET / "smoke"
    assert all((out / name).stat().st_size > 0 for name in ("standalone.tex", "pareto.pdf", "claims.csv"))
    table = pd.read_csv(out / "trade-off.csv").set_index("label")
    assert set(table.index) == {"Baseline", *(label for members in GROUPS.values() for label in members)}
    assert table.drop("Baseline")["accuracy"].notna().all()
    assert np.allclose(table.drop(["Baseline", "HoyerSquare"])["sparsity"], 90, atol=0.5)
    assert table.loc["SNIP-it (during)", "paper_accuracy"] == 97
    claims = pd.read_csv(out / "claims.csv")
    assert len(claims) == len(load(TARGET, "smoke").claims)
