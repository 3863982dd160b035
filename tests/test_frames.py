"""``from bench import records, history``: the stored runs as pandas frames."""

import subprocess
import sys

import pytest

from bench import history, records
from bench.cli import main
from bench.manifest import load


def test_records_and_history_of_a_run_grid(dirs, write_manifest):
    results, _, where = dirs
    path = str(write_manifest())
    assert main(["run", path, "--profile", "base", "--executor", "inline", "--quiet", "--no-report", *where]) == 0
    specs = load(path, "base").expand()

    everything = records(results=results)
    assert sorted(everything["run_id"]) == sorted({spec.run_id for spec in specs})
    assert "label" in everything and "test_accuracy" in everything

    table = records(path, "base", results=results)
    assert sorted(zip(table["label"], table["run_id"])) == sorted((spec.label, spec.run_id) for spec in specs)
    imp = table[table["label"] == "IMP"]
    assert sorted(imp["goal_sparsity"].unique()) == [0.5, 0.9]

    dense = table.loc[table["label"] == "Dense", "run_id"].item()
    epochs = history(dense, results=results)
    assert epochs["epoch"].tolist() == [1, 2]
    assert epochs["val_accuracy"].between(0, 1).all()


def test_history_of_an_unknown_run_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished run abc under"):
        history("abc", results=tmp_path)


def test_importing_the_package_loads_no_pandas():
    code = "import sys, bench; assert 'pandas' not in sys.modules; bench.records; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
