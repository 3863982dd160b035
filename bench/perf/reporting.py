"""Section 5: collecting and reporting at scale, on synthetic records.

Run it in a fresh process (``in_fresh_process``): it also reports its own peak memory
(section 7). Every run of the paper profile of table-imp-vs-stable (10,944) gets a run directory with a
synthetic record; collecting them (the first time, and again from the records kept) and
rendering the whole report (table, Pareto plot, paper comparison) is timed. Then a table and its figures are rendered from 100,000
synthetic records (the paper grid over ten times as many seeds).
"""

import json
import random
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..runspec import with_parents
from ..manifest import load
from ..report import render_pareto, render_stability, render_table, select_cells
from ..report.build import render_report
from ..runlist import RunList
from ..store import COLLECTED, CONFIG, RECORD, RunStore
from ..synthetic import synthetic_record
from .timing import Figure, figure, peak_gib, seconds


def stored_runs(store: RunStore, specs) -> None:
    """A finished-looking run directory per spec: config.json and a synthetic record."""
    rng = random.Random(0)
    for spec in specs:
        run = store.run_dir(spec.run_id)
        run.mkdir(parents=True)
        (run / CONFIG).write_text(json.dumps(spec.to_json()))
        pd.DataFrame([synthetic_record(spec, rng)]).to_parquet(run / RECORD)


def many_records(specs, n: int) -> pd.DataFrame:
    """``n`` synthetic records: the specs' records, then the same specs under further seeds."""
    rng, rows, copy = random.Random(1), [], 0
    while len(rows) < n:
        for spec in specs[: n - len(rows)]:
            rows.append(synthetic_record(replace(spec, seed=spec.seed + 1000 * copy), rng))
        copy += 1
    frame = pd.DataFrame(rows)
    return frame.assign(retrain_gain=frame["accuracy_after_retrain"] - frame["accuracy_after_prune"])


def reporting(quick: bool) -> list[Figure]:
    manifest = load("table-imp-vs-stable", "cpu" if quick else "paper")
    specs = with_parents(manifest.expand())
    n_records, repeats = (5_000, 1) if quick else (100_000, 3)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = RunStore(folder / "results")
        stored_runs(store, specs)
        ids = [spec.run_id for spec in specs]

        def first_collect():
            shutil.rmtree(store.results / COLLECTED, ignore_errors=True)
            store.collect(ids)
        out.append(figure("5. reporting at scale", f"collect {len(ids):,} run directories",
                          [seconds(first_collect) for _ in range(repeats)], "s", goal=5.0,
                          note="the first time: every record read (and kept in results/.collected)"))
        out.append(figure("5. reporting at scale", f"collect {len(ids):,} run directories again",
                          [seconds(lambda: store.collect(ids)) for _ in range(repeats)], "s", goal=5.0,
                          note="the records kept in results/.collected, each checked against its file's digest"))
        out.append(figure("5. reporting at scale", f"prunebench report of {len(ids):,} runs",
                          [seconds(lambda: render_report(manifest, RunList.of(manifest.expand()), store,
                                                         folder / "reports")) for _ in range(repeats)],
                          "s", note="expand, collect, select, table, Pareto plot, paper comparison"))
        records = many_records(manifest.expand(), n_records)
        labels = [row.label for row in manifest.rows]

        def render():
            cells = select_cells(records, manifest.goal_sparsities, "val_accuracy")
            render_table(cells, labels=labels, goals=manifest.goal_sparsities, caption="benchmark",
                         out_dir=folder / "table")
            render_pareto(cells, labels=labels, out_dir=folder / "table", title="benchmark")
            render_stability(cells, labels=labels, out_dir=folder / "table", title="benchmark")
        out.append(figure("5. reporting at scale", f"table and figures from {len(records):,} records",
                          [seconds(render) for _ in range(repeats)], "s", goal=5.0,
                          note="selection, LaTeX table, Pareto and stability plots"))
    out.append(figure("7. memory", "peak of collecting and rendering at this scale", [peak_gib()], "GiB", goal=2.0,
                      note=f"{len(ids):,} run directories, {n_records:,} records"))
    return out
