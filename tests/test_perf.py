"""`make bench-perf QUICK=1` runs every section and writes its files (no timing is asserted)."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench.perf.timing import figure, interleaved

ROOT = Path(__file__).parents[1]
SECTIONS = ["1. masking", "2. per method", "3. harness", "4. scaling", "5. reporting at scale", "6. end to end",
            "7. memory", "8. 1D layers"]

pytestmark = [pytest.mark.slow, pytest.mark.perf]


def test_quick_bench_perf_writes_its_parquet_and_report(tmp_path):
    made = subprocess.run(["make", "-C", str(ROOT), "bench-perf", "QUICK=1", f"RESULTS={tmp_path / 'results'}",
                           f"REPORTS={tmp_path / 'reports'}"], capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stdout + made.stderr
    (stored,) = (tmp_path / "results" / "perf").glob("*.parquet")
    figures = pd.read_parquet(stored)
    assert sorted(set(figures["section"])) == SECTIONS
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
