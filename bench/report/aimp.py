"""AIMP's tables and Figure 1 (Zullich et al. 2021, sections V-A to V-E): medians over seeds.

Per row and goal sparsity (one pruning rate p each), the median test accuracy of the seeds,
its difference from the median of the IMP row of the same technique (``report.baselines``),
the retraining epochs (the record's ``own_epochs``: what is trained after the dense run) and
the speed-up, IMP's retraining epochs over the row's. The paper's numbers stand beside ours
(``aimp_table1.csv``, ``aimp_table2.csv``, ``aimp_text_results.csv``), matched by label:
"IMP+WR" is tau = 0 and "AIMP_<tau>+WR" tau of Table I. The paper counts 19 tau + T epochs
for AIMP_tau+WR; ours are the epochs trained, 19 (tau - 1) + T - 1 after the rewind to epoch 1.
Figure 1 is the median over seeds of the test accuracy after every iteration (the history's
rows at the end of a phase carry ``test_accuracy`` and ``sparsity``) against the share of
weights remaining.
"""

import math
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.report.figures import _save, _styles, plain_log_axis
from bench.report.latex import environment
from bench.report.paper import reference_table
from bench.report.select import GOAL_TOLERANCE
from bench.report.table import write_table

KEYS = ["label", "goal_sparsity"]


def paper_numbers() -> pd.DataFrame:
    """The paper's medians, one row per (label, pruning_rate in %): accuracy (%),
    retraining_epochs and speedup where it reports them; Table I first, then Table II, then
    the numbers of the text."""
    table1 = reference_table("aimp_table1.csv")
    table1 = pd.DataFrame({"label": ["IMP+WR" if tau == 0 else f"AIMP_{tau}+WR" for tau in table1["tau"]],
                           "pruning_rate": 20, "accuracy": table1["accuracy"] * 100,
                           "retraining_epochs": table1["total_retraining_epochs"], "speedup": table1["speedup"]})
    table2 = reference_table("aimp_table2.csv").melt(
        id_vars="pruning_rate", value_vars=["imp_wr_accuracy", "aimp50_wr_accuracy"], value_name="accuracy")
    table2 = table2.assign(label=table2["variable"].map({"imp_wr_accuracy": "IMP+WR", "aimp50_wr_accuracy": "AIMP_50+WR"}),
                           accuracy=table2["accuracy"] * 100).drop(columns="variable")
    text = reference_table("aimp_text_results.csv")
    text = pd.DataFrame({"label": text["method"], "pruning_rate": 20, "accuracy": text["median_test_accuracy"]})
    return pd.concat([table1, table2, text], ignore_index=True).drop_duplicates(["label", "pruning_rate"])


def median_cells(records: pd.DataFrame, baselines: list[str]) -> pd.DataFrame:
    """One row per (label, goal): p (%), the seeds, their run ids, the median, min and max
    test accuracy, the median sparsity and own_epochs, and ``delta`` and ``speedup`` against
    the baseline row of the same technique at the same goal (NaN without one)."""
    records = records.assign(goal_sparsity=records["goal_sparsity"].round(9))
    cells = records.groupby(KEYS, sort=False).agg(
        technique=("hp_technique", "first"), pruning_rate=("hp_prune_fraction", "first"),
        n_seeds=("seed", "size"), run_ids=("run_id", lambda ids: " ".join(sorted(ids))),
        test_accuracy_median=("test_accuracy", "median"), test_accuracy_min=("test_accuracy", "min"),
        test_accuracy_max=("test_accuracy", "max"), sparsity_median=("sparsity", "median"),
        own_epochs=("own_epochs", "median")).reset_index()
    cells["pruning_rate"] = (cells["pruning_rate"] * 100).round(6)
    base = cells[cells["label"].isin(baselines)][["goal_sparsity", "technique", "test_accuracy_median", "own_epochs"]]
    cells = cells.merge(base.rename(columns={"test_accuracy_median": "baseline_accuracy",
                                             "own_epochs": "baseline_epochs"}),
                        on=["goal_sparsity", "technique"], how="left")
    cells["delta"] = cells["test_accuracy_median"] - cells.pop("baseline_accuracy")
    cells["speedup"] = cells.pop("baseline_epochs") / cells["own_epochs"]
    return cells


def with_paper(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells with the paper's accuracy, retraining epochs and speed-up (``paper_*``) and
    its delta from the paper's IMP of the same technique and rate."""
    paper = paper_numbers()
    cells = cells.merge(paper.rename(columns=lambda name: name if name in ("label", "pruning_rate") else f"paper_{name}"),
                        on=["label", "pruning_rate"], how="left")
    imp = paper[paper["label"].str.startswith("IMP+")]
    imp = imp.assign(technique=imp["label"].str.removeprefix("IMP+").str.lower())[["technique", "pruning_rate",
                                                                                   "accuracy"]]
    cells = cells.merge(imp.rename(columns={"accuracy": "paper_imp_accuracy"}), on=["technique", "pruning_rate"],
                        how="left")
    cells["paper_delta"] = cells["paper_accuracy"] - cells.pop("paper_imp_accuracy")
    return cells


def iteration_curves(histories: dict[str, pd.DataFrame], records: pd.DataFrame) -> pd.DataFrame:
    """Figure 1's points: per (label, goal, iteration), the median over seeds of the test
    accuracy and of the share of weights remaining after that iteration, with the run ids."""
    rows = []
    for run in records.itertuples():
        history = histories.get(run.run_id)
        if history is None or "test_accuracy" not in history:
            continue
        ends = history.dropna(subset=["test_accuracy"]).reset_index(drop=True)
        rows += [{"label": run.label, "goal_sparsity": round(run.goal_sparsity, 9), "iteration": i + 1,
                  "run_id": run.run_id, "test_accuracy": end.test_accuracy, "remaining": 1 - end.sparsity}
                 for i, end in enumerate(ends.itertuples())]
    if not rows:
        return pd.DataFrame(columns=[*KEYS, "iteration", "test_accuracy_median", "remaining_median", "run_ids"])
    return pd.DataFrame(rows).groupby([*KEYS, "iteration"], sort=False).agg(
        test_accuracy_median=("test_accuracy", "median"), remaining_median=("remaining", "median"),
        run_ids=("run_id", lambda ids: " ".join(sorted(ids)))).reset_index()


def number(value, digits: int = 2, sign: bool = False) -> str:
    """``value`` with ``digits`` decimals (and its sign), or a dash when there is none."""
    if not math.isfinite(float(value)):
        return "--"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def table_rows(cells: pd.DataFrame) -> list[dict]:
    """The table's rows from aimp.csv's cells, in their order: per row and p, its texts (p,
    median sparsity, the paper's and our median accuracy, delta, retraining epochs, speed-up)."""
    return [{"label": cell.label, "cells": [
        f"{cell.pruning_rate:g}", number(cell.sparsity_median * 100),
        number(cell.paper_accuracy), number(cell.test_accuracy_median * 100),
        number(cell.paper_delta, sign=True), number(cell.delta * 100, sign=True),
        number(cell.paper_retraining_epochs, 0), number(cell.own_epochs, 0),
        number(cell.paper_speedup), number(cell.speedup)]} for cell in cells.itertuples()]


def render_aimp_table(cells: pd.DataFrame, *, labels: list[str], caption: str, out_dir: Path) -> list[Path]:
    """Write ``aimp.csv`` (every cell with its run ids and the paper's numbers), ``table.tex``
    and ``standalone.tex``: per row and p, accuracy (%), its delta from IMP (points),
    retraining epochs and speed-up, the paper's beside ours."""
    out_dir = Path(out_dir)
    order = {label: i for i, label in enumerate(labels)}
    cells = cells[cells["label"].isin(order)].sort_values(
        ["pruning_rate", "label"], key=lambda column: column.map(order) if column.name == "label" else column)
    cells.to_csv(out_dir / "aimp.csv", index=False)
    table = environment().get_template("aimp_table.tex.j2").render(caption=caption, rows=table_rows(cells))
    return [out_dir / "aimp.csv", *write_table(table, out_dir)]


def render_curves(curves: pd.DataFrame, *, labels: list[str], out_dir: Path, title: str) -> list[Path]:
    """Write ``curve.csv`` and ``curve.pdf``/``.png``: one panel per goal sparsity, the
    median test accuracy after every iteration against the weights remaining (log scale,
    falling to the right, as the paper's Figure 1)."""
    out_dir = Path(out_dir)
    curves.to_csv(out_dir / "curve.csv", index=False)
    goals = list(dict.fromkeys(curves["goal_sparsity"]))
    styles = _styles([label for label in labels if label in set(curves["label"])])
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(5.5 * max(1, len(goals)), 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, max(1, len(goals)), squeeze=False)[0]
    for ax, goal in zip(axes, goals):
        at_goal = curves[(curves["goal_sparsity"] - goal).abs() < GOAL_TOLERANCE]
        for style in styles:
            curve = at_goal[at_goal["label"] == style["label"]].sort_values("iteration")
            if not curve.empty:
                ax.plot(curve["remaining_median"] * 100, curve["test_accuracy_median"] * 100, **style)
        ax.set_xscale("log")
        plain_log_axis(ax.xaxis)
        ax.invert_xaxis()
        ax.set_xlabel("Weights remaining (%)")
        ax.set_title(f"goal {goal * 100:.2f}% sparsity")
        ax.legend(fontsize="small", loc="best")
    axes[0].set_ylabel("Median test accuracy (%)")
    fig.suptitle(title)
    return [out_dir / "curve.csv", *_save(fig, out_dir, "curve")]
