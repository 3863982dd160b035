"""Executing a grid of runs: inline, locally through submitit, or on SLURM through submitit.

Runs are grouped in stages (dense parents first, then the runs that prune them). Workers
are handed pending runs, parents first: ``jobs`` local workers share the whole grid, a
SLURM array task takes one run of a stage. A worker claims a run with an exclusive file
lock (released by the OS if the worker dies), skips runs that are finished, and records
every outcome, so a failing run never stops the rest of the grid and a rerun executes
only what is missing.
"""

import fcntl
import getpass
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
import submitit
from tqdm import tqdm

from methods import METHODS

from schema import ConfigError
from .runspec import RunSpec, with_parents
from .spans import IDLE, SET_UP, recording, span, timed
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


@timed(SET_UP)
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
    store.write_run(spec, result.record, result.history, result.state_dict, "\n".join(lines), result.stored)
    checkpoint.unlink(missing_ok=True)
    return result.record["status"]


def work(specs: list[RunSpec], results: str, data_root: str) -> dict[str, str]:
    """A worker: execute every spec of the list (parents before children) that nobody else
    holds or finished. A run whose parent another worker is executing waits for it, after
    the runs that can go ahead. With ``$PRUNEBENCH_SPANS``, where its time goes is recorded
    (``bench.spans``)."""
    store, outcomes, deferred = RunStore(results), {}, list(specs)
    with recording():
        while deferred:
            specs, deferred = deferred, []
            for spec in specs:
                parent = spec.parent.run_id if spec.parent else None
                if parent and not store.is_done(parent) and store.is_running(parent):
                    deferred.append(spec)
                    continue
                with claim(store, spec.run_id) as obtained:
                    if obtained and not store.is_done(spec.run_id):
                        outcomes[spec.run_id] = execute(spec, store, data_root)
            if deferred and len(deferred) == len(specs):  # nothing could go ahead
                with span(IDLE):
                    store.wait_while_running(deferred[0].parent.run_id)
    return outcomes


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:  # gone just now, or a system without /proc
        return not Path("/proc").exists()
    return state != "Z"


def end_with(owner: int, every: float = 1.0) -> None:
    """Watch process ``owner`` from a daemon thread and end this process when it is gone, so
    that local workers never outlive a killed ``prunebench`` (their runs resume from their
    last checkpoint next time)."""
    def watch():
        while alive(owner):
            time.sleep(every)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


class Worker(submitit.helpers.Checkpointable):
    """A submitit job running ``work``. Preempted or timed out on SLURM, it is requeued with
    the same arguments, and its runs resume from their epoch checkpoints. A local worker
    is given its ``owner``, the prunebench process it ends with."""

    def __init__(self, owner: int | None = None):
        self.owner = owner

    def __call__(self, specs: list[RunSpec], results: str, data_root: str) -> dict[str, str]:
        if self.owner is not None:
            end_with(self.owner)
        return work(specs, results, data_root)


def own_epochs(spec: RunSpec) -> int:
    method = METHODS[spec.method](spec.hp, spec.training, spec.goal_sparsity)
    return sum(phase.epochs for phase in method.phases())


@dataclass
class Plan:
    """The runs a grid needs, which are done, and the pending ones by stage."""

    total: int
    done: int
    stages: list[list[RunSpec]]
    run_epochs: dict[str, int]  # each pending run's own epochs

    @property
    def pending(self) -> list[RunSpec]:
        return [spec for stage in self.stages for spec in stage]

    @property
    def epochs(self) -> int:
        return sum(self.run_epochs.values())


def plan(specs: list[RunSpec], store: RunStore) -> Plan:
    """The pending runs by stage. Within a stage, the runs that others wait for come first,
    then the longest, so that parallel workers end together."""
    everything = with_parents(specs)
    pending = [spec for spec in everything if not store.is_done(spec.run_id)]
    parents = {spec.parent.run_id for spec in pending if spec.parent}
    epochs = {spec.run_id: own_epochs(spec) for spec in pending}
    depth = max((spec.stage for spec in pending), default=-1)
    stages = [sorted((spec for spec in pending if spec.stage == level),
                     key=lambda spec: (spec.run_id not in parents, -epochs[spec.run_id]))
              for level in range(depth + 1)]
    return Plan(len(everything), len(everything) - len(pending), [s for s in stages if s], epochs)


def machine_memory_gb() -> float:
    """Physical memory of this machine in GiB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3


def default_jobs(threads: int, mem_gb: float) -> int:
    """As many local jobs as the cores hold runs of ``threads`` threads and the memory holds
    runs of ``mem_gb`` GiB (the manifest's [slurm] mem_gb), at least one."""
    return max(1, min((os.cpu_count() or 1) // threads, int(machine_memory_gb() // mem_gb)))


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
        submitted = _submit_slurm(stage, store, data_root=data_root, slurm={**slurm, **after})
        arrays.append(submitted[0].job_id.split("_")[0])
    return arrays


def run_plan(grid: Plan, store: RunStore, *, executor: str, jobs: int, data_root: str, slurm: dict,
             progress: bool = True) -> None:
    """Execute the plan: inline, run after run; locally, ``jobs`` workers share the whole
    grid, so a run starts as soon as its parent is done; on SLURM, one job array per stage,
    each submitted when the previous one has ended."""
    bar = GridProgress(grid.pending, store, enabled=progress, epochs=grid.run_epochs)
    if executor == "inline":
        for spec in grid.pending:
            work([spec], str(store.results), data_root)
            bar.advance()
    elif executor == "local":
        workers = _submit_local(grid.pending, store, jobs=jobs - 1, data_root=data_root, time_min=slurm["time_min"])
        _wait([*workers, _work_here(grid.pending, store, data_root)], bar)
    else:
        for stage in grid.stages:
            _wait(_submit_slurm(stage, store, data_root=data_root, slurm=slurm), bar)
    bar.close()


def _work_here(specs: list[RunSpec], store: RunStore, data_root: str) -> Future:
    """This process as one of the local workers (it has no start-up to pay), in a daemon
    thread, so that it dies with the process."""
    future: Future = Future()

    def run():
        try:
            future.set_result(work(specs, str(store.results), data_root))
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits for the result
            future.set_exception(error)
    threading.Thread(target=run, daemon=True).start()
    return future


def _wait(workers: list, bar: "GridProgress") -> None:
    """Until every worker (a submitit job or a future) has ended, advancing the bar."""
    while not all(worker.done() for worker in workers):
        bar.advance()
        time.sleep(bar.poll_seconds)
    for worker in workers:
        try:
            worker.result()
        except Exception as error:  # noqa: BLE001 - a dead worker: its runs stay pending and are reported
            tqdm.write(f"worker {getattr(worker, 'job_id', 'in this process')} ended abnormally: {error}")
    bar.advance()


class GridProgress:
    """The progress of a grid's pending runs: a bar with counts and ETA on a terminal, a plain
    line when the count changes (at most every ``LINE_SECONDS``) in a log. The ETA weighs each
    run by its ``epochs`` (the longest runs start first, so counting runs would overestimate it
    many times over). Finished runs are remembered, so a poll looks only at the runs still out,
    and polls are spaced out on large grids (each run costs a few file system calls, which add
    up on a shared file system)."""

    LINE_SECONDS = 30

    def __init__(self, pending: list[RunSpec], store: RunStore, enabled: bool, stream=None,
                 epochs: dict[str, int] | None = None):
        self.stream = stream or sys.stderr
        self.terminal = enabled and self.stream.isatty()
        self.lines = enabled and not self.terminal
        self.epochs = {spec.run_id: max(1, (epochs or {}).get(spec.run_id, 1)) for spec in pending}
        self.total, self.total_epochs = len(pending), sum(self.epochs.values())
        self.bar = tqdm(total=self.total_epochs, desc="epochs", unit="epoch", disable=not self.terminal,
                        file=self.stream)
        self.out, self.store = set(self.epochs), store
        self.poll_seconds = 0.5 + len(pending) / 5000
        self.start = self.said = time.monotonic()
        self.last_line = None

    def advance(self) -> None:
        self.out -= {run_id for run_id in self.out if self.store.is_done(run_id)}
        out_failed = {run_id for run_id in self.out if self.store.has_failed(run_id)}
        ended, failed = self.total - len(self.out) + len(out_failed), len(out_failed)
        ended_epochs = self.total_epochs - sum(self.epochs[run_id] for run_id in self.out - out_failed)
        self.bar.set_postfix(runs=f"{ended}/{self.total}", failed=failed, refresh=False)
        self.bar.update(ended_epochs - self.bar.n)
        if self.lines and (ended, failed) != self.last_line and (
                ended == self.total or time.monotonic() - self.said >= self.LINE_SECONDS):
            self.stream.write(self.line(ended, failed, ended_epochs) + "\n")
            self.stream.flush()
            self.said, self.last_line = time.monotonic(), (ended, failed)

    def line(self, ended: int, failed: int, ended_epochs: int) -> str:
        """E.g. "runs: 12/50 ended (1 failed), 300/900 epochs, 3m10s elapsed, about 6m20s left"."""
        elapsed = time.monotonic() - self.start
        left = (f", about {minutes(elapsed * (self.total_epochs - ended_epochs) / ended_epochs)} left"
                if 0 < ended_epochs < self.total_epochs else "")
        return (f"runs: {ended}/{self.total} ended ({failed} failed), {ended_epochs}/{self.total_epochs} epochs, "
                f"{minutes(elapsed)} elapsed{left}")

    def close(self) -> None:
        self.bar.close()


def minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}m{whole % 60:02d}s"


def _submit_local(specs: list[RunSpec], store: RunStore, *, jobs: int, data_root: str, time_min: int) -> list:
    """Up to ``jobs`` local worker processes sharing the runs, each ending with this process."""
    workers = min(jobs, len(specs) - 1)
    if workers < 1:
        return []
    pool = submitit.LocalExecutor(folder=store.results / ".submitit" / "%j")
    pool.update_parameters(timeout_min=time_min * math.ceil(len(specs) / (workers + 1)))
    return [pool.submit(Worker(owner=os.getpid()), specs, str(store.results), data_root) for _ in range(workers)]


def _submit_slurm(stage: list[RunSpec], store: RunStore, *, data_root: str, slurm: dict) -> list:
    """One SLURM job array with a task per run, with the [slurm] settings (and a dependency)."""
    pool = submitit.AutoExecutor(folder=store.results / ".submitit" / "%j", cluster="slurm")
    pool.update_parameters(timeout_min=slurm["time_min"], cpus_per_task=slurm["cpus_per_task"],
                           gpus_per_node=slurm["gpus_per_node"], mem_gb=slurm["mem_gb"],
                           slurm_array_parallelism=slurm["array_parallelism"],
                           **({"slurm_partition": slurm["partition"]} if slurm["partition"] else {}),
                           **({"slurm_dependency": slurm["dependency"]} if "dependency" in slurm else {}))
    try:
        with pool.batch():
            submitted = [pool.submit(Worker(), [spec], str(store.results), data_root) for spec in stage]
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
