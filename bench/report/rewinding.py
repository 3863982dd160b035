"""Renda, Frankle & Carbin's figures: retraining techniques against compression and against
retraining time (Figures 1-4 and 7-10).

A point is one (row, compression level, retraining time t) over seeds: the median, minimum
and maximum test accuracy (the paper plots these over three runs) and the mean validation
accuracy. A level is the goal sparsity of unstructured pruning, or the rate level k of
structured pruning (its sparsity follows from Li et al.'s rates). An iterative run gives one
point per iteration, read from the end of each phase of its history.

(a) ``rewinding-best.*``: per row and level, the t with the best mean validation accuracy
(ties: the shorter t), drawn at its median compression ratio. (b) ``rewinding-curves.*``:
test accuracy against t at each level, one line per technique, with the rewinding safe zone
shaded: 25% to 90% of T, where both rewinding techniques outperform fine-tuning (section 4).
``rewinding-points.csv``: every point with the run ids behind it and whether (a) plots it.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.report.figures import _save, _styles

SAFE_ZONE = (0.25, 0.90)  # shares of the training time T
TECHNIQUES = {"ft": "FT", "wr": "WR", "lrr": "LRR", "lowlr_wr": "Low-LR WR", "reinit": "Reinit"}
GRANULARITIES = ("one-shot", "iterative", "structured")
DENSE = "Dense"
T_COLUMN = "hp_retrain_epochs"
KEYS = ["granularity", "label", "technique", "level", T_COLUMN]


def per_iteration(records: pd.DataFrame, read_history: Callable[[str], pd.DataFrame]) -> pd.DataFrame:
    """The records, each iterative run's (``hp_prune_fraction`` set) replaced by one per
    iteration j: its history's row at the end of phase j (accuracies and sparsity report),
    ``goal_sparsity`` 1 - (1 - p)^j (the run's goal at the last) and ``iteration`` j."""
    iterative = records.get("hp_prune_fraction", pd.Series(np.nan, index=records.index)).notna()
    rows = []
    for record in records[iterative].to_dict("records"):
        history = read_history(record["run_id"])
        ends = history[history["test_accuracy"].notna()].reset_index(drop=True)
        for j, end in enumerate(ends.to_dict("records"), start=1):
            goal = round(min(1 - (1 - record["hp_prune_fraction"]) ** j, record["goal_sparsity"]), 12)
            reported = {key: value for key, value in end.items() if key in record and key not in ("epoch", "phase")}
            rows.append({**record, **reported, "goal_sparsity": goal if j < len(ends) else record["goal_sparsity"],
                         "iteration": j})
    return pd.concat([records[~iterative], pd.DataFrame(rows)], ignore_index=True)


def granularity(records: pd.DataFrame) -> pd.Series:
    structured = records["method"] == "rewinding-filters"
    iterative = records.get("hp_prune_fraction", pd.Series(np.nan, index=records.index)).notna()
    return pd.Series(np.select([structured, iterative], ["structured", "iterative"], "one-shot"), index=records.index)


def curve_points(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (granularity, label, technique, level, t) of the pruned records: ``n_seeds``,
    ``val_accuracy_mean``, test accuracy ``_median``/``_min``/``_max``, median compression
    ratio and sparsity, ``model`` and ``run_ids``."""
    pruned = records[records["method"] != "dense"]
    pruned = pruned.assign(granularity=granularity(pruned), technique=pruned["hp_technique"].map(TECHNIQUES),
                           level=pruned["goal_sparsity"].fillna(pruned.get("hp_rate_level", np.nan)))
    groups = pruned.groupby(KEYS, sort=True)
    points = groups.agg(n_seeds=("seed", "size"), val_accuracy_mean=("val_accuracy", "mean"),
                        test_accuracy_median=("test_accuracy", "median"), test_accuracy_min=("test_accuracy", "min"),
                        test_accuracy_max=("test_accuracy", "max"), compression_ratio=("compression_ratio", "median"),
                        sparsity=("sparsity", "median"), model=("model", "first"),
                        run_ids=("run_id", lambda ids: " ".join(sorted(ids))))
    return points.reset_index()


def best_points(points: pd.DataFrame) -> pd.DataFrame:
    """Per (granularity, label, level), the point of the t with the best mean validation
    accuracy; the shorter t on a tie."""
    ranked = points.sort_values([*KEYS[:-1], "val_accuracy_mean", T_COLUMN], ascending=[True] * 4 + [False, True])
    return ranked.drop_duplicates(KEYS[:-1]).reset_index(drop=True)


def dense_points(records: pd.DataFrame) -> pd.DataFrame:
    """The dense models' test accuracy per model: median, min and max over seeds."""
    dense = records[records["method"] == "dense"]
    return (dense.groupby("model")["test_accuracy"].agg(["median", "min", "max"])
            .add_prefix("test_accuracy_").reset_index())


def render_rewinding(records: pd.DataFrame, *, epochs: int, out_dir: Path, title: str) -> list[Path]:
    """Write rewinding-points.csv, rewinding-best.pdf/png (a) and rewinding-curves.pdf/png (b)
    for the records (iterations already split by ``per_iteration``)."""
    out_dir = Path(out_dir)
    points = curve_points(records)
    best = best_points(points)
    dense = dense_points(records)
    chosen = set(zip(*(best[key] for key in KEYS)))
    points.assign(best=[key in chosen for key in zip(*(points[key] for key in KEYS))]).to_csv(
        out_dir / "rewinding-points.csv", index=False)
    styles = {style["label"]: style for style in _styles(list(TECHNIQUES.values()))}
    return [out_dir / "rewinding-points.csv", *_save(best_figure(best, dense, styles, title), out_dir, "rewinding-best"),
            *_save(curves_figure(points, dense, styles, epochs, title), out_dir, "rewinding-curves")]


def draw_band(ax, x, line: pd.DataFrame, style: dict) -> None:
    ax.plot(x, line["test_accuracy_median"] * 100, **style)
    ax.fill_between(x, line["test_accuracy_min"] * 100, line["test_accuracy_max"] * 100, color=style["color"],
                    alpha=0.2, linewidth=0)


def draw_dense(ax, dense: pd.DataFrame, model: str) -> None:
    for row in dense[dense["model"] == model].itertuples():
        ax.axhline(row.test_accuracy_median * 100, color="0.3", linestyle="--", label=f"{DENSE} {model}")
        ax.axhspan(row.test_accuracy_min * 100, row.test_accuracy_max * 100, color="0.3", alpha=0.1, linewidth=0)


def figure(n_panels: int, columns: int) -> tuple[Figure, list]:
    rows = -(-n_panels // columns)
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(4.4 * min(columns, n_panels), 3.6 * rows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, min(columns, n_panels), squeeze=False).flatten()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes)


def best_figure(best: pd.DataFrame, dense: pd.DataFrame, styles: dict, title: str) -> Figure:
    """(a): one panel per granularity, accuracy against compression ratio (log scale)."""
    panels = [g for g in GRANULARITIES if g in set(best["granularity"])]
    fig, axes = figure(len(panels), 3)
    for ax, panel in zip(axes, panels):
        at = best[best["granularity"] == panel]
        for technique, line in at.groupby("technique", sort=False):
            line = line.sort_values("compression_ratio")
            draw_band(ax, line["compression_ratio"], line, styles[technique])
        draw_dense(ax, dense, at["model"].iloc[0])
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{panel}, best t by validation")
        ax.set_xlabel("Compression ratio")
        ax.set_ylabel("Test accuracy (%)")
        ax.legend(fontsize="small")
    fig.suptitle(title)
    return fig


def level_title(granularity_name: str, level: float, compression: float) -> str:
    where = f"k = {level:g}" if granularity_name == "structured" else f"{level * 100:.1f}% sparsity"
    return f"{granularity_name}, {where} ({compression:.1f}x)"


def curves_figure(points: pd.DataFrame, dense: pd.DataFrame, styles: dict, epochs: int, title: str) -> Figure:
    """(b): one panel per (granularity, level) with at least two retraining times, accuracy
    against t with the safe zone shaded."""
    curves = points.groupby(["granularity", "level"]).filter(lambda group: group[T_COLUMN].nunique() > 1)
    panels = sorted(set(zip(curves["granularity"], curves["level"])), key=lambda p: (GRANULARITIES.index(p[0]), p[1]))
    fig, axes = figure(max(len(panels), 1), 3)
    for ax, (panel, level) in zip(axes, panels):
        at = curves[(curves["granularity"] == panel) & (curves["level"] == level)]
        ax.axvspan(SAFE_ZONE[0] * epochs, SAFE_ZONE[1] * epochs, color="0.85", label="rewinding safe zone")
        for technique, line in at.groupby("technique", sort=False):
            line = line.sort_values(T_COLUMN)
            draw_band(ax, line[T_COLUMN], line, styles[technique])
        draw_dense(ax, dense, at["model"].iloc[0])
        ax.set_xlim(0, epochs)
        ax.set_title(level_title(panel, level, at["compression_ratio"].median()), fontsize="medium")
        ax.set_xlabel("Retraining epochs t")
        ax.set_ylabel("Test accuracy (%)")
        ax.legend(fontsize="x-small")
    fig.suptitle(title)
    return fig
