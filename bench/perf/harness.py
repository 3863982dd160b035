"""Sections 3, 4 and 6: the harness around the training, run through the real command line.

3. Twenty short runs through ``prunebench run`` (local executor, run directories, records,
   report) against the same runs trained by ``train_run`` in a bare loop in this process.
4. A grid with ``--jobs 1`` and with ``--jobs 2``.
6. The CPU profile of table-imp-vs-stable from an existing .venv, end to end with its search
   rounds: how much of its wall time is spent outside training, and what the search rounds
   cost against the first grid of the rows they search.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from ..data import default_data_root
from .. import search
from ..execute import default_jobs
from ..runspec import with_parents
from ..manifest import load
from ..store import RunStore
from ..train import train_run
from .timing import Figure, figure, seconds

FIVE_SECONDS = 5.0


def dense_manifest(folder: Path, runs: int, epochs: int) -> Path:
    """A manifest of ``runs`` dense runs (one per seed) of the CPU default model."""
    path = folder / "harness.toml"
    path.write_text(f'''title = "harness benchmark"
source = "bench-perf"
goal_sparsities = [0.9]
seeds = {list(range(runs))}

[training]
model = "resnet1d"
dataset = "mnist1d"
epochs = {epochs}
batch_size = 128
lr = 0.1
lr_schedule = {{ kind = "stepped", milestones = [], gamma = 0.1 }}

[[rows]]
label = "Dense"
method = "dense"
''')
    return path


def prunebench_run(target: str | Path | list[str], profile: str, results: Path, *options: str,
                   env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``prunebench run`` of a target (or of several, one grid) in a fresh
    process, with ``env`` added to its environment; a failure raises with its output."""
    names = target if isinstance(target, list) else [str(target)]
    command = [sys.executable, "-m", "bench.cli", "run", *names, "--profile", profile, "--results",
               str(results), "--reports", str(results / "reports"), "--data-root", str(default_data_root()),
               "--quiet", *options]
    start = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - start
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{finished.stdout}\n{finished.stderr}")
    return wall


def harness(quick: bool) -> list[Figure]:
    runs, repeats = (4, 1) if quick else (20, 3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = dense_manifest(folder, runs, epochs=1)
        specs = load(str(path), "base").expand()
        torch.set_num_threads(1)

        def bare_loop():
            for spec in specs:
                train_run(spec, default_data_root(), log=lambda line: None)
        bare_loop()  # warm: the dataset is generated and cached once, as the CLI does before any run
        per_run, bare_seconds = [], []
        for repeat in range(repeats):
            bare = seconds(bare_loop)
            cli = prunebench_run(path, "base", folder / f"results-{repeat}", "--jobs", "1")
            per_run.append((cli - bare) / runs)
            bare_seconds.append(bare / runs)
    note = f"{runs} one-epoch runs, --jobs 1; a bare run takes {sum(bare_seconds) / len(bare_seconds):.2f} s"
    return [figure("3. harness", "fixed overhead per run", per_run, "s", goal=0.3, note=note),
            figure("3. harness", "overhead on 5-second runs", [100 * x / FIVE_SECONDS for x in per_run], "%",
                   goal=10.0, note="the fixed overhead over a 5 s run")]


def grid(folder: Path, quick: bool, profile: str, runs: int) -> tuple[str, str, str]:
    """(target, profile, name) of a benchmark grid: a profile of table-imp-vs-stable, or when
    ``quick`` a manifest of ``runs`` one-epoch dense runs written to ``folder``."""
    if quick:
        return str(dense_manifest(folder, runs, epochs=1)), "base", f"{runs} dense runs"
    return "table-imp-vs-stable", profile, f"table-imp-vs-stable [{profile}]"


def scaling(quick: bool) -> list[Figure]:
    repeats, one, two = 1 if quick else 2, [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        target, profile, name = grid(folder, quick, "smoke", runs=4)
        for repeat in range(repeats):
            one.append(prunebench_run(target, profile, folder / f"jobs-1-{repeat}", "--jobs", "1", "--no-report"))
            two.append(prunebench_run(target, profile, folder / f"jobs-2-{repeat}", "--jobs", "2", "--no-report"))
    walls = ", ".join(f"{a:.1f} s / {b:.1f} s" for a, b in zip(one, two))
    return [figure("4. scaling", f"wall time with --jobs 1 / with --jobs 2, {name}", [a / b for a, b in zip(one, two)],
                   "x", goal=1.8, goal_is="min", note=f"one job / two jobs: {walls}")]


SEARCHED_ROW = """
[[rows]]
label = "STR"
method = "str"
params = { finetune_fraction = 0.0 }
grid = { s_init = [-3.0, -2.0] }
search = { rounds = 1 }
"""


def end_to_end(quick: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        target, profile, name = grid(folder, quick, "cpu", runs=2)
        if quick:  # a searched row too, so that the search's figure is computed
            Path(target).write_text(Path(target).read_text() + SEARCHED_ROW)
            name += " and a searched STR row"
        manifest = load(target, profile)
        jobs = default_jobs(manifest.training["threads"], manifest.slurm["mem_gb"])
        wall = prunebench_run(target, profile, folder / "results")
        store = RunStore(folder / "results")
        specs = with_parents(search.expand(manifest, store))
        records = store.collect(spec.run_id for spec in specs)[0].set_index("run_id")
    capacity = wall * jobs
    training, in_runs = records["own_train_seconds"].sum(), records["run_seconds"].sum()
    figures = [figure("6. end to end", f"wall time of {name}, {len(specs)} runs", [wall / 60], "min",
                      note=f"--jobs {jobs} (the default), with the report and the search rounds"),
               figure("6. end to end", "share of worker time outside training epochs", [100 * (1 - training / capacity)],
                      "%", note="evaluation, model set-up, records, process start-up, the report"),
               figure("6. end to end", "share of worker time outside runs", [100 * (1 - in_runs / capacity)], "%",
                      note="the harness itself: process start-up, planning, idle workers, the report")]
    first = {spec.run_id for spec in search.first_grid(manifest)}
    if first:
        searched = {row.label for row in manifest.rows if row.search_rounds}
        added = {spec.run_id for spec in specs if spec.label in searched} - first
        seconds = records["run_seconds"]
        cost = seconds.reindex(list(added)).sum() / seconds.reindex(list(first)).sum()  # a failed run adds 0
        figures.append(figure("6. end to end", "search rounds' cost over the first grid of the searched rows",
                              [100 * cost], "%", goal=15.0,
                              note=f"{', '.join(sorted(searched))}: {len(added)} runs added to {len(first)}, "
                                   "in run seconds"))
    return figures
