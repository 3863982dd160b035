"""IMP after a budgeted initial training (Love Retraining, Figures 6-7, appendix B.1).

The dense network is trained for T_0 epochs, from 5% to 100% of the full training T (the
manifest's ``epochs``; a run records its own as ``training_epochs``), then pruned by IMP.
Per row, goal sparsity and T_0, the tables' rule picks the configuration with the best mean
validation accuracy (``select_cells``); the figure shows its test accuracy as the deviation
from the row's selected cell at the full budget T: the mean over seeds, and the band from
the lowest to the highest seed, each minus that cell's mean. So the point at T is 0 with
its own seeds' band.
"""

from math import ceil
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.report.figures import _save, _styles
from bench.report.select import GOAL_TOLERANCE, select_cells

BUDGET = "training_epochs"
STATS = ("mean", "min", "max")


def deviation_from_full_budget(records: pd.DataFrame, goals: list[float], full_budget: int,
                               select_by: str = "val_accuracy") -> pd.DataFrame:
    """One row per (label, goal, T_0) with a selection among the (non-empty) ``records``: the columns of ``select_cells``, the
    budget ``training_epochs``, ``full_budget_accuracy`` (the mean test accuracy selected at
    T = ``full_budget``, NaN without runs there) and ``deviation_mean``/``_min``/``_max``
    (test accuracy minus it, as fractions)."""
    frames = [select_cells(runs, goals, select_by).assign(**{BUDGET: int(budget)})
              for budget, runs in records.groupby(BUDGET)]
    points = pd.concat(frames, ignore_index=True)
    full = points.loc[points[BUDGET] == full_budget, ["label", "goal_sparsity", "test_accuracy_mean"]]
    points = points.merge(full.rename(columns={"test_accuracy_mean": "full_budget_accuracy"}),
                          on=["label", "goal_sparsity"], how="left")
    for stat in STATS:
        points[f"deviation_{stat}"] = points[f"test_accuracy_{stat}"] - points["full_budget_accuracy"]
    return points.sort_values(["label", "goal_sparsity", BUDGET], ignore_index=True)


def at_largest_budget(points: pd.DataFrame) -> pd.DataFrame:
    """Each label's cells at its largest T_0 (the full budget for a line of the figure; a
    row of one budget at that budget): what selection.csv lists and the claims compare."""
    largest = points.groupby("label")[BUDGET].transform("max")
    return points[points[BUDGET] == largest].reset_index(drop=True)


def render_initial_budget(points: pd.DataFrame, *, labels: list[str], goals: list[float], columns: int,
                          out_dir: Path, title: str) -> list[Path]:
    """Write ``initial-budget.pdf``/``.png`` (a panel per row label, ``columns`` panels a line;
    in each, one line per goal sparsity over T_0 with its min-max band over seeds) and
    ``initial-budget.csv`` (every point with its run ids)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    points.to_csv(out_dir / "initial-budget.csv", index=False)
    columns = min(columns, len(labels))
    lines = ceil(len(labels) / columns)
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(4.4 * columns, 3.6 * lines), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(lines, columns, sharex=True, squeeze=False).flatten()
    styles = _styles([f"{goal * 100:g}%" for goal in goals])
    for ax, label in zip(axes, labels):
        panel = points[points["label"] == label]
        for goal, style in zip(goals, styles):
            line = panel[(panel["goal_sparsity"] - goal).abs() < GOAL_TOLERANCE].sort_values(BUDGET)
            ax.plot(line[BUDGET], line["deviation_mean"] * 100, **style)
            ax.fill_between(line[BUDGET], line["deviation_min"] * 100, line["deviation_max"] * 100,
                            color=style["color"], alpha=0.2, linewidth=0)
        ax.axhline(0, color="0.2", linewidth=0.8)
        ax.set_title(label)
        ax.set_xlabel("Initial training epochs")
        ax.set_ylabel("Deviation in test accuracy (points)")
        ax.legend(title="Goal sparsity", fontsize="small")
    for ax in axes[len(labels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return [out_dir / "initial-budget.csv", *_save(fig, out_dir, "initial-budget")]
