"""The stored runs as pandas frames, for a notebook: ``from bench import records, history``.

Reading imports neither torch nor the methods (as ``prunebench report`` does): a target's
runs come from its stored run list, written by ``prunebench run`` (or ``report``).
"""

from pathlib import Path

import pandas as pd

from .cli import DEFAULT_RESULTS
from .store import RunStore


def records(target: str | None = None, profile: str | None = None, results: str | Path = DEFAULT_RESULTS
            ) -> pd.DataFrame:
    """One row per finished run: every stored record, or with ``target`` those of its
    ``profile`` (the manifest's default when None), each under the label of the manifest's
    row that uses it (a run two rows share appears once per row), with its goal_sparsity; the
    columns are the report's."""
    store = RunStore(results)
    if target is None:
        if profile is not None:
            raise ValueError("a profile belongs to a target: name the target too")
        found = sorted(path.name for path in store.runs.glob("*") if not path.name.startswith("."))
        return store.collect(found)[0]
    from .manifest import load
    from .report.build import labelled_records
    from .runlist import runs_for

    manifest = load(target, profile, registries=False)
    return labelled_records(runs_for(manifest, Path(results)), store)[0]


def history(run_id: str, results: str | Path = DEFAULT_RESULTS) -> pd.DataFrame:
    """The per-epoch history of run ``run_id``: one row per epoch (phase, epoch, lr, losses,
    accuracies, and what the run's method records)."""
    store = RunStore(results)
    if not store.is_done(run_id):
        raise FileNotFoundError(f"no finished run {run_id} under {Path(results) / 'runs'}")
    return store.read_history(run_id)
