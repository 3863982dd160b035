"""Sections 9 and 10: where the workers' time goes on a target's grid, and how long whole targets take.

9. A target's grid (the cpu profile of table-imp-vs-stable; with ``--quick`` its smoke
   profile; ``--target`` for another) runs through ``prunebench run`` in a fresh results
   folder with ``$PRUNEBENCH_SPANS`` set, and the workers' time is split into the categories
   of ``bench.spans``. Worker time is ``--jobs`` workers from the command's start to the
   grid's end (the report rendered after it is left out); each category is a share of it.
10. Every target's cpu profile, and all of them together (runs shared), estimated from the
    dry run's epochs at the wall seconds per epoch of section 9; and, opt-in (``--sections
    targets``: hours), timed from an empty results folder.
"""

import json
import tempfile
from pathlib import Path

from .. import search
from ..execute import default_jobs, plan
from ..manifest import load, targets
from ..spans import (BATCHING, CHECKPOINTS, EVALUATION, FOLDER, HARNESS, HOOKS, IDLE, RECORDS, SET_UP, START_UP,
                     TRAINING)
from ..store import RunStore
from .harness import prunebench_run
from .timing import Figure, figure

HEADLINE = "table-imp-vs-stable"
SPLIT, TARGETS = "9. where the time goes", "10. whole targets"
GOAL_MINUTES, HEADLINE_GOAL_MINUTES, ALL_GOAL_MINUTES = 20.0, 12.0, 180.0
CATEGORIES = {
    TRAINING: "forward (the method's included), loss, backward, optimizer step",
    HOOKS: "the method's set-up, pruning steps, regularizer, after-backward, after-step and end-of-epoch hooks",
    BATCHING: "drawing the training batches: shuffling, augmenting, normalising",
    EVALUATION: "validation after every epoch, test accuracies around pruning steps, at phase ends and at the end",
    CHECKPOINTS: "the checkpoints written, at most one a minute (PRUNEBENCH_CHECKPOINT_SECONDS)",
    RECORDS: "the record (sparsity, FLOPs), the run directory, the parent's weights read back",
    SET_UP: "models and optimizers built, phases entered, the history kept",
    HARNESS: "a worker's own loop: which run is next, its lock",
    START_UP: "interpreter and imports, the command's planning and submitting, the data loaded",
    IDLE: "waiting for a parent run, for the other workers at a round's end, for a worker process to start"}


def worker_seconds(folder: Path, jobs: int) -> dict[str, float]:
    """Seconds by category of ``jobs`` workers, from the start of the first process (the
    command's) to the end of the last work, read from the files ``bench.spans`` wrote in
    ``folder``. A process's start-up runs from its start to its first work; what no
    worker accounts for is idle."""
    works = [json.loads(path.read_text()) for path in folder.glob("*.json")]
    begin, end = min(work["process_start"] for work in works), max(work["end"] for work in works)
    seconds = dict.fromkeys(CATEGORIES, 0.0)
    for work in works:
        for category, spent in work["seconds"].items():
            seconds[category] += spent
    for pid in {work["pid"] for work in works}:
        first = min((work for work in works if work["pid"] == pid), key=lambda work: work["start"])
        seconds[START_UP] += first["start"] - first["process_start"]
    seconds[IDLE] += jobs * (end - begin) - sum(seconds.values())
    return seconds


def where_time_goes(target: str | Path, profile: str, jobs: int | None = None) -> tuple[list[Figure], float]:
    """Section 9's figures for ``target [profile]`` with ``jobs`` local jobs (default: the
    command's), and the wall seconds per epoch trained."""
    manifest = load(str(target), profile)
    jobs = jobs or default_jobs(manifest.training["threads"], manifest.slurm["mem_gb"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "spans").mkdir()
        wall = prunebench_run(target, profile, folder / "results", "--jobs", str(jobs),
                              env={FOLDER: str(folder / "spans")})
        seconds = worker_seconds(folder / "spans", jobs)
        store = RunStore(folder / "results")
        records = store.collect(path.name for path in store.runs.iterdir())[0]
    total, epochs = sum(seconds.values()), int(records["own_epochs"].sum())
    out = [figure(SPLIT, "worker time", [total / 60], "min",
                  note=f"{manifest.target} [{profile}], {len(records)} runs: {jobs} workers from the command's start "
                       "to the grid's end")]
    out += [figure(SPLIT, category, [100 * spent / total], "%", note=CATEGORIES[category])
            for category, spent in seconds.items()]
    training = seconds[TRAINING] + seconds[HOOKS] + seconds[BATCHING]
    out.append(figure(SPLIT, "outside training epochs", [100 * (1 - training / total)], "%", goal=5.0,
                      note="all but the training steps, the method's hooks and the batching"))
    out.append(figure(SPLIT, "wall time per epoch trained", [wall / epochs], "s",
                      note=f"{wall / 60:.1f} min of `prunebench run` (the report included) for {epochs} epochs"))
    return out, wall / epochs


def cpu_targets() -> list[str]:
    """The targets with a cpu profile."""
    return [target for target in targets() if "cpu" in load(target, "base", registries=False).profiles]


def goal_minutes(target: str) -> float:
    return HEADLINE_GOAL_MINUTES if target == HEADLINE else GOAL_MINUTES


def estimates(rate: float, source: str) -> list[Figure]:
    """Every target's cpu profile that trains an epoch (fig-elasticity's runs train none), and
    all of them together: the dry run's epochs at ``rate`` wall seconds per epoch, measured
    on ``source``."""
    manifests = [load(target, "cpu") for target in cpu_targets()]
    note = f"estimate: dry-run epochs (no search rounds) x {rate:.2f} s per epoch of section 9 ({source})"
    with tempfile.TemporaryDirectory() as empty:
        store = RunStore(empty)
        grids = {manifest.target: search.expand(manifest, store) for manifest in manifests}
        epochs = {target: plan(specs, store).epochs for target, specs in grids.items()}
        out = [figure(TARGETS, f"{target} [cpu], estimate", [epochs[target] * rate / 60], "min",
                      goal=goal_minutes(target), note=note) for target in grids if epochs[target]]
        every = plan([spec for specs in grids.values() for spec in specs], store).epochs
    out.append(figure(TARGETS, f"all {len(manifests)} targets [cpu] together, estimate", [every * rate / 60], "min",
                      goal=ALL_GOAL_MINUTES, note=f"{note}; runs shared"))
    return out


def time_split(quick: bool, target: str = HEADLINE) -> list[Figure]:
    """Section 9 on ``target``'s cpu profile (smoke when ``quick``), and section 10's estimates."""
    profile = "smoke" if quick else "cpu"
    figures, rate = where_time_goes(target, profile)
    return figures + estimates(rate, f"{target} [{profile}]")


def whole_targets(quick: bool) -> list[Figure]:
    """Section 10 timed: ``prunebench run`` of every target's cpu profile from an empty
    results folder, then of all of them together; when ``quick``, the smoke profile of the
    headline target only."""
    names, profile = ([HEADLINE], "smoke") if quick else (cpu_targets(), "cpu")
    note = "from an empty results folder, --jobs the default, the report included; every run ok"
    out = []
    for target in names:
        with tempfile.TemporaryDirectory() as tmp:
            minutes = prunebench_run(target, profile, Path(tmp) / "results") / 60
        out.append(figure(TARGETS, f"{target} [{profile}]", [minutes], "min",
                          goal=goal_minutes(target) if profile == "cpu" else None, note=note))
    if not quick:
        with tempfile.TemporaryDirectory() as tmp:
            minutes = prunebench_run(names, profile, Path(tmp) / "results") / 60
        out.append(figure(TARGETS, f"all {len(names)} targets [cpu] together", [minutes], "min",
                          goal=ALL_GOAL_MINUTES, note=f"{note}; runs shared"))
    return out
