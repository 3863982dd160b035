"""Renda et al.'s Figures 1-4 and 7-10 (fig-rewinding), 5-6 (fig-rewinding-algorithm) and 11-12
(fig-rewinding-speedup): their profiles and shared runs, the report's choices on synthetic
records, and their smoke profiles end to end through the CLI."""

from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.manifest import budget_epochs, load
from bench.report.rewinding import (best_points, curve_points, curves_figure, per_iteration, render_rewinding,
                                    speedup_over_baseline)

from conftest import dry_run_every_profile

TARGET = "fig-rewinding"
ALGORITHM, SPEEDUP = "fig-rewinding-algorithm", "fig-rewinding-speedup"
PROFILES = ("smoke", "cpu", "paper", "paper-imagenet")


def test_every_profile_validates_and_dry_runs(tmp_path, capsys):
    dry_run_every_profile(TARGET, tmp_path)
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


def test_the_cpu_profile_trains_as_the_headline_on_a_shorter_budget():
    """T = 10 of the headline's 12 for cost (the ten t are then whole epochs), with the paper's
    milestones at 91 and 136 of 182 epochs, rounded; everything else is the headline's training."""
    ours, headline = load(TARGET, "cpu").training, load("table-imp-vs-stable", "cpu").training
    assert ours["epochs"] == 10
    assert ours["lr_schedule"]["milestones"] == [round(10 * 91 / 182), round(10 * 136 / 182)] == [5, 7]
    assert {**ours, "epochs": 12, "lr_schedule": headline["lr_schedule"]} == headline


@pytest.mark.parametrize("target, runs", [(ALGORITHM, "[cpu]: 10 runs"), (SPEEDUP, "[cpu]: 14 runs")])
def test_the_sibling_targets_validate_and_dry_run(target, runs, tmp_path, capsys):
    assert main(["validate", target]) == 0
    for profile in PROFILES:
        assert main(["run", target, "--profile", profile, "--dry-run", "--results", str(tmp_path)]) == 0
    assert f"{target} {runs}" in capsys.readouterr().out


def run_ids(target: str, profile: str) -> dict[str, set[str]]:
    """Per row label, the ids of its runs and of their dense parents."""
    ids = {}
    for spec in load(target, profile).expand():
        ids.setdefault(spec.label, set()).update({spec.run_id, spec.parent.run_id})
    return ids


@pytest.mark.parametrize("profile", PROFILES)
def test_the_sibling_targets_reuse_the_iterative_runs_of_fig_rewinding(profile):
    rewinding = run_ids(TARGET, profile)
    iterative = set().union(*(ids for label, ids in rewinding.items() if label.endswith(", iterative")
                              and "Low-LR" not in label))
    # Figures 11-12 draw exactly fig-rewinding's iterative FT, WR and LRR runs
    assert set().union(*run_ids(SPEEDUP, profile).values()) == iterative
    algorithm = run_ids(ALGORITHM, profile)
    assert algorithm["LRR, t = T (Algorithm 1)"] | algorithm["FT, t = T"] <= iterative
    # WR for 90% of T: in the grid of ten t, not in the cpu profile's (30% and 100%); same dense parents
    assert (algorithm["WR, t = 90% of T"] <= iterative) == (profile != "cpu")
    assert len(algorithm["WR, t = 90% of T"] - iterative) == (2 if profile == "cpu" else 0)


def record(run_id, label, technique, t, val, test, seed=0, goal=0.36, method="rewinding", **extra):
    return {"run_id": run_id, "label": label, "method": method, "hp_technique": technique, "hp_retrain_epochs": t,
            "seed": seed, "goal_sparsity": goal, "val_accuracy": val, "test_accuracy": test,
            "compression_ratio": 1 / (1 - goal) if goal == goal else 1.5, "sparsity": goal, "model": "resnet1d",
            "theoretical_speedup": 1.0, "epochs": 24 + t, "own_epochs": t, **extra}


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
                 compression_ratio=1.5625, epochs=3 + 6, own_epochs=6)  # T = 3, two iterations of t = 3
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
    # search cost T (1 + k): 3 (1 + 1) and 3 (1 + 2) epochs
    assert iterations["own_epochs"].tolist() == [3, 6] and iterations["epochs"].tolist() == [6, 9]
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


def iterations(run_id, label, technique, t, epochs, history, seed=0):
    """The records of an iterative run of retraining time t after T = ``epochs``, from its
    history: (val, test, theoretical speedup) per iteration."""
    ends = len(history) * t
    run = record(run_id, label, technique, t, val=0, test=0, seed=seed, goal=1 - 0.8 ** len(history),
                 hp_prune_fraction=0.2, epochs=epochs + ends, own_epochs=ends)
    phases = pd.DataFrame({"phase": [f"retrain {j}" for j in range(1, len(history) + 1) for _ in range(t)],
                           "epoch": range(1, ends + 1)})
    ends_of_phases = phases.index[t - 1::t]
    for column, values in zip(("val_accuracy", "test_accuracy", "theoretical_speedup"), zip(*history)):
        phases.loc[ends_of_phases, column] = values
    phases.loc[ends_of_phases, "compression_ratio"] = [1 / 0.8 ** j for j in range(1, len(history) + 1)]
    return run, phases


def split(runs: list[tuple[dict, pd.DataFrame]]) -> pd.DataFrame:
    """``per_iteration`` of the (record, history) pairs."""
    histories = {run["run_id"]: history for run, history in runs}
    return per_iteration(pd.DataFrame([run for run, _ in runs]), histories.__getitem__)


def test_the_algorithms_search_cost_is_the_epochs_trained_with_the_dense_network(tmp_path):
    """T = 10: LRR for T after k iterations costs T (1 + k); WR for 90% of T, T + 9 k."""
    records = split([iterations("lrr", "LRR, t = T", "lrr", 10, 10, [(0.9, 0.91, 1.2), (0.9, 0.92, 1.5)]),
                     iterations("wr", "WR, t = 90% of T", "wr", 9, 10, [(0.9, 0.93, 1.2), (0.9, 0.94, 1.5)])])
    points = best_points(curve_points(records)).set_index(["label", "level"])["search_cost"]
    assert points.loc["LRR, t = T"].tolist() == [20, 30]
    assert points.loc["WR, t = 90% of T"].tolist() == [19, 28]
    render_rewinding(records, epochs=10, out_dir=tmp_path, title="test", figures=("algorithm",), goals=(0.36, 0.5))
    table = (tmp_path / "table.tex").read_text()
    row = next(line for line in table.splitlines() if line.startswith("WR"))
    assert row.split(" & ")[1:] == ["94.00", r"28 \\"]  # 36%, k = 2; no column at 50%: no iteration there
    assert "1.6x (36.0\\% sparsity)" in table
    assert not (tmp_path / "rewinding-best.png").exists() and (tmp_path / "rewinding-algorithm.png").stat().st_size


def test_the_speedup_over_fine_tuning_is_of_the_networks_best_by_validation():
    # per technique, t = 2 and 5, seeds 0 and 1, one iteration (20%): (val, test, speedup)
    history = {("ft", 2): [(0.9, 0.9, 1.2), (0.9, 0.9, 1.4)], ("ft", 5): [(0.8, 0.9, 3.0), (0.8, 0.9, 3.0)],
               ("wr", 2): [(0.8, 0.9, 9.0), (0.8, 0.9, 9.0)], ("wr", 5): [(0.9, 0.9, 1.5), (0.9, 0.9, 1.7)]}
    records = split([iterations(f"{technique}{t}-{seed}", technique.upper(), technique, t, 10, [h[seed]], seed=seed)
                     for (technique, t), h in history.items() for seed in (0, 1)])
    speedups = speedup_over_baseline(best_points(curve_points(records))).set_index("technique")
    assert speedups["hp_retrain_epochs"].to_dict() == {"FT": 2, "WR": 5}
    assert speedups["theoretical_speedup_median"].to_dict() == pytest.approx({"FT": 1.3, "WR": 1.6})
    # FT's FLOPs over WR's: (F / 1.3) / (F / 1.6)
    assert speedups["speedup_over_ft"].to_dict() == pytest.approx({"FT": 1.0, "WR": 1.6 / 1.3})


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


@pytest.mark.slow
@pytest.mark.targets
def test_the_sibling_targets_smoke_end_to_end(tmp_path, data_root):
    results, reports = tmp_path / "results", tmp_path / "reports"
    for target in (ALGORITHM, SPEEDUP):
        assert main(["run", target, "--profile", "smoke", "--executor", "inline", "--quiet", "--results",
                     str(results), "--reports", str(reports), "--data-root", str(data_root)]) == 0
    algorithm = pd.read_csv(reports / ALGORITHM / "smoke" / "rewinding-points.csv")
    # T = 3, t = T for all three (90% of 3 epochs is 3): T (1 + k) after k = 1, 2 iterations
    assert algorithm.groupby("label")["search_cost"].apply(list).to_dict() == {
        label: [6, 9] for label in ("FT, t = T", "LRR, t = T (Algorithm 1)", "WR, t = 90% of T")}
    assert "Acc." in (reports / ALGORITHM / "smoke" / "table.tex").read_text()
    speedups = pd.read_csv(reports / SPEEDUP / "smoke" / "rewinding-speedup.csv")
    assert sorted(speedups["level"].round(6).unique()) == [0.2, 0.36]
    assert speedups.loc[speedups["technique"] == "FT", "speedup_over_ft"].tolist() == [1.0, 1.0]
    for ids in [*algorithm["run_ids"], *speedups["run_ids"]]:
        assert all((results / "runs" / run_id / "record.parquet").is_file() for run_id in ids.split())
    # the algorithm's runs are the speedup figure's at t = T: nothing trained twice
    assert len(list(results.glob("runs/*/record.parquet"))) == 7  # the belief's WR for 1 epoch is one of them
    claims = pd.read_csv(reports / SPEEDUP / "smoke" / "claims.csv")
    assert set(claims["metric"]) == {"theoretical_speedup"}
