"""Build a target's report from its stored runs: collect, select, render.

Writes ``reports/<target>/<profile>/``: table.tex, standalone.tex, pareto.pdf/png,
selection.csv (the run ids behind every cell) and failures.csv (runs of the grid that
failed or are missing, with the reason). Files are rendered aside and moved into place,
so a reader never sees a half-written report.
"""

import os
import tempfile
from pathlib import Path

import pandas as pd

from ..execute import failures
from ..manifest import Manifest
from ..store import RunStore
from . import render_pareto, render_table, select_cells, write_selection


def labelled_records(manifest: Manifest, store: RunStore) -> tuple[pd.DataFrame, dict[str, str]]:
    """The records of every run of the manifest, each under the label of the row that uses it
    (a run shared by two rows appears once per row), and the unreadable records."""
    specs = manifest.expand()
    records, broken = store.collect(spec.run_id for spec in specs)
    uses = pd.DataFrame({"run_id": [s.run_id for s in specs], "label": [s.label for s in specs]}).drop_duplicates()
    if records.empty:
        return records, broken
    return uses.merge(records.drop(columns="label"), on="run_id"), broken


def caption(manifest: Manifest) -> str:
    t = manifest.training
    return (f"{manifest.title} ({manifest.source}). Profile \u201c{manifest.profile}\u201d: {t['model']} on "
            f"{t['dataset']}, {t['epochs']} epochs, batch size {t['batch_size']}, {len(manifest.seeds)} seeds. "
            "Per method and goal sparsity, the configuration with the highest mean validation accuracy is "
            "shown with its test accuracy (%), theoretical speedup and sparsity (%), mean \u00b1 std over seeds; "
            f"Time is the training wall time relative to the dense model; the {manifest.report['bold']} best "
            "accuracies per column are bold; a dash means no configuration reached that column.")


def render_report(manifest: Manifest, store: RunStore, reports: Path) -> Path:
    out = Path(reports) / manifest.target / manifest.profile
    out.mkdir(parents=True, exist_ok=True)
    records, broken = labelled_records(manifest, store)
    labels = [row.label for row in manifest.rows]
    with tempfile.TemporaryDirectory(dir=out, prefix=".render-") as tmp:
        staging = Path(tmp)
        missing = failures(manifest.expand(), store) | broken
        pd.DataFrame({"run_id": list(missing), "reason": list(missing.values())}).to_csv(
            staging / "failures.csv", index=False)
        if not records.empty:
            cells = select_cells(records, manifest.goal_sparsities, manifest.report["select_by"])
            render_table(cells, labels=labels, goals=manifest.goal_sparsities, bold=manifest.report["bold"],
                         caption=caption(manifest), out_dir=staging, columns=manifest.report["columns"])
            render_pareto(cells, labels=labels, out_dir=staging, title=manifest.title)
            write_selection(cells, staging)
        for path in staging.iterdir():
            os.replace(path, out / path.name)
    return out
