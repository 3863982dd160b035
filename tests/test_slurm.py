"""The slurm executor against a real cluster (tests/slurm-local.sh): the smoke grid of
table-imp-vs-stable runs as one SLURM job array per stage, its records equal those of the
inline executor, and a second run submits nothing."""

import os
import re
import subprocess
import sys
import time

import pytest

from bench.runspec import with_parents
from bench.manifest import load
from bench.store import RunStore
from bench.train import CHECKPOINT_SECONDS

pytestmark = pytest.mark.slurm

TARGET, PROFILE = "table-imp-vs-stable", "smoke"
SPECS = with_parents(load(TARGET, PROFILE).expand())


def prunebench(results, data_root, *options) -> subprocess.CompletedProcess:
    """`prunebench run` of the smoke grid in a subprocess, so that a hang fails instead of blocking."""
    command = [sys.executable, "-m", "bench.cli", "run", TARGET, "--profile", PROFILE, "--results", str(results),
               "--data-root", str(data_root), "--no-report", "--quiet", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def records(results) -> dict[str, tuple[float, float]]:
    store = RunStore(results)
    return {spec.run_id: (record["test_accuracy"], record["sparsity"])
            for spec in SPECS for record in [store.read_record(spec.run_id)]}


def job_folders(results) -> list[str]:
    """Names in submitit's folder: one per array (its id) and one per task (``<array>_<index>``)."""
    return sorted(path.name for path in (results / ".submitit").iterdir() if not path.name.startswith("."))


@pytest.fixture(scope="module")
def slurm_results(slurm_cluster, data_root, tmp_path_factory):
    results = tmp_path_factory.mktemp("slurm-results")
    run = prunebench(results, data_root, "--executor", "slurm")
    assert run.returncode == 0, run.stdout + run.stderr
    return results


def test_grid_runs_as_job_arrays_with_the_inline_records(slurm_results, smoke_inline):
    assert records(slurm_results) == records(smoke_inline[0])

    names = job_folders(slurm_results)
    tasks = [name for name in names if re.fullmatch(r"\d+_\d+", name)]
    arrays = sorted({task.split("_")[0] for task in tasks})
    assert len(tasks) == len(SPECS) and len(arrays) == len({spec.stage for spec in SPECS})
    assert sorted(set(names) - set(tasks)) == arrays
    states = final_states(arrays, tasks)
    assert sorted(states) == sorted(tasks) and set(states.values()) == {"COMPLETED"}


def final_states(jobs: list[str], tasks: list[str] = (), patience: float = 60.0) -> dict[str, str]:
    """Each task's SLURM state once every one of ``tasks`` is in the accounting and none is
    still running: a task's result file is written before slurmctld hears that the task
    ended, so accounting may lag the records briefly (a task may not be listed yet)."""
    deadline = time.monotonic() + patience
    while True:
        sacct = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(jobs)],
                               capture_output=True, text=True, check=True)
        states = dict(line.split("|") for line in sacct.stdout.splitlines())
        settled = set(tasks) <= set(states) and not {"RUNNING", "COMPLETING", "PENDING"} & set(states.values())
        if settled or time.monotonic() > deadline:
            return states
        time.sleep(1)


def test_second_run_submits_nothing(slurm_results, data_root):
    before = job_folders(slurm_results)
    again = prunebench(slurm_results, data_root, "--executor", "slurm")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(SPECS)} runs, {len(SPECS)} done, 0 to run" in again.stdout
    assert job_folders(slurm_results) == before


def job_of(results) -> str:
    """The SLURM job id of the only job submitted to ``results`` (a one-task batch is a plain job)."""
    (job,) = [name for name in job_folders(results) if re.fullmatch(r"\d+(_\d+)?", name)]
    return job


@pytest.mark.parametrize("interrupt", [
    ["scancel", "--signal=USR2"],  # what a preempting cluster sends: submitit checkpoints and requeues
    ["scontrol", "requeue"],       # SIGTERM, then a kill after KillWait: requeued without submitit's help
])
def test_a_preempted_run_resumes_to_the_record_of_an_uninterrupted_one(
        slurm_cluster, write_manifest, data_root, tmp_path, interrupt):
    def one_long_run(data):
        data["rows"] = [{"label": "Dense", "method": "dense"}]
        data["training"]["epochs"] = 16
    path = write_manifest(one_long_run)
    (spec,) = load(str(path), "base").expand()
    results = tmp_path / "slurm"
    command = [sys.executable, "-m", "bench.cli", "run", str(path), "--profile", "base", "--executor", "slurm",
               "--cpus-per-task", "1", "--gpus-per-node", "0", "--mem-gb", "2", "--time-min", "10",
               "--results", str(results), "--data-root", str(data_root), "--no-report", "--quiet"]
    every_epoch = {**os.environ, CHECKPOINT_SECONDS: "0"}  # the job's short epochs would not reach the default
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=every_epoch)
    checkpoint = RunStore(results).checkpoint_path(spec.run_id)
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), "the job never wrote a checkpoint"
    job = job_of(results)
    subprocess.run([*interrupt, job], check=True)
    start_when_requeued(job)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, out + err

    log = (RunStore(results).run_dir(spec.run_id) / "log.txt").read_text()
    assert "resumed from" in log, "the requeued job started over instead of resuming"
    reference = prunebench_inline(path, tmp_path / "inline", data_root)
    resumed = RunStore(results).read_record(spec.run_id)
    for key in ("test_accuracy", "val_accuracy", "sparsity", "epochs"):
        assert resumed[key] == reference[key], key


def start_when_requeued(job: str, timeout: float = 120) -> None:
    """Once the job is back in the queue, let it start now rather than after the two minutes
    SLURM holds a requeued job."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
        if "JobState=PENDING" in shown and "Restarts=0" not in shown:
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
            return
        time.sleep(0.5)
    raise AssertionError(f"job {job} was not requeued within {timeout} s")


def prunebench_inline(path, results, data_root) -> dict:
    (spec,) = load(str(path), "base").expand()
    run = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(path), "--profile", "base", "--executor",
                          "inline", "--results", str(results), "--data-root", str(data_root), "--no-report",
                          "--quiet"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return RunStore(results).read_record(spec.run_id)


def test_no_wait_chains_the_stages_by_dependency_and_status_follows_them(slurm_cluster, write_manifest, data_root,
                                                                          tmp_path):
    path = write_manifest()  # dense parents, then IMP runs that prune them: two stages
    specs = with_parents(load(str(path), "base").expand())
    results = tmp_path / "results"
    base = [str(path), "--profile", "base", "--results", str(results)]
    submit = subprocess.run([sys.executable, "-m", "bench.cli", "run", *base, "--executor", "slurm", "--no-wait",
                             "--cpus-per-task", "1", "--time-min", "10", "--data-root", str(data_root)],
                            capture_output=True, text=True, timeout=120)
    assert submit.returncode == 0, submit.stdout + submit.stderr
    parents, children = re.search(r"submitted job arrays (\d+), (\d+)", submit.stdout).groups()
    assert not any(RunStore(results).is_done(spec.run_id) for spec in specs if spec.stage == 1)
    script = (results / ".submitit" / children / f"{children}_submission.sh").read_text()
    assert f"#SBATCH --dependency=afterany:{parents}" in script

    def status() -> str:
        shown = subprocess.run([sys.executable, "-m", "bench.cli", "status", *base], capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr
        return shown.stdout

    first = status()
    assert "SLURM tasks:" in first and f"{len(specs)} done" not in first
    deadline = time.time() + 600
    while "SLURM tasks:" in (last := status()) and time.time() < deadline:
        time.sleep(2)
    assert f"{len(specs)} done, 0 failed, 0 running, 0 queued" in last, last
    assert all(RunStore(results).read_record(spec.run_id)["status"] == "ok" for spec in specs)
    final_states([parents, children])
    sacct = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,Start,End", "-j", f"{parents},{children}"],
                           capture_output=True, text=True, check=True).stdout
    times = {job: (start, end) for job, start, end in (line.split("|") for line in sacct.splitlines())}
    parents_end = max(end for job, (start, end) in times.items() if job.split("_")[0] == parents)
    assert all(start >= parents_end for job, (start, end) in times.items() if job.split("_")[0] == children)


def test_no_wait_needs_the_slurm_executor(write_manifest, tmp_path, capsys):
    from bench.cli import main

    code = main(["run", str(write_manifest()), "--profile", "base", "--results", str(tmp_path / "results"),
                 "--executor", "local", "--no-wait"])
    assert code == 2 and "--no-wait" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
