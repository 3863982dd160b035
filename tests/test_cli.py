"""The command line end to end: the smoke profile, resume, failures, bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import bench.execute
from bench.cli import main
from bench.execute import claim
from bench.store import RunStore
from bench.manifest import load
from bench.runspec import with_parents
from methods.core.masks import prunable_modules
from models import build_model

pytestmark = pytest.mark.slow


def run_ids(results: Path) -> set[str]:
    return {p.name for p in (results / "runs").iterdir() if not p.name.startswith(".")} if (results / "runs").exists() else set()


def test_smoke_profile_end_to_end_then_nothing_to_rerun(smoke_inline, data_root, capsys):
    results, reports = smoke_inline  # `prunebench run table-imp-vs-stable --profile smoke --executor inline`
    where = ["--results", str(results), "--reports", str(reports), "--data-root", str(data_root)]
    manifest = load("table-imp-vs-stable", "smoke")
    specs = manifest.expand()
    expected = {s.run_id for s in specs} | {s.parent.run_id for s in specs if s.parent}
    assert run_ids(results) == expected
    for run_id in expected:
        run = results / "runs" / run_id
        assert {"config.json", "history.parquet", "record.parquet", "model.pt", "log.txt"} <= {p.name for p in run.iterdir()}
    records = pd.concat(pd.read_parquet(results / "runs" / r / "record.parquet") for r in expected)
    assert (records["status"] == "ok").all()
    assert set(records["method"]) == {row.method for row in manifest.rows}  # every method ran
    model = build_model("resnet1d", 10, 1)
    n = sum(m.weight.numel() for m in prunable_modules(model))
    given = records[records["goal_sparsity"].notna()]
    assert (given["sparsity"] == (given["goal_sparsity"] * n).round() / n).all()  # specifiable: exact
    pruned = records[records["method"] == "imp"]
    # IMP loads the dense parent (its epochs include pretraining).
    for _, record in pruned.iterrows():
        assert record["epochs"] == manifest.training["epochs"] + record["hp_cycles"] * record["hp_retrain_epochs"]
        assert record["parent_run_id"] in expected
        assert 0 < record["pruning_stability"] <= 1.5
        state = torch.load(results / "runs" / record["run_id"] / "model.pt", weights_only=True)["state_dict"]
        masks = {k: v for k, v in state.items() if k.endswith("weight_mask")}
        assert masks, "the masks are saved with the model"
        for key, mask in masks.items():
            assert not state[key.replace("weight_mask", "weight")][~mask].any()
    out = reports / "table-imp-vs-stable" / "smoke"
    for name in ("table.tex", "standalone.tex", "pareto.pdf", "pareto.png", "selection.csv"):
        assert (out / name).stat().st_size > 0
    selection = pd.read_csv(out / "selection.csv")
    backing = {r for ids in selection["run_ids"] for r in ids.split()}
    assert backing <= expected

    capsys.readouterr()
    assert main(["run", "table-imp-vs-stable", "--profile", "smoke", "--executor", "inline", "--quiet", *where]) == 0
    assert f"{len(expected)} done, 0 to run" in capsys.readouterr().out

    # The figure and the second layout render from the same runs, training nothing.
    for target, files in (("fig-stability", ["stability.pdf", "stability.png"]),
                          ("table-bimp-vs-stable", ["table.tex", "pareto.png"])):
        assert main(["report", target, "--profile", "smoke", "--results", str(results), "--reports", str(reports)]) == 0
        for name in files:
            assert (reports / target / "smoke" / name).stat().st_size > 0
    assert "Images/s" in (reports / "table-bimp-vs-stable" / "smoke" / "table.tex").read_text()
    assert run_ids(results) == expected
    claims = pd.read_csv(out / "claims.csv")
    assert len(claims) == len(manifest.claims) and set(claims["verdict"]) <= {"agree", "disagree", "cannot tell"}
    # A diagnostic row is selected and judged for the belief it tests, but is no row of the table.
    diagnostic = [row.label for row in manifest.rows if row.diagnostic]
    assert diagnostic and set(diagnostic) <= set(selection["label"])
    assert not any(label in (out / "table.tex").read_text() for label in diagnostic)
    believed = claims[claims["belief"].notna()]
    assert len(believed) and believed["belief_verdict"].isin(["agree", "disagree", "cannot tell"]).all()
    comparison = pd.read_csv(out / "paper-vs-ours.csv")
    assert comparison.loc[comparison["label"] == "IMP", "paper_accuracy"].tolist() == [92.79, 87.93]


def test_dry_run_of_the_paper_profile_counts_and_writes_nothing(dirs, capsys):
    results, reports, where = dirs
    assert main(["run", "table-imp-vs-stable", "--profile", "paper", "--dry-run", *where]) == 0
    out = capsys.readouterr().out
    # Per row, 16 (lr, wd) points x 6 sparsities x 3 seeds unless said: Dense 16 x 3 = 48;
    # IMP+ x 16 (T_rt, J) = 4608 (IMP's runs are a subset of them); BIMP x 3 T_0 x 3 J = 2592;
    # GMP and DPF x 2 step counts = 576 each; GSM x 3 momenta = 864; DNW and LC 288 each;
    # STR (16 x 9 + 4 x 2 x 4) x 3 = 528; CS 4 x 11 x 2 x 3 = 264; DST (16 x 5 + 4 x 2 x 3) x 3 = 312;
    # the diagnostic rows: DPF with uniform selection 576, BIMP tuned shares BIMP's runs.
    total = 48 + 4608 + 2592 + 576 * 2 + 864 + 288 * 2 + 528 + 264 + 312 + 576
    assert f"{total} runs, 0 done, {total} to run" in out
    # The search adds at most one configuration per goal and round: 3 rows x 3 rounds x 6 goals x 3 seeds.
    first = 528 + 264 + 312
    assert f"at most {3 * 3 * 6 * 3} more runs, {100 * 162 / first:.1f}% of the searched rows' first grid" in out
    assert not results.exists() and not reports.exists()


def test_a_failing_run_is_recorded_and_the_rest_completes(dirs, write_manifest, monkeypatch, capsys):
    results, reports, where = dirs
    path = str(write_manifest())
    manifest = load(path, "base")
    victim = next(s for s in manifest.expand() if s.method == "imp")
    real = bench.execute.train_run

    def flaky(spec, *args, **kwargs):
        if spec.run_id == victim.run_id:
            raise RuntimeError("injected failure")
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(bench.execute, "train_run", flaky)
    code = main(["run", path, "--profile", "base", "--executor", "inline", "--quiet", *where])
    assert code == 1
    failed = json.loads((results / "runs" / victim.run_id / "failed.json").read_text())
    assert "injected failure" in failed["error"] and "Traceback" in failed["error"]
    done = [p for p in (results / "runs").iterdir() if (p / "record.parquet").exists()]
    assert len(done) == len(run_ids(results)) - 1 == len(manifest.expand()) - 1
    failures = pd.read_csv(reports / "small" / "base" / "failures.csv")
    assert failures["run_id"].tolist() == [victim.run_id]
    # The next run retries only the failed one.
    monkeypatch.setattr(bench.execute, "train_run", real)
    capsys.readouterr()
    assert main(["run", path, "--profile", "base", "--executor", "inline", "--quiet", *where]) == 0
    assert ", 1 to run" in capsys.readouterr().out
    assert (results / "runs" / victim.run_id / "record.parquet").exists()


def test_a_diverging_run_is_recorded_as_diverged(dirs, write_manifest):
    results, reports, where = dirs

    def explode(data):
        data["rows"] = [{"label": "Dense", "method": "dense"}]
        data["training"]["lr"] = 1e12
    path = write_manifest(explode)
    assert main(["run", str(path), "--profile", "base", "--executor", "inline", "--quiet", *where]) == 0
    (run,) = run_ids(results)
    record = pd.read_parquet(results / "runs" / run / "record.parquet").iloc[0]
    assert record["status"] == "diverged"


def workers_of(results: Path) -> list[int]:
    """Processes (other than pgrep) whose command line names the results folder."""
    found = subprocess.run(["pgrep", "-f", str(results)], capture_output=True, text=True).stdout
    return [int(pid) for pid in found.split()]


def test_local_grid_killed_half_way_resumes_cleanly(dirs, write_manifest):
    results, reports, where = dirs
    path = str(write_manifest(lambda data: data.update(goal_sparsities=[0.5, 0.8, 0.9, 0.95])))
    command = [sys.executable, "-m", "bench.cli", "run", path, "--profile", "base", "--jobs", "2",
               "--quiet", "--no-report", *where]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and sum((p / "record.parquet").exists() for p in (results / "runs").glob("*")) < 2:
        time.sleep(0.2)  # the dense parent and one pruned run: workers of the second stage are busy
    os.kill(process.pid, signal.SIGKILL)  # prunebench alone: its local workers must end with it
    process.wait()
    deadline = time.time() + 10
    while time.time() < deadline and workers_of(results):
        time.sleep(0.5)
    assert not workers_of(results), "local workers outlived the killed prunebench"
    finished_before = {p.name for p in (results / "runs").iterdir() if (p / "record.parquet").exists()}
    specs = load(path, "base").expand()
    expected = {s.run_id for s in specs} | {s.parent.run_id for s in specs if s.parent}
    assert finished_before and finished_before < expected, "the kill did not land half-way"

    rerun = subprocess.run(command, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(expected)} runs, {len(finished_before)} done" in rerun.stdout
    assert run_ids(results) == expected
    for run_id in expected:
        assert pd.read_parquet(results / "runs" / run_id / "record.parquet")["run_id"].tolist() == [run_id]


def test_list_and_validate(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "table-imp-vs-stable" in out and "imp" in out and "resnet56" in out and "mnist1d" in out
    assert main(["validate", "--all"]) == 0
    assert "table-imp-vs-stable [paper]: ok" in capsys.readouterr().out


def test_status_counts_and_clean_keeps_every_record(dirs, write_manifest, capsys):
    results, reports, where = dirs
    path = str(write_manifest())
    assert main(["run", path, "--profile", "base", "--executor", "inline", "--quiet", "--no-report", *where]) == 0
    store = RunStore(results)
    specs = load(path, "base").expand()
    done, queued = specs[0].run_id, "f" * 16  # a run of the grid, and one that never ran
    (store.runs / ".checkpoints").mkdir(parents=True, exist_ok=True)
    store.checkpoint_path(done).write_bytes(b"stale")
    store.checkpoint_path(queued).write_bytes(b"resume me")
    (store.runs / f".tmp-{queued}-abc").mkdir()
    (results / ".submitit" / "123").mkdir(parents=True)
    shutil.rmtree(store.run_dir(specs[1].run_id))  # this one is being redone:
    with claim(store, specs[1].run_id) as obtained:  # a worker holds it
        assert obtained and store.is_running(specs[1].run_id)
        capsys.readouterr()
        assert main(["status", path, "--profile", "base", "--results", str(results)]) == 0
        assert f"{len(specs) - 1} done, 0 failed, 1 running, 0 queued" in capsys.readouterr().out
        assert main(["clean", "--results", str(results)]) == 0
        assert (results / ".submitit").exists(), "submitit's files stay while a worker runs"
    assert not store.checkpoint_path(done).exists() and store.checkpoint_path(queued).exists()
    assert not (store.runs / f".tmp-{queued}-abc").exists()
    assert main(["clean", "--results", str(results)]) == 0
    assert not (results / ".submitit").exists()
    assert all(store.is_done(spec.run_id) for spec in specs if spec is not specs[1])


def test_a_corrupt_record_is_named_and_its_run_executed_again(dirs, write_manifest, capsys):
    results, reports, where = dirs
    path = str(write_manifest())
    run = ["run", path, "--profile", "base", "--executor", "inline", "--quiet", "--no-report", *where]
    assert main(run) == 0
    victim = load(path, "base").expand()[-1].run_id
    record = results / "runs" / victim / "record.parquet"
    record.write_bytes(record.read_bytes()[:100])  # truncated, as by a full disk
    capsys.readouterr()
    assert main(run) == 0
    captured = capsys.readouterr()
    assert f"unreadable record, run {victim} will run again: {record}" in captured.err
    assert ", 1 to run" in captured.out
    assert pd.read_parquet(record)["run_id"].tolist() == [victim]


def test_local_and_inline_executors_give_bitwise_identical_records(tmp_path, data_root, write_manifest):
    path = str(write_manifest())
    columns = ["run_id", "test_accuracy", "val_accuracy", "sparsity", "accuracy_after_prune", "threads"]
    frames = []
    for executor in ("inline", "local"):
        results = tmp_path / executor
        assert main(["run", path, "--profile", "base", "--executor", executor, "--quiet", "--no-report",
                     "--results", str(results), "--data-root", str(data_root)]) == 0
        frames.append(pd.concat(pd.read_parquet(p / "record.parquet") for p in sorted((results / "runs").glob("[!.]*")))
                      [columns].reset_index(drop=True))
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True)


def test_default_jobs_fit_the_cores_and_the_memory(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(bench.execute, "machine_memory_gb", lambda: 15.5)
    assert bench.execute.default_jobs(threads=1, mem_gb=2) == 7  # 15.5 GiB hold 7 runs of 2 GiB
    assert bench.execute.default_jobs(threads=2, mem_gb=2) == 4  # 8 cores hold 4 runs of 2 threads
    assert bench.execute.default_jobs(threads=1, mem_gb=32) == 1  # never fewer than one


def test_alive_sees_a_killed_process_as_gone_before_and_after_it_is_reaped():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert bench.execute.alive(child.pid)
    child.kill()
    deadline = time.time() + 10
    while bench.execute.alive(child.pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not bench.execute.alive(child.pid)
    assert Path(f"/proc/{child.pid}").exists()  # still a zombie, not reaped: alive() saw through it
    child.wait()
    assert not bench.execute.alive(child.pid)


REPORT_IMPORTS = """
import sys
from bench.cli import main
code = main(["report", *sys.argv[1:]])
print("imported:", sorted(name for name in ("torch", "methods", "models") if name in sys.modules))
sys.exit(code)
"""


def test_a_report_of_stored_runs_imports_neither_torch_nor_methods_nor_models(dirs, write_manifest):
    results, reports, where = dirs
    path = write_manifest()
    assert main(["run", str(path), "--profile", "base", "--executor", "inline", "--quiet", "--no-report", *where]) == 0

    def report():
        return subprocess.run([sys.executable, "-c", REPORT_IMPORTS, str(path), "--profile", "base", "--results",
                               str(results), "--reports", str(reports)], capture_output=True, text=True, timeout=120)

    stored = report()
    assert stored.returncode == 0, stored.stderr
    assert "imported: []" in stored.stdout
    table = (reports / "small" / "base" / "table.tex").read_text()
    assert "IMP" in table and "Dense" in table

    # An edited manifest no longer matches the stored run list: the report expands it afresh.
    path.write_text(path.read_text().replace('"test table"', '"edited table"'))
    edited = report()
    assert edited.returncode == 0 and "imported: ['methods', 'models', 'torch']" in edited.stdout, edited.stderr
    assert "edited table" in (reports / "small" / "base" / "table.tex").read_text()
    assert "imported: []" in report().stdout  # and stores the new list


def test_targets_run_together_train_their_shared_runs_once(dirs, write_manifest, capsys):
    """Two targets whose IMP rows prune the same dense parent: one grid, the parent trained
    once, both reports rendered; --dry-run first counts the shared runs and trains nothing."""
    results, reports, where = dirs

    def other(data):
        data["rows"] = [data["rows"][1]]
        data["goal_sparsities"] = [0.9]
    first, second = str(write_manifest()), str(write_manifest(other, name="other.toml"))
    parents = {spec.parent.run_id for path in (first, second) for spec in load(path, "base").expand() if spec.parent}
    assert len(parents) == 1
    alone = [run_ids_needed(path) for path in (first, second)]
    together, shared = alone[0] | alone[1], alone[0] & alone[1]
    assert shared
    assert main(["run", first, second, "--profile", "base", "--dry-run", *where]) == 0
    assert (f"2 targets [base]: {len(together)} runs, 0 done, {len(together)} to run" in capsys.readouterr().out
            and not results.exists())
    assert main(["run", first, second, "--profile", "base", "--executor", "inline", "--quiet", *where]) == 0
    assert f"{len(shared)} runs are shared between targets" in capsys.readouterr().out
    assert run_ids(results) == together
    assert (reports / "small" / "base").is_dir() and (reports / "other" / "base").is_dir()


def run_ids_needed(*paths: str) -> set[str]:
    return {spec.run_id for path in paths for spec in with_parents(load(path, "base").expand())}
