"""The results table in the layout of Table 1 of "Back to Basics" (booktabs LaTeX).

An accuracy whose configuration ended with a collapsed layer (a conv or linear layer with
no remaining weight) in some seed carries a dagger, explained in the caption."""

import math
from pathlib import Path

import pandas as pd

from bench.report.latex import environment
from bench.report.select import GOAL_TOLERANCE, time_ratios

MISSING = "--"
COLLAPSE_MARK = r"$^\dagger$"
PLUS_MINUS = r" $\pm$ "


def mean_std(mean: float, std: float, digits: int, std_digits: int, plus_minus: str = PLUS_MINUS) -> str:
    r"""``mean $\pm$ std`` at the given decimals; the std is left out when it prints as zero.
    ``plus_minus`` is the separator (a plain ± in HTML)."""
    if not math.isfinite(mean):
        return MISSING
    text = f"{mean:.{digits}f}"
    if math.isfinite(std) and float(f"{std:.{std_digits}f}") > 0:
        text += f"{plus_minus}{std:.{std_digits}f}"
    return text


def goal_header(goal: float) -> str:
    """A goal sparsity as a column title, e.g. 0.995 -> "99.5%"."""
    return f"{round(goal * 100, 4):g}%"


def bold_threshold(values: list[float], count: int) -> float:
    """The lowest value still set in bold: the ``count``-th highest, so values tied with
    it are bold as well."""
    ranked = sorted((value for value in values if math.isfinite(value)), reverse=True)
    return ranked[min(count, len(ranked)) - 1] if ranked and count > 0 else math.inf


def at_goal(cells: pd.DataFrame, goal: float, labels: list[str]) -> pd.DataFrame:
    """The cells of one goal column, indexed by label."""
    return cells[((cells["goal_sparsity"] - goal).abs() <= GOAL_TOLERANCE) & cells["label"].isin(labels)].set_index("label")


def collapsed(row) -> bool:
    """Did the cell's configuration end with a collapsed layer in some seed? Unknown (NaN) is not marked."""
    return row.get("n_collapsed_seeds", math.nan) > 0


def goal_entries(cells: pd.DataFrame, goal: float, labels: list[str], bold: int,
                 plus_minus: str = PLUS_MINUS) -> dict[str, dict]:
    """Per label of one goal column: its Accuracy/Speedup/Sparsity texts, whether the accuracy
    is among the ``bold`` best printed ones (the dense baseline does not compete) and whether
    its configuration collapsed; the LaTeX table and the site's HTML table mark them."""
    rows = at_goal(cells, goal, labels)
    accuracy = (rows["test_accuracy_mean"] * 100).round(2)
    threshold = bold_threshold(accuracy[rows["method"] != "dense"].tolist(), bold)
    entries = {}
    for label, row in rows.iterrows():
        speedup = row["theoretical_speedup_mean"]
        entries[label] = {
            "accuracy": mean_std(accuracy[label], row["test_accuracy_std"] * 100, 2, 2, plus_minus),
            "speedup": mean_std(speedup, row["theoretical_speedup_std"], 0 if speedup >= 10 else 1, 1, plus_minus),
            "sparsity": mean_std(row["sparsity_mean"] * 100, row["sparsity_std"] * 100, 2, 2, plus_minus),
            "bold": bool(row["method"] != "dense" and accuracy[label] >= threshold),
            "collapsed": bool(collapsed(row)),
        }
    return entries


def goal_column(cells: pd.DataFrame, goal: float, labels: list[str], bold: int) -> dict[str, dict]:
    """Formatted Accuracy/Speedup/Sparsity per label for one goal column, the best accuracies
    in bold and a collapse marked with a dagger."""
    column = {}
    for label, entry in goal_entries(cells, goal, labels, bold).items():
        accuracy = rf"\textbf{{{entry['accuracy']}}}" if entry["bold"] else entry["accuracy"]
        column[label] = {**entry, "accuracy": accuracy + (COLLAPSE_MARK if entry["collapsed"] else "")}
    return column


def collapse_note(cells: pd.DataFrame, labels: list[str], goals: list[float]) -> str:
    """The caption's sentence on the daggers: which cells, in how many seeds, which layers;
    "" when no cell is marked."""
    marked = [f"{label} at {goal_header(goal)} ({row['n_collapsed_seeds']:.0f} of {row['n_seeds']} seeds: "
              f"{row['collapsed_layers'].replace(';', ', ')})"
              for goal in goals for label, row in at_goal(cells, goal, labels).iterrows() if collapsed(row)]
    if not marked:
        return ""
    return (" \u2020: the selected configuration ended with a collapsed layer (a conv or linear layer with no "
            f"remaining weight) in some seeds: {'; '.join(marked)}.")


def throughputs(cells: pd.DataFrame) -> dict[str, float]:
    """Per label, the mean training throughput (images per second) of its selected runs."""
    timed = cells.dropna(subset=["images_per_second_mean"])
    weighted = (timed["images_per_second_mean"] * timed["n_seeds"]).groupby(timed["label"]).sum()
    return (weighted / timed["n_seeds"].groupby(timed["label"]).sum()).to_dict()


def time_cells(cells: pd.DataFrame, time_column: str, times: str = r"$\times$") -> tuple[str, dict[str, str]]:
    """The header and per-label text of the second column: the Time ratio over the dense
    model (Back to Basics' layout) or the images-per-second throughput (Love Retraining's);
    ``times`` is the sign after a ratio ("\u00d7" in HTML)."""
    if time_column == "throughput":
        return "Images/s", {label: f"{value:.0f}" for label, value in throughputs(cells).items()}
    return "Time", {label: f"{value:.2f}{times}" for label, value in time_ratios(cells).items()}


def render_table(cells: pd.DataFrame, *, labels: list[str], goals: list[float], bold: int = 2,
                 caption: str, out_dir: Path, columns=("accuracy", "speedup", "sparsity"),
                 time_column: str = "time") -> list[Path]:
    """Write ``table.tex`` (a table float to \\input, needs booktabs and graphicx) and
    ``standalone.tex`` (a document that compiles on its own); return both paths. ``columns``
    picks and orders the sub-columns of every goal; ``time_column`` is "time" or "throughput"."""
    time_header, times = time_cells(cells, time_column)
    per_goal = [goal_column(cells, goal, labels, bold) for goal in goals]
    rows = [{
        "label": label,
        "time": times.get(label, MISSING),
        "cells": [column.get(label) for column in per_goal],
    } for label in labels]
    table = environment().get_template("table.tex.j2").render(
        caption=caption + collapse_note(cells, labels, goals), goals=[goal_header(goal) for goal in goals], rows=rows, columns=list(columns), time_header=time_header)
    return write_table(table, out_dir)


def write_table(table: str, out_dir: Path) -> list[Path]:
    """Write ``table.tex`` (the float) and ``standalone.tex`` (it in a document of its own)."""
    standalone = environment().get_template("standalone.tex.j2").render(table=table)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "table.tex", out_dir / "standalone.tex"]
    for path, text in zip(paths, (table, standalone)):
        path.write_text(text)
    return paths
