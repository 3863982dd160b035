"""Love Retraining's Figure 1 (fig-lr-schedules): the retraining schedules drawn from the
schedule code the runs use, by a report that trains and imports nothing else."""

import subprocess
import sys

import pytest

from bench.manifest import load
from bench.report.schedules import schedule_curves
from schema import ConfigError

STEPPED = {"epochs": 200, "lr": 0.1, "lr_schedule": {"kind": "stepped", "milestones": [90, 180], "gamma": 0.1}}


def lr_at(curves, schedule: str, epoch: float) -> float:
    row = curves[(curves["schedule"] == schedule) & (curves["epoch"] == epoch)]
    assert len(row) == 1
    return float(row["lr"].iloc[0])


def test_the_curves_are_the_schedules_of_the_runs_at_chosen_iterations():
    # 60 retraining epochs after 200, 10 iterations an epoch: n = 600, warm-up int(0.1 n) = 60
    # iterations (6 epochs), then R = 540 iterations.
    curves = schedule_curves(STEPPED, ["ft", "lrw", "slr", "llr", "allr"], 60, 10, [0.0, 0.6])
    assert lr_at(curves, "FT", 0.0) == lr_at(curves, "FT", 59.9) == pytest.approx(0.001)  # eta_T
    assert lr_at(curves, "LRW", 0.0) == pytest.approx(0.01)  # training epoch 140 of 200
    assert lr_at(curves, "LRW", 40.0) == pytest.approx(0.001)  # training epoch 180
    assert lr_at(curves, "LLR", 0.0) == 0.0
    assert lr_at(curves, "LLR", 3.0) == pytest.approx(0.05)  # half-way up the half cosine: 0.1 (1 - cos(pi/2)) / 2
    assert lr_at(curves, "LLR", 6.0) == pytest.approx(0.1)  # j = 0: eta_1
    assert lr_at(curves, "LLR", 33.0) == pytest.approx(0.05)  # j = 270 of 540
    # ALLR: d2 = 60 / 200 = 0.3; d = max(d1, d2): 0.3 at d1 = 0, 0.6 at d1 = 0.6.
    assert lr_at(curves, "ALLR (d1 = 0)", 6.0) == pytest.approx(0.03)
    assert lr_at(curves, "ALLR (d1 = 0.6)", 6.0) == pytest.approx(0.06)
    # SLR after warm-up: training iteration floor(j * 2000 / 540); j = 243 -> 900 = epoch 90: 0.01.
    assert lr_at(curves, "SLR", 6.0 + 24.2) == pytest.approx(0.1)  # j = 242 -> iteration 896
    assert lr_at(curves, "SLR", 6.0 + 24.3) == pytest.approx(0.01)
    assert len(curves) == 6 * 600


FIGURE_IMPORTS = """
import sys
from bench.cli import main
code = main(["report", "fig-lr-schedules", *sys.argv[1:]])
print("imported:", sorted(name for name in ("torch", "methods.core.base", "models") if name in sys.modules))
sys.exit(code)
"""


def test_the_figure_renders_from_no_runs_without_torch(tmp_path):
    done = subprocess.run([sys.executable, "-c", FIGURE_IMPORTS, "--profile", "cpu", "--results",
                           str(tmp_path / "results"), "--reports", str(tmp_path / "reports")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "imported: []" in done.stdout
    out = tmp_path / "reports" / "fig-lr-schedules" / "cpu"
    assert {p.name for p in out.iterdir()} >= {"schedules.pdf", "schedules.png", "schedules.csv"}
    manifest = load("fig-lr-schedules", "cpu")
    assert manifest.report["schedules"]["retrain_epochs"] == 7  # "30%" of T = 24: 7.2
    assert manifest.expand() == []


def test_a_schedule_figure_trains_nothing_and_a_table_needs_rows(write_manifest):
    def figure(data):
        data["report"] = {"kind": "schedules", "schedules": {"kinds": ["llr"], "retrain_epochs": 1,
                                                             "steps_per_epoch": 2}}
    with pytest.raises(ConfigError, match="small.toml: rows: a report of kind 'schedules' trains nothing"):
        load(str(write_manifest(lambda data: (figure(data), data.update(goal_sparsities=[], seeds=[])))), "base")
    with pytest.raises(ConfigError, match="small.toml: rows: must not be empty: declare at least one row"):
        load(str(write_manifest(lambda data: data.update(rows=[]))), "base")
    with pytest.raises(ConfigError, match=r"report.schedules: .*kind = \"schedules\""):
        load(str(write_manifest(lambda data: data.update(report={"schedules": {}}))), "base")


def test_the_figure_draws_fixed_schedules_only(write_manifest):
    def figure(data):
        data.update(goal_sparsities=[], seeds=[], rows=[])
        data["report"] = {"kind": "schedules", "schedules": {"kinds": ["llr", "linear"], "retrain_epochs": 1,
                                                             "steps_per_epoch": 2}}
    with pytest.raises(ConfigError, match=r"report.schedules.kinds\[1\]: unknown value 'linear'"):
        load(str(write_manifest(figure)), "base")
