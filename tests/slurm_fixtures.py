"""The ``slurm_cluster`` fixture: a SLURM cluster with accounting to submit to, or a skip with the reason.

The cluster is the one ``tests/slurm-local.sh up`` starts (by .ci/run, ``make slurm-up``, or
this fixture when running as root and nothing answers yet); a cluster the fixture started
is stopped again at the end of the session.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("slurm-local.sh")


def _tail(text: str) -> str:
    return text.strip().splitlines()[-1] if text.strip() else ""


def cluster_problem() -> str | None:
    """Why SLURM cannot take our jobs here, or None when it can."""
    for tool in ("sinfo", "sbatch", "sacct"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        sinfo = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=30)
        sacct = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as error:
        return f"{error.cmd[0]} did not answer within 30 s"
    if sinfo.returncode != 0:
        return f"sinfo failed: {_tail(sinfo.stderr) or f'exit {sinfo.returncode}'}"
    states = sinfo.stdout.split()
    if not set(states) & {"idle", "mix", "alloc"}:
        return f"no node can take jobs (node states: {', '.join(states) or 'none'})"
    if sacct.returncode != 0:  # submitit reads job states from sacct; without it dead jobs look pending forever
        return f"sacct fails, so job states are unknown: {_tail(sacct.stderr)}"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    problem, started = cluster_problem(), False
    if problem is not None and os.geteuid() == 0:
        up = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True, timeout=900)
        started = True
        problem = cluster_problem() if up.returncode == 0 else f"{SCRIPT.name} up failed: {_tail(up.stderr)}"
    try:
        if problem is not None:
            pytest.skip(f"SLURM is not available: {problem}")
        yield
    finally:
        if started:
            subprocess.run([str(SCRIPT), "down"], capture_output=True, timeout=120)
