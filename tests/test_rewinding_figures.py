"""Renda et al.'s Figures 1-4 and 7-10 (fig-rewinding): its profiles, the report's choices on
synthetic records, and its smoke profile end to end through the CLI."""

from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.manifest import budget_epochs, load, load_all_profiles
from bench.report.rewinding import best_points, curve_points, curves_figure, per_iteration, render_rewinding

TARGET = "fig-rewinding"


def test_every_profile_validates_and_dry_runs(tmp_path, capsys):
    assert main(["validate", TARGET]) == 0
    for manifest in load_all_profiles(TARGET)[1:]:
        assert main(["run", TARGET, "--profile", manifest.profile, "--dry-run", "--results", str(tmp_path)]) == 0
    assert "fig-rewinding [cpu]: 178 runs" in capsys.readouterr().out


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_every_rewinding_row_shares_one_dense_run_per_seed(profile):
    manifest = load(TARGET, profile)
    specs = manifest.expand()
    parents = {spec.parent.run_id for spec in specs}
    assert len(parents) == len(manifest.seeds)
    # the parents store W_{T - t} for the ten t of 10%, ..., 100% of T (smoke: its two t)
    if profile != "smoke":
        epochs = manifest.training["epochs"]
        stored = specs[0].parent.hp["rewind_points"]
        assert stored == sorted(epochs - budget_epochs(f"{p}%", epochs, "t") for p in range(10, 101, 10))


def test_the_cpu_profile_trains_as_the_headline():
    assert load(TARGET, "cpu").training == load("table-imp-vs-stable", "cpu").training


def record(run_id, label, technique, t, val, test, seed=0, goal=0.36, method="rewinding", **extra):
    return {"run_id": run_id, "label": label, "method": method, "hp_technique": technique, "hp_retrain_epochs": t,
            "seed": seed, "goal_sparsity": goal, "val_accuracy": val, "test_accuracy": test,
            "compression_ratio": 1 / (1 - goal) if goal == goal else 1.5, "sparsity": goal, "model": "resnet1d",
            **extra}


def test_the_best_retraining_time_is_chosen_on_validation_accuracy():
    records = pd.DataFrame([
        record("a0", "FT", "ft", 2, val=0.90, test=0.80), record("a1", "FT", "ft", 2, val=0.80, test=0.81, seed=1),
        record("b0", "FT", "ft", 5, val=0.84, test=0.95), record("b1", "FT", "ft", 5, val=0.84, test=0.96, seed=1),
        record("c0", "WR", "wr", 2, val=0.85, test=0.70), record("c1", "WR", "wr", 5, val=0.85, test=0.90),
    ])
    points = curve_points(records)
    best = best_points(points).set_index("label")
    # FT: t = 2 has the higher mean validation accuracy (0.85 > 0.84) despite its lower test accuracy
    assert best.loc["FT", "hp_retrain_epochs"] == 2
    assert best.loc["FT", "run_ids"] == "a0 a1"
    assert best.loc["FT", ["test_accuracy_median", "test_accuracy_min", "test_accuracy_max"]].tolist() == \
        pytest.approx([0.805, 0.80, 0.81])
    assert best.loc["WR", "hp_retrain_epochs"] == 2  # a tie goes to the shorter retraining
    assert set(points["granularity"]) == {"one-shot"}


def test_iterative_points_are_the_ends_of_the_phases_of_the_history():
    run = record("it", "LRR, iterative", "lrr", 3, val=0.95, test=0.96, hp_prune_fraction=0.2,
                 compression_ratio=1.5625)
    history = pd.DataFrame({
        "phase": ["retrain 1"] * 3 + ["retrain 2"] * 3, "epoch": range(1, 7),
        "val_accuracy": [0.5, 0.6, 0.93, 0.7, 0.8, 0.95], "test_accuracy": [None, None, 0.94, None, None, 0.96],
        "sparsity": [None, None, 0.2, None, None, 0.36], "compression_ratio": [None, None, 1.25, None, None, 1.5625],
    })
    one_shot = record("os", "LRR", "lrr", 3, val=0.9, test=0.91)
    records = per_iteration(pd.DataFrame([run, one_shot]), {"it": history}.__getitem__)
    iterations = records[records["run_id"] == "it"].set_index("iteration")
    assert iterations["goal_sparsity"].tolist() == [0.2, 0.36]
    assert iterations["val_accuracy"].tolist() == [0.93, 0.95]
    assert iterations["test_accuracy"].tolist() == [0.94, 0.96]
    assert iterations["compression_ratio"].tolist() == [1.25, 1.5625]
    assert records.loc[records["run_id"] == "os", "test_accuracy"].tolist() == [0.91]
    assert set(curve_points(records)["granularity"]) == {"iterative", "one-shot"}


def test_the_curves_shade_the_safe_zone_and_the_points_name_their_runs(tmp_path):
    records = pd.DataFrame([record(f"{technique}{t}", technique.upper(), technique, t, val=0.8 + t / 100, test=0.8)
                            for technique in ("ft", "wr", "lrr") for t in (2, 12, 24)]
                           + [record("s", "FT, structured", "ft", 12, val=0.8, test=0.8, goal=float("nan"),
                                     method="rewinding-filters", hp_rate_level=2)])
    points = curve_points(records)
    figure = curves_figure(points, pd.DataFrame(columns=["model"]), {t: {"label": t, "color": "k"} for t in
                                                                     ("FT", "WR", "LRR")}, 24, "test")
    panel = figure.axes[0]
    zone = [patch for patch in panel.patches if patch.get_label() == "rewinding safe zone"]
    assert len(zone) == 1 and len([ax for ax in figure.axes if ax.get_visible()]) == 1  # one t structured: no curve
    assert (zone[0].get_x(), zone[0].get_x() + zone[0].get_width()) == pytest.approx((6, 21.6))  # 25-90% of 24
    render_rewinding(records, epochs=24, out_dir=tmp_path, title="test")
    written = pd.read_csv(tmp_path / "rewinding-points.csv")
    assert written.loc[written["best"], "run_ids"].sort_values().tolist() == ["ft24", "lrr24", "s", "wr24"]
    assert all((tmp_path / f"rewinding-{name}.{ext}").stat().st_size > 0 for name in ("best", "curves")
               for ext in ("pdf", "png"))


@pytest.mark.slow
@pytest.mark.targets
def test_fig_rewinding_smoke_end_to_end(tmp_path, data_root):
    results, reports = tmp_path / "results", tmp_path / "reports"
    assert main(["run", TARGET, "--profile", "smoke", "--executor", "inline", "--quiet", "--results", str(results),
                 "--reports", str(reports), "--data-root", str(data_root)]) == 0
    out = reports / TARGET / "smoke"
    points = pd.read_csv(out / "rewinding-points.csv")
    # iterative runs to 36% give a point per iteration: 20% and 36%
    iterative = points[points["granularity"] == "iterative"]
    assert sorted(iterative["level"].round(6).unique()) == [0.2, 0.36]
    assert set(points["granularity"]) == {"one-shot", "iterative", "structured"}
    for ids in points["run_ids"]:
        assert all((results / "runs" / run_id / "record.parquet").is_file() for run_id in ids.split())
    claims = pd.read_csv(out / "claims.csv")
    assert set(claims["verdict"]) == {"cannot tell"}  # one seed: no spread to judge against
    assert all(Path(out / f"rewinding-{name}.png").stat().st_size > 0 for name in ("best", "curves"))
