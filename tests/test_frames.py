"""``from bench import records, history``: the stored runs as pandas frames."""

import math
import random
import shutil
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

from bench import history, records
from bench.cli import main
from bench.manifest import load
from bench.store import RunStore
from bench.synthetic import synthetic_record

from conftest import tiny_spec


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


def test_records_stored_before_a_column_existed_load_beside_newer_ones(tmp_path):
    store = RunStore(tmp_path)
    old, new = tiny_spec("dense", seed=0), tiny_spec("dense", seed=1)
    before = {key: value for key, value in synthetic_record(old, random.Random(0)).items()
              if key not in ("node_sparsity", "disk_bytes")}  # a record from before these columns
    store.write_run(old, before, [{"epoch": 1}], {}, "old")
    store.write_run(new, synthetic_record(new, random.Random(1)) | {"node_sparsity": 0.0, "disk_bytes": 10.0},
                    [{"epoch": 1, "ram_bytes": 1.0}], {}, "new")
    table = records(results=tmp_path).set_index("run_id")
    assert math.isnan(table.loc[old.run_id, "node_sparsity"]) and table.loc[new.run_id, "disk_bytes"] == 10.0
    assert "ram_bytes" not in history(old.run_id, results=tmp_path)


def test_one_hyperparameter_name_with_two_types_in_two_methods_collects(tmp_path):
    """Dense's mask_dynamics is a pruning fraction, rewinding's a flag: a grid of both (make
    reproduce-all) still collects, each record keeping its value."""
    store = RunStore(tmp_path)
    fraction, flag = tiny_spec("dense", seed=0), tiny_spec("dense", seed=1)
    store.write_run(fraction, synthetic_record(fraction, random.Random(0)) | {"hp_mask_dynamics": 0.2},
                    [{"epoch": 1}], {}, "fraction")
    store.write_run(flag, synthetic_record(flag, random.Random(1)) | {"hp_mask_dynamics": True},
                    [{"epoch": 1}], {}, "flag")
    table, broken = store.collect([fraction.run_id, flag.run_id])
    assert broken == {}
    assert table.set_index("run_id")["hp_mask_dynamics"].to_dict() == {fraction.run_id: 0.2, flag.run_id: True}


def test_history_of_an_unknown_run_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished run abc under"):
        history("abc", results=tmp_path)


def test_importing_the_package_loads_no_pandas():
    code = "import sys, bench; assert 'pandas' not in sys.modules; bench.records; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def stored(store: RunStore, seeds, **extra) -> list:
    specs = [tiny_spec("dense", seed=seed) for seed in seeds]
    for spec in specs:
        store.write_run(spec, synthetic_record(spec, random.Random(spec.seed)) | extra, [{"epoch": 1}], {}, "")
    return specs


def test_records_collected_again_come_from_the_cache_in_the_order_asked(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    specs = stored(store, range(4))
    first, _ = store.collect(spec.run_id for spec in specs)
    monkeypatch.setattr("bench.store.pq.ParquetFile", lambda path: pytest.fail(f"{path} read again"))
    asked = [specs[2].run_id, specs[0].run_id, specs[3].run_id]
    again, broken = store.collect(asked)
    assert broken == {} and list(again["run_id"]) == asked
    pd.testing.assert_frame_equal(again, first.set_index("run_id").loc[asked].reset_index()[list(first.columns)])


def test_a_record_written_again_after_it_was_collected_is_read_again(tmp_path):
    store = RunStore(tmp_path)
    spec, = stored(store, [0], test_accuracy=0.5)
    assert store.collect([spec.run_id])[0]["test_accuracy"].tolist() == [0.5]
    shutil.rmtree(store.run_dir(spec.run_id))
    stored(store, [0], test_accuracy=0.75)
    assert store.collect([spec.run_id])[0]["test_accuracy"].tolist() == [0.75]


def test_a_cache_that_does_not_read_is_passed_over_and_written_anew(tmp_path):
    store = RunStore(tmp_path)
    specs = stored(store, range(2), test_accuracy=0.5)
    store.collect([specs[0].run_id])
    shard, = (tmp_path / ".collected").glob("*.parquet")
    shard.write_bytes(b"not parquet")
    table, broken = store.collect(spec.run_id for spec in specs)
    assert broken == {} and table["test_accuracy"].tolist() == [0.5, 0.5]
    assert len(pq.read_table(shard)) == 2
