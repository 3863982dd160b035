"""Test accuracy against the retraining budget (Love Retraining, Figures 3-5).

A run's retraining budget is the number of epochs it trained after the dense run it starts
from: J * T_rt for IMP. The envelope at a budget x applies the tables' selection rule to the
configurations whose budget is at most x: per row and goal sparsity, the configuration with
the best mean validation accuracy, reported with its test accuracy (mean, min and max over
seeds). So the envelope never falls as x grows unless validation and test disagree.
"""

from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.report.figures import DENSE_STYLES, _draw_dense, _save, _styles
from bench.report.select import GOAL_TOLERANCE, select_cells

BUDGET = "retrain_budget"


def with_budget(records: pd.DataFrame, training_epochs: int) -> pd.DataFrame:
    """The records with ``retrain_budget``: their epochs beyond the dense training's."""
    return records.assign(**{BUDGET: records["epochs"].astype(int) - training_epochs})


def envelope(records: pd.DataFrame, goals: list[float], select_by: str = "val_accuracy") -> pd.DataFrame:
    """The selected cell of every (label, goal) at every budget x of the label's runs, choosing
    among its runs with ``retrain_budget`` <= x; columns of ``select_cells`` plus ``retrain_budget``."""
    frames = [select_cells(runs[runs[BUDGET] <= x], goals, select_by).assign(**{BUDGET: x})
              for _, runs in records.groupby("label") for x in sorted(runs[BUDGET].unique())]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def envelope_by(records: pd.DataFrame, goals: list[float], key: str, select_by: str = "val_accuracy") -> pd.DataFrame:
    """The envelope among the runs of each value of hyperparameter ``key`` (Back to Basics'
    Figure 3: one row of panels per weight decay), with a ``panel`` column naming the value."""
    column = f"hp_{key}"
    frames = [envelope(runs, goals, select_by).assign(panel=f"{key} = {value:g}" if isinstance(value, float)
                                                      else f"{key} = {value}")
              for value, runs in records.groupby(column)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def render_envelope(points: pd.DataFrame, *, labels: list[str], baselines: list[str], goals: list[float],
                    out_dir: Path, title: str, stem: str = "envelope") -> list[Path]:
    """Write ``<stem>.pdf``/``.png`` (one panel per goal sparsity, one row of panels per value
    of a ``panel`` column if the points have one: the envelope of each row with its min-max
    band over seeds; baselines and the dense model as horizontal lines at their best
    configuration) and ``<stem>.csv`` (every point with its run ids)."""
    out_dir = Path(out_dir)
    points.to_csv(out_dir / f"{stem}.csv", index=False)
    dense = [label for label in labels if (points.loc[points["label"] == label, "method"] == "dense").any()]
    curves = [label for label in labels if label not in dense and label not in baselines]
    lines = [label for label in labels if label in baselines]
    styles = _styles(curves + lines)
    panels = list(dict.fromkeys(points["panel"])) if "panel" in points else [None]
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(4.2 * len(goals), 4.2 * len(panels)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(panels), len(goals), sharey=False, squeeze=False)
    for panel, row_axes in zip(panels, axes):
        in_panel = points if panel is None else points[points["panel"] == panel]
        for ax, goal in zip(row_axes, goals):
            at_goal = in_panel[(in_panel["goal_sparsity"] - goal).abs() < GOAL_TOLERANCE]
            draw_budget_panel(ax, at_goal, styles, len(curves), dense)
            ax.set_title(f"{goal * 100:g}% sparsity" + (f", {panel}" if panel else ""))
        row_axes[0].set_ylabel("Test accuracy (%)")
    fig.suptitle(title)
    return [out_dir / f"{stem}.csv", *_save(fig, out_dir, stem)]


def draw_budget_panel(ax, at_goal: pd.DataFrame, styles: list[dict], n_curves: int, dense: list[str]) -> None:
    """One goal's panel: the first ``n_curves`` styles as envelopes, the others as baselines."""
    for style in styles[:n_curves]:
        curve = at_goal[at_goal["label"] == style["label"]].sort_values(BUDGET)
        ax.plot(curve[BUDGET], curve["test_accuracy_mean"] * 100, **style)
        ax.fill_between(curve[BUDGET], curve["test_accuracy_min"] * 100, curve["test_accuracy_max"] * 100,
                        color=style["color"], alpha=0.2, linewidth=0)
    for style in styles[n_curves:]:
        for row in at_goal[at_goal["label"] == style["label"]].sort_values(BUDGET).tail(1).itertuples():
            ax.axhline(row.test_accuracy_mean * 100, color=style["color"], linestyle="--",
                       label=f"{style['label']} ({row.retrain_budget} epochs)")
            ax.axhspan(row.test_accuracy_min * 100, row.test_accuracy_max * 100, color=style["color"], alpha=0.12,
                       linewidth=0)
    for label, linestyle in zip(dense, DENSE_STYLES):
        rows = at_goal[at_goal["label"] == label]
        if not rows.empty:
            _draw_dense(ax, rows.iloc[-1], label, linestyle)
    ax.set_xlabel("Total retraining epochs")
    ax.legend(fontsize="small", loc="lower right")
