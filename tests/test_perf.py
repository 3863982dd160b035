"""`make bench-perf QUICK=1` runs every section and writes its files (no timing is asserted)."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench.perf.harness import dense_manifest
from bench.perf.split import CATEGORIES, where_time_goes
from bench.perf.timing import figure, interleaved
from bench.spans import BATCHING, EVALUATION, HOOKS, START_UP, TRAINING

ROOT = Path(__file__).parents[1]
SECTIONS = ["1. masking", "2. per method", "3. harness", "4. scaling", "5. reporting at scale", "6. end to end",
            "7. memory", "8. 1D layers", "9. where the time goes", "10. whole targets"]

pytestmark = [pytest.mark.slow, pytest.mark.perf]


def test_quick_bench_perf_writes_its_parquet_and_report(tmp_path):
    made = subprocess.run(["make", "-C", str(ROOT), "bench-perf", "QUICK=1", f"RESULTS={tmp_path / 'results'}",
                           f"REPORTS={tmp_path / 'reports'}"], capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stdout + made.stderr
    (stored,) = (tmp_path / "results" / "perf").glob("*.parquet")
    figures = pd.read_parquet(stored)
    assert set(figures["section"]) == set(SECTIONS)
    assert (figures["median"] > 0).all() and (figures["low"] <= figures["median"]).all()
    assert (figures["median"] <= figures["high"]).all() and figures["quick"].all()
    methods = figures[figures["section"] == "2. per method"]["name"]
    assert {f"resnet1d / MNIST-1D: {method} / dense" for method in ("gmp", "dnw", "str", "dst", "cs")} <= set(methods)
    report = (tmp_path / "reports" / "perf" / "perf.md").read_text()
    assert all(f"## {section}" in report for section in SECTIONS)
    assert f"`{figures['host'].iloc[0]}`" in report and "QUICK=1" in report


def test_interleaved_ratios_alternate_a_and_b():
    calls = []
    ratios = interleaved(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4 and len(ratios) == 3
    shown = figure("s", "n", [3.0, 1.0, 2.0], "x", goal=1.5)
    assert (shown.median, shown.low, shown.high, shown.met) == (2.0, 1.0, 3.0, False)


def test_where_the_time_goes_splits_all_worker_time_on_a_tiny_grid(tmp_path):
    figures, per_epoch = where_time_goes(dense_manifest(tmp_path, runs=4, epochs=1), "base", jobs=2)
    shares = {shown.name: shown.median for shown in figures if shown.name in CATEGORIES}
    assert list(shares) == list(CATEGORIES) and all(shown.unit == "%" for shown in figures if shown.name in shares)
    assert sum(shares.values()) == pytest.approx(100.0)
    assert min(shares.values()) >= 0  # idle is what the rest leaves: nothing counted twice
    assert all(shares[category] > 0 for category in (TRAINING, HOOKS, BATCHING, EVALUATION, START_UP))
    (outside,) = [shown for shown in figures if shown.name == "outside training epochs"]
    assert outside.median == pytest.approx(100 - shares[TRAINING] - shares[HOOKS] - shares[BATCHING])
    assert per_epoch > 0
