"""Tables whose goal columns split by a hyperparameter (Love Retraining, Table 1 and the
appendix B.1 tables: one column per retraining budget within each goal sparsity).

Every sub-column is a cell of its own: per row label, goal sparsity and value of the
``split_by`` hyperparameters, the configuration with the best mean validation accuracy
(``select_cells`` on the runs with that value) and its test accuracy, mean and std over
seeds; the ``bold`` best per sub-column are bold.
"""

from pathlib import Path

import pandas as pd

from bench.report.latex import environment
from bench.report.select import plain, select_cells
from bench.report.table import (COLLAPSE_MARK, MISSING, at_goal, bold_threshold, collapsed, goal_header, mean_std,
                                write_table)


def split_values(records: pd.DataFrame, split_by: list[str]) -> list[tuple]:
    """The distinct values of the ``hp_<split_by>`` columns, sorted (integral floats, from
    columns padded with NaN, as ints)."""
    columns = [f"hp_{name}" for name in split_by]
    return sorted({tuple(map(plain, values)) for values in records[columns].itertuples(index=False)})


def select_split_cells(records: pd.DataFrame, goals: list[float], split_by: list[str],
                       select_by: str = "val_accuracy") -> pd.DataFrame:
    """``select_cells`` per value of the split hyperparameters, with a ``split`` column (the
    value tuple). Rows without those hyperparameters (the dense model) have no cells here."""
    columns = [f"hp_{name}" for name in split_by]
    if not set(columns) <= set(records.columns):
        return pd.DataFrame()
    split, frames = records.dropna(subset=columns), []
    for value in split_values(split, split_by):
        cells = select_cells(split[(split[columns] == list(value)).all(axis=1)], goals, select_by)
        frames.append(cells.assign(split=[value] * len(cells)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def split_header(value: tuple) -> str:
    return r" $\times$ ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)


def render_split_table(cells: pd.DataFrame, *, labels: list[str], goals: list[float], split_by: list[str],
                       bold: int, caption: str, out_dir: Path) -> list[Path]:
    """Write ``table.tex`` and ``standalone.tex``: rows are labels, each goal's columns are the
    split values that have a cell."""
    splits = sorted(set(cells["split"])) if not cells.empty else []
    columns = []
    for goal in goals:
        for value in splits:
            rows = at_goal(cells[cells["split"] == value], goal, labels)
            if rows.empty:
                continue
            accuracy = (rows["test_accuracy_mean"] * 100).round(2)
            threshold = bold_threshold(accuracy.tolist(), bold)
            texts = {}
            for label, row in rows.iterrows():
                text = mean_std(accuracy[label], row["test_accuracy_std"] * 100, 2, 2)
                texts[label] = (rf"\textbf{{{text}}}" if accuracy[label] >= threshold else text) + \
                    (COLLAPSE_MARK if collapsed(row) else "")
            columns.append({"goal": goal_header(goal), "split": split_header(value), "texts": texts})
    groups = [{"goal": goal_header(goal), "span": sum(c["goal"] == goal_header(goal) for c in columns)}
              for goal in goals]
    table = environment().get_template("split_table.tex.j2").render(
        caption=caption, groups=[g for g in groups if g["span"]], columns=columns,
        split_name=r" $\times$ ".join(split_by), rows=[{"label": label, "cells": [c["texts"].get(label, MISSING)
                                                                                  for c in columns]}
                                                       for label in labels])
    return write_table(table, out_dir)
