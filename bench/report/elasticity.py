"""SNIP-it's Figure 6 (appendix A): the weight elasticities at initialisation, sorted like a
Lorenz curve, on a log scale, per dataset.

Each run of method ``elasticity`` (methods/at_init/elasticity.py) trains nothing and keeps
its sorted elasticities in its history; the figure draws them, a panel per dataset and a
line per row (network), the median over seeds with their min-max band. An elasticity of
exactly 0 (a weight without gradient: behind a dead unit, or a kernel's border on a 1x1 map)
has no place on a log axis, and a median or bound of 0 is not drawn; the CSV keeps them.
"""

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.report.figures import _save, _styles, plain_log_axis

COLUMNS = ["label", "dataset", "model", "seed", "run_id", "rank", "share", "elasticity"]
DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "imagenette": "Imagenette", "mnist1d": "MNIST-1D",
                 "digits": "Digits (8x8)"}


def elasticity_curves(records: pd.DataFrame, read_history: Callable[[str], pd.DataFrame],
                      labels: list[str]) -> pd.DataFrame:
    """Every run's sorted elasticities (the history rows of its phase "initialisation"), under
    its row label, dataset, model, seed and run id (columns ``COLUMNS``), rows in order."""
    frames = []
    for record in records[records["label"].isin(labels)].itertuples():
        history = read_history(record.run_id)
        rows = history.loc[history["phase"] == "initialisation", ["rank", "share", "elasticity"]]
        frames.append(rows.assign(label=record.label, dataset=record.dataset, model=record.model, seed=record.seed,
                                  run_id=record.run_id))
    curves = pd.concat(frames, ignore_index=True)[COLUMNS]
    order = {label: i for i, label in enumerate(labels)}
    return curves.sort_values(["label", "seed", "rank"], key=lambda c: c.map(order) if c.name == "label" else c,
                              ignore_index=True)


def render_elasticities(curves: pd.DataFrame, *, out_dir: Path, title: str) -> list[Path]:
    """Write ``elasticity.csv`` (every value drawn, with its run id) and ``elasticity.pdf``/
    ``.png``: a panel per dataset, a line per network (named by its model, coloured by its
    row label across panels) over the share of weights (%), the median over seeds with the
    seeds' min-max band, on a log axis with unit elasticity dashed (the paper's line between
    inelastic and elastic weights)."""
    out_dir = Path(out_dir)
    curves.to_csv(out_dir / "elasticity.csv", index=False)
    datasets = list(dict.fromkeys(curves["dataset"]))
    colors = {style["label"]: style["color"] for style in _styles(list(dict.fromkeys(curves["label"])))}
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(4.6 * len(datasets), 4.2), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets):
        shown = curves[curves["dataset"] == dataset]
        for (label, model), runs in shown.groupby(["label", "model"], sort=False):
            line = runs.groupby("share")["elasticity"].agg(["median", "min", "max"])
            line = line.where(line > 0)  # off the log axis
            ax.plot(line.index * 100, line["median"], color=colors[label], label=model.removeprefix("snipit-"))
            ax.fill_between(line.index * 100, line["min"], line["max"], color=colors[label], alpha=0.2, linewidth=0)
        ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1, label="unit elasticity")
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
        ax.set_title(DATASET_NAMES.get(dataset, dataset))
        ax.set_xlabel("Weights, sorted by elasticity (%)")
        ax.legend(fontsize="small", loc="lower right")
    axes[0].set_ylabel("Elasticity of the loss")
    fig.suptitle(title)
    return [out_dir / "elasticity.csv", *_save(fig, out_dir, "elasticity")]
