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

Two more figures of the iterative rows' best points, by the report's ``figures``: (c)
``rewinding-algorithm.*`` (Figures 5-6, appendix D): Algorithm 1 (LRR for T) and its
instantiations with WR for 90% of T and FT for T, accuracy and search cost against
compression, with table.tex of both at the goal sparsities. The search cost is the epochs
trained, the dense network's T included: the paper's T (1 + k) after k iterations of t = T.
(d) ``rewinding-speedup.*`` (Figures 11-12, appendix F): the median theoretical speedup
over the original network, and each technique's over fine-tuning's at the same compression
(fine-tuning's FLOPs over the technique's: the ratio of their median speedups), with
``rewinding-speedup.csv``.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.report.figures import _save, _styles, plain_log_axis
from bench.report.latex import environment
from bench.report.select import GOAL_TOLERANCE
from bench.report.table import MISSING, write_table

SAFE_ZONE = (0.25, 0.90)  # shares of the training time T
TECHNIQUES = {"ft": "FT", "wr": "WR", "lrr": "LRR", "lowlr_wr": "Low-LR WR", "reinit": "Reinit"}
GRANULARITIES = ("one-shot", "iterative", "structured")
DENSE = "Dense"
BASELINE = "FT"  # Figure 12 compares FLOPs with fine-tuning's
T_COLUMN = "hp_retrain_epochs"
KEYS = ["granularity", "label", "technique", "level", T_COLUMN]


def per_iteration(records: pd.DataFrame, read_history: Callable[[str], pd.DataFrame]) -> pd.DataFrame:
    """The records, each iterative run's (``hp_prune_fraction`` set) replaced by one per
    iteration j: its history's row at the end of phase j (accuracies and sparsity report),
    ``goal_sparsity`` 1 - (1 - p)^j (the run's goal at the last), ``iteration`` j, and the
    epochs trained up to it: ``own_epochs`` the run's, ``epochs`` with its dense parent's."""
    iterative = records.get("hp_prune_fraction", pd.Series(np.nan, index=records.index)).notna()
    rows = []
    for record in records[iterative].to_dict("records"):
        history = read_history(record["run_id"])
        ends = history[history["test_accuracy"].notna()].reset_index(drop=True)
        for j, end in enumerate(ends.to_dict("records"), start=1):
            goal = round(min(1 - (1 - record["hp_prune_fraction"]) ** j, record["goal_sparsity"]), 12)
            reported = {key: value for key, value in end.items() if key in record and key not in ("epoch", "phase")}
            own = int(end["epoch"])  # the history counts the run's epochs across its phases
            rows.append({**record, **reported, "goal_sparsity": goal if j < len(ends) else record["goal_sparsity"],
                         "iteration": j, "own_epochs": own, "epochs": record["epochs"] - record["own_epochs"] + own})
    return pd.concat([records[~iterative], pd.DataFrame(rows)], ignore_index=True)


def granularity(records: pd.DataFrame) -> pd.Series:
    structured = records["method"] == "rewinding-filters"
    iterative = records.get("hp_prune_fraction", pd.Series(np.nan, index=records.index)).notna()
    return pd.Series(np.select([structured, iterative], ["structured", "iterative"], "one-shot"), index=records.index)


def curve_points(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (granularity, label, technique, level, t) of the pruned records: ``n_seeds``,
    ``val_accuracy_mean``, test accuracy and theoretical speedup ``_median``/``_min``/``_max``,
    median compression ratio and sparsity, ``search_cost`` (median epochs trained, the dense
    parent's included), ``model`` and ``run_ids``."""
    pruned = records[records["method"] != "dense"]
    pruned = pruned.assign(granularity=granularity(pruned), technique=pruned["hp_technique"].map(TECHNIQUES),
                           level=pruned["goal_sparsity"].fillna(pruned.get("hp_rate_level", np.nan)))
    groups = pruned.groupby(KEYS, sort=True)
    points = groups.agg(n_seeds=("seed", "size"), val_accuracy_mean=("val_accuracy", "mean"),
                        test_accuracy_median=("test_accuracy", "median"), test_accuracy_min=("test_accuracy", "min"),
                        test_accuracy_max=("test_accuracy", "max"),
                        theoretical_speedup_median=("theoretical_speedup", "median"),
                        theoretical_speedup_min=("theoretical_speedup", "min"),
                        theoretical_speedup_max=("theoretical_speedup", "max"),
                        compression_ratio=("compression_ratio", "median"), sparsity=("sparsity", "median"),
                        search_cost=("epochs", "median"), model=("model", "first"),
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


def speedup_over_baseline(best: pd.DataFrame) -> pd.DataFrame:
    """The best points with ``speedup_over_ft``: per (granularity, level), the median
    theoretical speedup over fine-tuning's, i.e. fine-tuning's FLOPs over the point's."""
    baseline = best[best["technique"] == BASELINE].set_index(["granularity", "level"])["theoretical_speedup_median"]
    at = pd.MultiIndex.from_frame(best[["granularity", "level"]])
    return best.assign(speedup_over_ft=best["theoretical_speedup_median"].to_numpy() / baseline.reindex(at).to_numpy())


def render_rewinding(records: pd.DataFrame, *, epochs: int, out_dir: Path, title: str,
                     figures: tuple[str, ...] = ("best", "curves"), goals: tuple[float, ...] = ()) -> list[Path]:
    """Write rewinding-points.csv and the ``figures`` for the records (iterations already
    split by ``per_iteration``): "best" (a), "curves" (b), "algorithm" (c, with table.tex at
    ``goals``) and "speedup" (d, with rewinding-speedup.csv)."""
    out_dir = Path(out_dir)
    points = curve_points(records)
    best = best_points(points)
    dense = dense_points(records)
    chosen = set(zip(*(best[key] for key in KEYS)))
    points.assign(best=[key in chosen for key in zip(*(points[key] for key in KEYS))]).to_csv(
        out_dir / "rewinding-points.csv", index=False)
    styles = {style["label"]: style for style in _styles(list(TECHNIQUES.values()))}
    iterative = best[best["granularity"] == "iterative"]
    paths = [out_dir / "rewinding-points.csv"]
    if "best" in figures:
        paths += _save(best_figure(best, dense, styles, title), out_dir, "rewinding-best")
    if "curves" in figures:
        paths += _save(curves_figure(points, dense, styles, epochs, title), out_dir, "rewinding-curves")
    if "algorithm" in figures:
        paths += [*_save(algorithm_figure(iterative, dense, styles, title), out_dir, "rewinding-algorithm"),
                  *algorithm_table(iterative, goals, title, out_dir)]
    if "speedup" in figures:
        speedups = speedup_over_baseline(iterative)
        speedups.to_csv(out_dir / "rewinding-speedup.csv", index=False)
        paths += [out_dir / "rewinding-speedup.csv",
                  *_save(speedup_figure(speedups, styles, title), out_dir, "rewinding-speedup")]
    return paths


def draw_band(ax, x, line: pd.DataFrame, style: dict, metric: str = "test_accuracy", scale: float = 100) -> None:
    ax.plot(x, line[f"{metric}_median"] * scale, **style)
    ax.fill_between(x, line[f"{metric}_min"] * scale, line[f"{metric}_max"] * scale, color=style["color"],
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


def compression_axis(ax) -> None:
    ax.set_xscale("log")
    plain_log_axis(ax.xaxis, "x")
    ax.set_xlabel("Compression ratio")


def lines(at: pd.DataFrame, styles: dict, by: str):
    """(line, style) per value of ``by`` (technique or row label), in compression order,
    styled by technique and named by that value."""
    for name, line in at.groupby(by, sort=False):
        yield line.sort_values("compression_ratio"), {**styles[line["technique"].iloc[0]], "label": name}


def draw_best(ax, at: pd.DataFrame, dense: pd.DataFrame, styles: dict, by: str = "technique") -> None:
    """Test accuracy against compression ratio (log scale), one line per value of ``by``."""
    for line, style in lines(at, styles, by):
        draw_band(ax, line["compression_ratio"], line, style)
    draw_dense(ax, dense, at["model"].iloc[0])
    compression_axis(ax)
    ax.set_ylabel("Test accuracy (%)")
    ax.legend(fontsize="small")


def best_figure(best: pd.DataFrame, dense: pd.DataFrame, styles: dict, title: str) -> Figure:
    """(a): one panel per granularity, accuracy against compression ratio."""
    panels = [g for g in GRANULARITIES if g in set(best["granularity"])]
    fig, axes = figure(len(panels), 3)
    for ax, panel in zip(axes, panels):
        draw_best(ax, best[best["granularity"] == panel], dense, styles)
        ax.set_title(f"{panel}, best t by validation")
    fig.suptitle(title)
    return fig


def algorithm_figure(best: pd.DataFrame, dense: pd.DataFrame, styles: dict, title: str) -> Figure:
    """(c): the iterative rows' accuracy and search cost against compression ratio."""
    fig, (accuracy, cost) = figure(2, 2)
    draw_best(accuracy, best, dense, styles, by="label")
    accuracy.set_title("Accuracy")
    for line, style in lines(best, styles, "label"):
        cost.plot(line["compression_ratio"], line["search_cost"], **style)
    compression_axis(cost)
    cost.set_title("Search cost")
    cost.set_ylabel("Epochs trained, dense training included")
    cost.legend(fontsize="small")
    fig.suptitle(title)
    return fig


def algorithm_table(best: pd.DataFrame, goals: tuple[float, ...], title: str, out_dir: Path) -> list[Path]:
    """table.tex and standalone.tex: per row, the median test accuracy (%) and the search
    cost (epochs) at each goal sparsity."""
    labels = list(dict.fromkeys(best["label"]))
    groups, cells = [], {label: [] for label in labels}
    for goal in goals:
        at = best[(best["level"] - goal).abs() < GOAL_TOLERANCE].set_index("label")
        if at.empty:
            continue
        groups.append({"goal": f"{at['compression_ratio'].median():.1f}x ({goal * 100:.1f}% sparsity)", "span": 2})
        for label in labels:
            cells[label] += ([f"{at.loc[label, 'test_accuracy_median'] * 100:.2f}", f"{at.loc[label, 'search_cost']:.0f}"]
                             if label in at.index else [MISSING, MISSING])
    table = environment().get_template("split_table.tex.j2").render(
        caption=(f"{title}: per row and compression ratio, the median test accuracy over seeds (%) and the search "
                 "cost, the epochs trained with the dense network's T included (T (1 + k) after k iterations of "
                 "retraining for T)."),
        groups=groups, columns=[{"split": split} for _ in groups for split in (r"Acc. (\%)", "Epochs")],
        split_name="", rows=[{"label": label, "cells": cells[label]} for label in labels])
    return write_table(table, out_dir)


def speedup_figure(speedups: pd.DataFrame, styles: dict, title: str) -> Figure:
    """(d): theoretical speedup over the original network and over fine-tuning against
    compression ratio, one line per technique."""
    fig, (original, baseline) = figure(2, 2)
    for line, style in lines(speedups, styles, "technique"):
        draw_band(original, line["compression_ratio"], line, style, "theoretical_speedup", 1)
        baseline.plot(line["compression_ratio"], line["speedup_over_ft"], **style)
    for ax, over, flops in ((original, "the original network", "Original"), (baseline, BASELINE, BASELINE)):
        compression_axis(ax)
        ax.set_title(f"Theoretical speedup over {over}", fontsize="medium")
        ax.set_ylabel(f"{flops} FLOPs / FLOPs")
        ax.legend(fontsize="small")
    fig.suptitle(f"{title}\nper compression ratio, the t with the best validation accuracy")
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
