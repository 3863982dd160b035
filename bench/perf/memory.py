"""Section 7: peak resident memory of one run of the CPU profile, each in a fresh process,
and the local executor's default ``--jobs`` against the machine's memory. (The peak of
collecting and rendering at scale is measured by section 5.)"""

import os
from dataclasses import replace

from ..data import default_data_root
from ..execute import default_jobs, machine_memory_gb
from ..manifest import load
from ..train import train_run
from .timing import Figure, figure, in_fresh_process, peak_gib


def one_cpu_run(quick: bool) -> float:
    """Train the CPU profile's first CS run (mask parameters besides the model), for one epoch
    when ``quick``; its peak in GiB."""
    spec = next(spec for spec in load("table-imp-vs-stable", "cpu").expand() if spec.method == "cs")
    if quick:
        spec = replace(spec, training={**spec.training, "epochs": 1})
    train_run(spec, default_data_root(), log=lambda line: None)
    return peak_gib()


def memory(quick: bool) -> list[Figure]:
    run = in_fresh_process(one_cpu_run, quick)
    manifest = load("table-imp-vs-stable", "cpu")
    per_run, machine = manifest.slurm["mem_gb"], machine_memory_gb()
    jobs = default_jobs(manifest.training["threads"], per_run)
    note = f"--jobs {jobs} on {os.cpu_count()} cores and {machine:.1f} GiB"
    return [
        figure("7. memory", "peak of one cpu-profile run (CS)", [run], "GiB", goal=1.5),
        figure("7. memory", "default --jobs x memory per run ([slurm] mem_gb) / machine memory",
               [jobs * per_run / machine], "x", goal=1.0, note=f"{note}, {per_run} GiB per run"),
        figure("7. memory", "default --jobs x measured peak of a run / machine memory", [jobs * run / machine], "x",
               goal=1.0, note=note),
    ]
