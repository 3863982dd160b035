"""Accuracy-vs-sparsity and accuracy-vs-speedup plots of the selected cells.

Figures are built as ``matplotlib.figure.Figure`` objects rendered by the Agg canvas, so
no pyplot state (global backend, open-figure registry) is touched.
"""

from itertools import cycle
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

MARKERS = "osD^vP*Xph"
DENSE_STYLES = ("--", ":", "-.")
PANELS = (("sparsity", "Sparsity (%)", 100.0), ("theoretical_speedup", "Theoretical speedup", 1.0))
COLLAPSE_MARK, COLLAPSE_LABEL = r"$\dagger$", "layer collapse (some seed)"  # the tables' dagger
TOP_BAND_POINTS = 5.0  # curves whose means stay this close to the best one get a zoomed panel


def plain_log_axis(axis, suffix: str = "") -> None:
    """Plain tick labels on a log-scaled axis (6, 10, 20, 40; not 6x10^0 or 2x10^1), as many
    per decade as its span leaves room for; call it once the data are drawn."""
    low, high = sorted(axis.get_view_interval())
    decades = np.log10(high / low) if low > 0 else np.inf
    subs = (1, 2, 4, 6) if decades <= 2.5 else (1, 3) if decades <= 5 else (1,)
    axis.set_major_locator(LogLocator(subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}{suffix}"))
    axis.set_minor_formatter(NullFormatter())


def _draw_method(ax, rows: pd.DataFrame, x_metric: str, x_scale: float, style: dict,
                 y_metric: str = "test_accuracy", y_scale: float = 100.0) -> None:
    """The mean of ``y_metric`` over the mean x value, with the seeds' min-max band; a point
    whose configuration ended with a collapsed layer in some seed is crossed out."""
    x = rows[f"{x_metric}_mean"].to_numpy(dtype=float) * x_scale
    keep = np.isfinite(x) & (x > 0)
    order = np.argsort(x[keep])
    rows, x = rows[keep].iloc[order], x[keep][order]
    ax.plot(x, rows[f"{y_metric}_mean"] * y_scale, **style)
    ax.fill_between(x, rows[f"{y_metric}_min"] * y_scale, rows[f"{y_metric}_max"] * y_scale,
                    color=style["color"], alpha=0.2, linewidth=0)
    collapsed = rows.get("n_collapsed_seeds", pd.Series(0, index=rows.index)).to_numpy(dtype=float) > 0
    if collapsed.any():
        ax.scatter(x[collapsed], rows.loc[collapsed, f"{y_metric}_mean"] * y_scale, marker=COLLAPSE_MARK, s=120,
                   color="black", zorder=3, label=COLLAPSE_LABEL)


def _styles(labels: list[str]) -> list[dict]:
    palette = sns.color_palette("colorblind", len(labels))
    return [{"color": color, "marker": marker, "label": label}
            for label, color, marker in zip(labels, palette, cycle(MARKERS))]


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.pdf", out_dir / f"{stem}.png"]
    for path in paths:
        fig.savefig(path, dpi=200)
    return paths


def legend_entries(ax) -> tuple[list, list[str]]:
    """The axes' legend handles and labels, each label once (the collapse mark recurs)."""
    entries = dict(zip(*reversed(ax.get_legend_handles_labels())))
    return list(entries.values()), list(entries)


def _draw_dense(ax, row: pd.Series, label: str, linestyle: str) -> None:
    """The dense baseline: a horizontal line at its mean with its min-max band."""
    ax.axhline(row["test_accuracy_mean"] * 100, color="0.2", linestyle=linestyle, label=label)
    ax.axhspan(row["test_accuracy_min"] * 100, row["test_accuracy_max"] * 100, color="0.5", alpha=0.15, linewidth=0)


def top_band(cells: pd.DataFrame, pruned: list[str], dense: list[str]) -> tuple[float, float] | None:
    """The accuracy band (%) of the top curves when two or more pruned rows stay within
    ``TOP_BAND_POINTS`` of the best mean at every goal they share (with their seed bands, and
    the dense rows' means within those points of them), else None: there, the full panel
    hides their differences."""
    shown = cells[cells["label"].isin(pruned)]
    if shown.empty:
        return None
    best = shown.groupby("goal_sparsity")["test_accuracy_mean"].transform("max")
    close = (best - shown["test_accuracy_mean"]) * 100 <= TOP_BAND_POINTS
    top = [label for label, near in close.groupby(shown["label"]).all().items() if near]
    if len(top) < 2:
        return None
    rows = shown[shown["label"].isin(top)]
    low, high = rows["test_accuracy_min"].min() * 100, rows["test_accuracy_max"].max() * 100
    baselines = cells.loc[cells["label"].isin(dense), "test_accuracy_mean"] * 100
    high = max([high, *baselines[baselines <= high + TOP_BAND_POINTS]])
    margin = max(0.2, (high - low) * 0.05)
    return low - margin, high + margin


def render_pareto(cells: pd.DataFrame, *, labels: list[str], out_dir: Path, title: str,
                  panels: dict[str, list[str]] | None = None) -> list[Path]:
    """Write ``pareto.pdf`` and ``pareto.png``: test accuracy against sparsity (above) and
    theoretical speedup (below, log scale), one line per label with its min-max band, dense
    rows as baselines; with ``panels`` (title: labels), one column of panels per group, the
    dense rows in every one, a label keeping its style across them. Where the top curves
    overlap (``top_band``), a third row shows the sparsity panel zoomed on their band."""
    shown = cells[cells["label"].isin(labels)]
    dense = [label for label in labels if (shown.loc[shown["label"] == label, "method"] == "dense").any()]
    pruned = [label for label in labels if label not in dense and (shown["label"] == label).any()]
    groups = panels or {"": pruned}
    bands = {group: top_band(shown, [m for m in members if m in pruned], dense) for group, members in groups.items()}
    zoomed = any(band is not None for band in bands.values())
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(5.5 * len(groups), 8.4 + 4 * zoomed), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(2 + zoomed, len(groups), squeeze=False)
    rows = [*PANELS, PANELS[0]][: 2 + zoomed]
    for column, (group, members) in enumerate(groups.items()):
        for row, (ax, (metric, xlabel, scale)) in enumerate(zip(axes[:, column], rows)):
            if row == 2 and bands[group] is None:
                ax.set_visible(False)
                continue
            for style in _styles(members):
                if style["label"] in pruned:
                    _draw_method(ax, shown[shown["label"] == style["label"]], metric, scale, style)
            for label, linestyle in zip(dense, cycle(DENSE_STYLES)):
                _draw_dense(ax, shown[shown["label"] == label].iloc[0], label, linestyle)
            ax.set_xlabel(xlabel)
            ax.set_title(", ".join(filter(None, (group, "zoomed on the top curves" if row == 2 else ""))))
            if row == 2:
                ax.set_ylim(*bands[group])
            ax.legend(*legend_entries(ax), fontsize="small", loc="lower left")
        axes[1, column].set_xscale("log")
        plain_log_axis(axes[1, column].xaxis)
    top = [min(ax.get_ylim()[0] for ax in axes[:2].flat), max(ax.get_ylim()[1] for ax in axes[:2].flat)]
    for ax in axes[:2].flat:  # the two full panels share their accuracy axis
        ax.set_ylim(*top)
    for ax in axes[:, 0]:
        ax.set_ylabel("Test accuracy (%)")
    fig.suptitle(title)
    return _save(fig, out_dir, "pareto")


def render_stability(cells: pd.DataFrame, *, labels: list[str], out_dir: Path, title: str) -> list[Path]:
    """Write ``stability.pdf`` and ``stability.png`` (Back to Basics, Figure 9): per method,
    the increase in test accuracy from the FT retraining (above) and the pruning stability
    (below) against sparsity, mean lines with min-max bands over seeds."""
    shown = cells[cells["label"].isin(labels) & cells["pruning_stability_mean"].notna()]
    styles = _styles([label for label in labels if (shown["label"] == label).any()])
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(7, 7), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, 1, sharex=True)
    for ax, (metric, ylabel, scale) in zip(axes, (("retrain_gain", "Increase in accuracy (points)", 100.0),
                                                  ("pruning_stability", "Pruning stability (%)", 100.0))):
        for style in styles:
            _draw_method(ax, shown[shown["label"] == style["label"]], "sparsity", 100.0, style, metric, scale)
        ax.set_ylabel(ylabel)
    axes[1].set_xlabel("Sparsity (%)")
    fig.legend(*legend_entries(axes[0]), loc="outside right upper")
    fig.suptitle(title)
    return _save(fig, out_dir, "stability")
