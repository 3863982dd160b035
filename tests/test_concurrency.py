"""Many writers and readers at once: a record is published whole or not at all, so neither
collection nor `prunebench report` ever reads a half-written run directory."""

import json
import multiprocessing
import random
import threading
import time
from pathlib import Path

import pandas as pd
import torch

from bench.cli import main
from bench.runspec import with_parents
from bench.manifest import load
from bench.store import RunStore
from bench.synthetic import synthetic_record
from conftest import tiny_spec

# Writers are forked from a clean server process: a child forked from pytest itself may hang
# in the OpenMP thread pool an earlier test started there.
FORK = multiprocessing.get_context("forkserver")
FORK.set_forkserver_preload(["torch", "pandas", "bench.store", "bench.synthetic"])
FILES = {"config.json", "history.parquet", "record.parquet", "model.pt", "log.txt"}


def slow_filesystem(seconds: float = 0.2):
    """In a writer process: every model and parquet file exists, empty, for ``seconds``
    before its content is written, as on a slow shared filesystem."""
    def slowly(write):
        def written(first, path, *args, **kwargs):
            Path(path).touch()
            time.sleep(seconds)
            return write(first, path, *args, **kwargs)
        return written
    torch.save = slowly(torch.save)
    pd.DataFrame.to_parquet = slowly(pd.DataFrame.to_parquet)


def write(results, spec):
    """What a worker does when its run ends: write the run directory (with an 8 MB model)."""
    RunStore(results).write_run(spec, synthetic_record(spec, random.Random(spec.seed)), [{"epoch": 1, "loss": 1.0}],
                                {"weight": torch.zeros(2_000_000)}, "synthetic")


def finish_at_once(results, spec, barrier):
    slow_filesystem()
    barrier.wait()
    write(results, spec)


def finish_one_after_another(results, specs):
    slow_filesystem()
    for spec in specs:
        write(results, spec)


def whole_or_absent(store: RunStore, run_ids) -> list[str]:
    """Problems a reader sees right now: unreadable records, or finished runs with a file
    missing or unreadable."""
    _, broken = store.collect(run_ids)
    problems = list(broken.values())
    for run_id in run_ids:
        run = store.run_dir(run_id)
        if store.is_done(run_id):
            try:
                assert FILES <= {path.name for path in run.iterdir()}
                assert json.loads((run / "config.json").read_text())["run_id"] == run_id
                assert torch.load(run / "model.pt", weights_only=True)["state_dict"]["weight"].numel() == 2_000_000
                assert (run / "log.txt").read_text() == "synthetic"
            except Exception as error:  # noqa: BLE001 - every kind of half-written file is a finding
                problems.append(f"{run_id}: {error!r}")
    return problems


def test_eight_jobs_finishing_at_once_all_land_once(tmp_path):
    specs = [tiny_spec("dense", seed=seed) for seed in range(6)]
    writers = [*specs, specs[0], specs[1]]  # two runs finish in two workers at the same moment
    barrier = FORK.Barrier(len(writers))
    processes = [FORK.Process(target=finish_at_once, args=(tmp_path, spec, barrier)) for spec in writers]
    for process in processes:
        process.start()
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            seen.extend(whole_or_absent(RunStore(tmp_path), [spec.run_id for spec in specs]))

    watching = threading.Thread(target=reader)
    watching.start()
    for process in processes:
        process.join(timeout=120)
    stop.set()
    watching.join()

    assert [process.exitcode for process in processes] == [0] * len(writers)
    assert seen == []
    records, broken = RunStore(tmp_path).collect(spec.run_id for spec in specs)
    assert broken == {} and sorted(records["run_id"]) == sorted(spec.run_id for spec in specs)
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == sorted(spec.run_id for spec in specs)
    assert whole_or_absent(RunStore(tmp_path), [spec.run_id for spec in specs]) == []


def test_report_while_jobs_write_never_reads_a_half_written_run(write_manifest, tmp_path):
    path = write_manifest(lambda data: data.update(seeds=[0, 1, 2]))
    specs = with_parents(load(str(path), "base").expand())
    results, reports = tmp_path / "results", tmp_path / "reports"
    writer = FORK.Process(target=finish_one_after_another, args=(results, specs))
    writer.start()
    renders = 0
    while writer.is_alive() or renders == 0:
        assert main(["report", str(path), "--profile", "base", "--results", str(results),
                     "--reports", str(reports)]) == 0
        renders += 1
        out = reports / "small" / "base"
        failures = pd.read_csv(out / "failures.csv")
        assert set(failures["reason"]) <= {"not run"}, failures
        if (out / "selection.csv").exists():
            selected = pd.read_csv(out / "selection.csv")["run_ids"].str.split().explode()
            assert all(RunStore(results).is_done(run_id) for run_id in selected)
    writer.join()
    assert writer.exitcode == 0 and renders >= 2
    assert main(["report", str(path), "--profile", "base", "--results", str(results), "--reports", str(reports)]) == 0
    assert pd.read_csv(reports / "small" / "base" / "failures.csv").empty


def test_a_synthetic_record_has_the_columns_and_types_of_a_real_one(train_tiny):
    real = train_tiny("imp", {"schedule": "ft", "cycles": 1, "retrain_epochs": 1}, goal=0.9, epochs=1).record
    synthetic = synthetic_record(tiny_spec("imp", {"schedule": "ft", "cycles": 1, "retrain_epochs": 1}, epochs=1),
                                 random.Random(0))
    assert list(synthetic) == list(real)
    assert {key: type(value) for key, value in synthetic.items() if value is not None} == \
        {key: type(value) for key, value in real.items() if value is not None}
