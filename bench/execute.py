"""Executing a grid of runs: inline, locally through submitit, or on SLURM through submitit.

Runs are grouped in stages (dense parents first, then the runs that prune them). A stage's
pending runs are handed to workers; a worker claims a run with an exclusive file lock
(released by the OS if the worker dies), skips runs that are finished, and records every
outcome, so a failing run never stops the rest of the grid and a rerun executes only what
is missing. Local workers are our own throttle: ``jobs`` workers share the stage.
"""

import fcntl
import getpass
import math
import os
import re
import shutil
import subprocess
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
import submitit
from tqdm import tqdm

from methods import METHODS

from .errors import ConfigError
from .runspec import RunSpec
from .store import RunStore
from .train import train_run

EXECUTORS = ("inline", "local", "slurm")


@contextmanager
def claim(store: RunStore, run_id: str) -> Iterator[bool]:
    """Hold an exclusive, non-blocking lock on a run; yields whether it was obtained."""
    path = store.lock_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def execute(spec: RunSpec, store: RunStore, data_root: str) -> str:
    """Run one spec, resuming from its checkpoint if it has one, and record its outcome:
    'ok', 'diverged' or 'failed'."""
    lines: list[str] = []
    checkpoint = store.checkpoint_path(spec.run_id)
    try:
        parent = None
        if spec.parent is not None:
            if not store.is_done(spec.parent.run_id):
                raise RuntimeError(f"parent run {spec.parent.run_id} did not finish")
            parent = store.load_parent(spec.parent.run_id)
        result = train_run(spec, data_root, parent, log=lines.append, checkpoint=checkpoint)
    except Exception:  # noqa: BLE001 - any failure of one run is recorded, never raised
        store.write_failure(spec, traceback.format_exc(), "\n".join(lines))
        checkpoint.unlink(missing_ok=True)
        return "failed"
    store.write_run(spec, result.record, result.history, result.state_dict, "\n".join(lines))
    checkpoint.unlink(missing_ok=True)
    return result.record["status"]


def work(specs: list[RunSpec], results: str, data_root: str) -> dict[str, str]:
    """A worker: execute every spec of the list nobody else holds and nobody finished."""
    store, outcomes = RunStore(results), {}
    for spec in specs:
        with claim(store, spec.run_id) as obtained:
            if obtained and not store.is_done(spec.run_id):
                outcomes[spec.run_id] = execute(spec, store, data_root)
    return outcomes


class Worker(submitit.helpers.Checkpointable):
    """A submitit job running ``work``. Preempted or timed out on SLURM, it is requeued with
    the same arguments, and its runs resume from their epoch checkpoints."""

    def __call__(self, specs: list[RunSpec], results: str, data_root: str) -> dict[str, str]:
        return work(specs, results, data_root)


def with_parents(specs: list[RunSpec]) -> list[RunSpec]:
    """The specs and all their ancestors, each once, parents first."""
    seen: dict[str, RunSpec] = {}

    def visit(spec: RunSpec):
        if spec.parent is not None:
            visit(spec.parent)
        seen.setdefault(spec.run_id, spec)

    for spec in specs:
        visit(spec)
    return list(seen.values())


def own_epochs(spec: RunSpec) -> int:
    method = METHODS[spec.method](spec.hp, spec.training, spec.goal_sparsity)
    return sum(phase.epochs for phase in method.phases())


@dataclass
class Plan:
    """The runs a grid needs, which are done, and the pending ones by stage."""

    total: int
    done: int
    stages: list[list[RunSpec]]
    epochs: int

    @property
    def pending(self) -> list[RunSpec]:
        return [spec for stage in self.stages for spec in stage]


def plan(specs: list[RunSpec], store: RunStore) -> Plan:
    everything = with_parents(specs)
    pending = [spec for spec in everything if not store.is_done(spec.run_id)]
    depth = max((spec.stage for spec in pending), default=-1)
    stages = [[spec for spec in pending if spec.stage == level] for level in range(depth + 1)]
    return Plan(len(everything), len(everything) - len(pending), [s for s in stages if s],
                sum(own_epochs(spec) for spec in pending))


def default_jobs(threads: int = 1) -> int:
    return max(1, (os.cpu_count() or 1) // threads)


def check_executor(executor: str) -> None:
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}", key="--executor")
    if executor == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("executor 'slurm' needs SLURM, but sbatch is not on this machine's PATH; "
                          "use --executor local here", key="--executor")


def submit_plan(grid: Plan, store: RunStore, *, data_root: str, slurm: dict) -> list[str]:
    """Submit every stage to SLURM at once, each stage's array starting after the previous
    one ends (``afterany``: a failed parent fails its children with the reason); returns
    the array job ids."""
    arrays: list[str] = []
    for stage in grid.stages:
        after = {"dependency": f"afterany:{arrays[-1]}"} if arrays else {}
        submitted = _submit(stage, store, executor="slurm", jobs=0, data_root=data_root, slurm={**slurm, **after})
        arrays.append(submitted[0].job_id.split("_")[0])
    return arrays


def run_plan(grid: Plan, store: RunStore, *, executor: str, jobs: int, data_root: str, slurm: dict,
             progress: bool = True) -> None:
    """Execute every stage of the plan, waiting for each before the next."""
    bar = tqdm(total=len(grid.pending), desc="runs", unit="run", disable=not progress)
    for stage in grid.stages:
        if executor == "inline":
            for spec in stage:
                work([spec], str(store.results), data_root)
                _advance(bar, store, grid.pending)
            continue
        waiting = _submit(stage, store, executor=executor, jobs=jobs, data_root=data_root, slurm=slurm)
        while not all(job.done() for job in waiting):
            _advance(bar, store, grid.pending)
            time.sleep(0.5)
        for job in waiting:
            try:
                job.result()
            except Exception as error:  # noqa: BLE001 - a dead worker: its runs stay pending and are reported
                tqdm.write(f"worker {job.job_id} ended abnormally: {error}")
        _advance(bar, store, grid.pending)
    bar.close()


def _advance(bar: tqdm, store: RunStore, pending: list[RunSpec]) -> None:
    done = sum(store.is_done(spec.run_id) for spec in pending)
    failed = sum(store.failure(spec.run_id) is not None for spec in pending)
    bar.set_postfix(failed=failed, refresh=False)
    bar.update(done + failed - bar.n)


def _submit(stage: list[RunSpec], store: RunStore, *, executor: str, jobs: int, data_root: str, slurm: dict):
    """Local: ``jobs`` workers sharing the stage. SLURM: one array task per run."""
    folder = store.results / ".submitit" / "%j"
    args = (str(store.results), data_root)
    if executor == "local":
        pool = submitit.LocalExecutor(folder=folder)
        workers = max(1, min(jobs, len(stage)))
        pool.update_parameters(timeout_min=slurm["time_min"] * math.ceil(len(stage) / workers))
        return [pool.submit(Worker(), stage, *args) for _ in range(workers)]
    pool = submitit.AutoExecutor(folder=folder, cluster="slurm")
    pool.update_parameters(timeout_min=slurm["time_min"], cpus_per_task=slurm["cpus_per_task"],
                           gpus_per_node=slurm["gpus_per_node"], mem_gb=slurm["mem_gb"],
                           slurm_array_parallelism=slurm["array_parallelism"],
                           **({"slurm_partition": slurm["partition"]} if slurm["partition"] else {}),
                           **({"slurm_dependency": slurm["dependency"]} if "dependency" in slurm else {}))
    try:
        with pool.batch():
            submitted = [pool.submit(Worker(), [spec], *args) for spec in stage]
    except submitit.core.utils.FailedJobError as error:
        raise ConfigError(f"sbatch refused the jobs: {str(error).strip()}", key="[slurm]") from error
    return submitted


def status(specs: list[RunSpec], store: RunStore) -> dict[str, int]:
    """How many runs of the grid are done, failed, running (a worker holds them) or queued."""
    counts = dict.fromkeys(("done", "failed", "running", "queued"), 0)
    for spec in with_parents(specs):
        if store.is_done(spec.run_id):
            counts["done"] += 1
        elif store.is_running(spec.run_id):
            counts["running"] += 1
        elif store.failure(spec.run_id) is not None:
            counts["failed"] += 1
        else:
            counts["queued"] += 1
    return counts


def scheduler_states(store: RunStore) -> dict[str, int]:
    """SLURM tasks submitted for this results folder that the scheduler still holds, by state
    (PENDING, RUNNING, ...); empty without SLURM or submissions."""
    folder = store.results / ".submitit"
    if shutil.which("squeue") is None or not folder.is_dir():
        return {}
    arrays = {path.name.split("_")[0] for path in folder.iterdir() if re.fullmatch(r"\d+(_\d+)?", path.name)}
    queue = subprocess.run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i %T"],
                           capture_output=True, text=True, timeout=60)
    states = Counter(state for line in queue.stdout.splitlines() for task, state in [line.split()]
                     if task.split("_")[0] in arrays)
    return dict(states)


def failures(specs: list[RunSpec], store: RunStore) -> dict[str, str]:
    """run_id -> error of every run of the grid that failed or never finished."""
    out = {}
    for spec in with_parents(specs):
        if store.is_done(spec.run_id):
            continue
        failure = store.failure(spec.run_id)
        out[spec.run_id] = failure["error"] if failure else "not run"
    return out
