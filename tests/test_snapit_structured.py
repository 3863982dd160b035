"""SNIP-it's Tables 4 and 1 (table-snapit-structured): its profiles, the selection on the HM of
accuracy and node sparsity, the structured table with the paper's numbers beside ours, its
claims on the reductions (and against a method that pruned nothing) on synthetic records, and
the smoke profile end to end through the CLI."""

import math

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.manifest import load
from bench.report.paper import evaluate_claims, reference_table
from bench.report.select import select_trade_offs, with_harmonic_means
from bench.report.site import own_table
from bench.report.trade_off import in_setting, render_reductions, render_trade_off_table, trade_off_table
from bench.runspec import with_parents

from conftest import dry_run_every_profile

TARGET = "table-snapit-structured"
GROUPS = {"after_training": ["Effic.ConvN.", "GateDecorators", "Group-HS"], "during_training": ["L0"],
          "before_training": ["Random", "SNAP-it"]}


def test_every_profile_validates_and_dry_runs(tmp_path, capsys):
    dry_run_every_profile(TARGET, tmp_path)
    assert f"{TARGET} [cpu]: 40 runs" in capsys.readouterr().out


def test_the_cpu_profile_fits_twenty_minutes_on_two_cores():
    # a Conv6 epoch on the digits at batch 128 takes about 3.5 s on one core, at 16 (the diagnostic rows)
    # about 9 s: 352 epochs; on two, 8 min 58 s from empty without the EfficientConvNets diagnostic
    # row, whose 6 runs added 1 min 26 s
    specs = with_parents(load(TARGET, "cpu").expand())
    assert sum(spec.training["epochs"] for spec in specs) <= 360
    assert {spec.training["dataset"] for spec in specs} == {"digits"}


def test_the_paper_profiles_are_the_papers_settings():
    manifest = load(TARGET, "paper")
    training = manifest.training
    assert (training["optimizer"], training["lr"], training["weight_decay"], training["batch_size"],
            training["grad_clip"], training["epochs"], training["val_fraction"]) == \
        ("adam", 2e-3, 5e-5, 512, 10.0, 80, 0.2)
    specs = manifest.expand()
    by_label = {spec.label: spec for spec in specs}
    assert by_label["Effic.ConvN."].hp["finetune_epochs"] == 9
    assert by_label["GateDecorators"].hp["tick_tock_epochs"] == 70
    assert by_label["L0"].training["epochs"] == 160  # twice the others' budget, the authors' README
    assert by_label["SNAP-it"].training["model"] == "snipit-vgg16"
    lambdas = sorted({spec.hp["hoyer_reg"] for spec in specs if spec.label == "Group-HS"})
    assert len(lambdas) == 10 and (lambdas[0], lambdas[-1]) == (1e-6, 5.0)
    imagenette = load(TARGET, "paper-imagenette-alexnet")
    assert (imagenette.training["model"], imagenette.training["dataset"], imagenette.training["batch_size"],
            imagenette.report["reference"], imagenette.report["reference_setting"]) == \
        ("snipit-alexnet", "imagenette", 128, "snipit_table1_structured_imagenette.csv", {"network": "AlexNet"})


def runs(label: str, method: str, goal: float | None, val: list[float], test: list[float], nodes: float,
         **measures) -> list[dict]:
    """Synthetic records of one configuration, a seed per validation accuracy; each measure a
    list over the seeds or one value for all."""
    def seed_value(value, seed):
        return value[seed] if isinstance(value, list) else value

    return [{"run_id": f"{label}-{goal}-{seed}", "label": label, "method": method, "goal_sparsity": goal,
             "seed": seed, "val_accuracy": v, "test_accuracy": t, "node_sparsity": nodes,
             "sparsity": min(1.0, nodes * 1.05), **{k: seed_value(value, seed) for k, value in measures.items()}}
            for seed, (v, t) in enumerate(zip(val, test))]


def synthetic() -> pd.DataFrame:
    return with_harmonic_means(pd.DataFrame([
        *runs("Baseline", "dense", None, [0.9, 0.9], [0.9, 0.9], 0.0, train_flops_reduction=1.0),
        # HM on nodes: 0.9 at 0.5 gives 0.643, 0.8 at 0.9 gives 0.847; the sparser point wins
        *runs("SNAP-it", "snap-it", 0.5, [0.9, 0.9], [0.91, 0.89], 0.5, train_flops_reduction=2.0,
              train_memory_reduction=1.5),
        *runs("SNAP-it", "snap-it", 0.9, [0.8, 0.8], [0.79, 0.81], 0.9, train_flops_reduction=[9.0, 11.0],
              train_memory_reduction=[4.0, 4.2], theoretical_speedup=10.0, shrunk_inference_speedup=3.0,
              train_time_reduction=2.5, disk_reduction=600.0),
        *runs("Effic.ConvN.", "efficient-convnets", 0.9, [0.7, 0.7], [0.7, 0.7], 0.9,
              train_flops_reduction=[1.1, 1.2], train_memory_reduction=[1.0, 1.0]),
        *runs("Group-HS", "group-hs", None, [0.85, 0.85], [0.85, 0.85], 0.0, train_flops_reduction=1.0),
    ]))


def test_the_trade_off_point_has_the_highest_validation_hm_of_accuracy_and_node_sparsity():
    records = synthetic()
    cells = select_trade_offs(records, "val_node_harmonic_mean").set_index("label")
    assert cells.loc["SNAP-it", "goal_sparsity"] == 0.9
    hms = [2 * a * 0.9 / (a + 0.9) for a in (0.79, 0.81)]  # of each seed's test accuracy
    assert cells.loc["SNAP-it", "node_harmonic_mean_mean"] == pytest.approx(np.mean(hms))
    assert cells.loc["SNAP-it", "train_flops_reduction_mean"] == pytest.approx(10.0)


def test_the_structured_table_has_every_measure_with_the_papers_beside(tmp_path):
    labels = ["Baseline", "Effic.ConvN.", "SNAP-it"]
    groups = {phase: [label for label in members if label in labels] for phase, members in GROUPS.items()}
    reference = in_setting(reference_table("snipit_table4_structured_cifar10.csv"), {"network": "VGG16"}, TARGET)
    cells = select_trade_offs(synthetic(), "val_node_harmonic_mean")
    table = trade_off_table(cells, reference, labels, groups, "structured").set_index("label")
    snap = table.loc["SNAP-it"]
    assert (snap["phase"], snap["accuracy"], snap["sparsity"], snap["node_sparsity"]) == \
        ("before_training", pytest.approx(80.0), pytest.approx(94.5), pytest.approx(90.0))
    assert (snap["train_flops_reduction"], snap["train_memory_reduction"], snap["disk_reduction"]) == \
        (pytest.approx(10.0), pytest.approx(4.1), 600.0)
    # Table 4, VGG16: SNAP-it 85 +- 0.6, weight 93%, node 99%, FLOPs 11x / 11x, RAM 156x
    assert (snap["paper_accuracy"], snap["paper_sparsity"], snap["paper_node_sparsity"],
            snap["paper_train_flops_reduction"], snap["paper_train_memory_reduction"]) == (85, 93, 99, 11, 156)
    render_trade_off_table(table.reset_index(), caption="Synthetic", paper_header="Paper", out_dir=tmp_path)
    tex = (tmp_path / "table.tex").read_text()
    ci = 1.96 * np.std([79.0, 81.0], ddof=1) / math.sqrt(2)
    assert (rf"SNAP-it & 80.0 $\pm$ {ci:.1f} (85 $\pm$ 0.6) & 94.5 (93) & 90.0 (99) & 10$\times$ (11$\times$) & "
            r"10$\times$ (11$\times$) & "
            r"3$\times$ (5$\times$) & 2.5$\times$ (2$\times$) & 6e+02$\times$ (6e+04$\times$) & "
            r"4.1$\times$ (1.6e+02$\times$) \\") in tex
    assert "Node sparsity" in tex and "Prunes before training" in tex
    assert all(path.stat().st_size > 0 for path in render_reductions(table.reset_index(), out_dir=tmp_path, title=""))
    site = own_table("trade_off", tmp_path)  # the site's table: the same cells, in HTML's symbols
    assert site["header"][:3] == ["Method", "Accuracy (%), ours (paper)", "Weight sparsity (%), ours (paper)"]
    row = next(row for section in site["sections"] for row in section["rows"] if row["label"] == "SNAP-it")
    assert row["cells"][3:5] == ["10\u00d7 (11\u00d7)", "10\u00d7 (11\u00d7)"]


def test_reductions_are_judged_at_the_trade_off_points_as_ratios_and_never_against_a_method_that_pruned_nothing():
    claims = [{"text": "flops", "better": "SNAP-it", "worse": "Effic.ConvN.", "metric": "train_flops_reduction"},
              {"text": "hm", "better": "SNAP-it", "worse": "Group-HS", "metric": "node_harmonic_mean"}]
    records = synthetic()
    judged = evaluate_claims(pd.DataFrame(), [{"goals": None, **claim} for claim in claims], [0.9],
                             trade_offs=select_trade_offs(records, "val_node_harmonic_mean")).set_index("claim")
    flops = judged.loc["flops"]
    assert flops["verdict"] == "agree" and flops["evidence"].startswith(f"trade-off: {10.0 - 1.15:+.2f}")
    # Group-HS left every weight: its HM of 0 loses to anything, which says nothing of SNAP-it
    hm = judged.loc["hm"]
    assert hm["verdict"] == "cannot tell" and "Group-HS pruned no weight" in hm["evidence"]


@pytest.mark.slow
@pytest.mark.targets
def test_snapit_structured_smoke_end_to_end(dirs):
    _, reports, where = dirs
    assert main(["run", TARGET, "--profile", "smoke", "--executor", "inline", "--quiet", *where]) == 0
    out = reports / TARGET / "smoke"
    assert all((out / name).stat().st_size > 0 for name in ("standalone.tex", "pareto.pdf", "reductions.pdf",
                                                             "claims.csv"))
    table = pd.read_csv(out / "trade-off.csv").set_index("label")
    assert set(table.index) == {"Baseline", *(label for members in GROUPS.values() for label in members)}
    assert table.drop("Baseline")["accuracy"].notna().all()
    for label in ("Effic.ConvN.", "Random", "SNAP-it"):
        assert table.loc[label, "node_sparsity"] == pytest.approx(80, abs=5)
        assert table.loc[label, "theoretical_speedup"] > 1
    assert table.loc["SNAP-it", "paper_accuracy"] == 85
    assert len(pd.read_csv(out / "claims.csv")) == len(load(TARGET, "smoke").claims)
