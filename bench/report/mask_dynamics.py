"""AIMP's indicators of how settled training is (Zullich et al. 2021, section V-F, Figures 3-6).

Every value is a row of a run's history, recorded after an epoch while the run trained
(``methods.core.dynamics``), never recomputed from stored weights. As in the paper, each
figure draws one run per row, the one of the lowest seed. Epochs are those of the dense
schedule: an iteration retrained by rewinding for t epochs starts at epoch T - t (WR to
the late-resetting epoch 1: T - 1), so its j-th epoch is drawn at T - t + j, beside the
dense run's j-th at j. Iteration 0 is the dense parent's training; iteration i is the
retraining after the i-th pruning step (the history's phase "retrain i"); the intermediate
iterations are all but a run's last, those AIMP ends at epoch tau.

- Figure 3 (``mask-dynamics-dense.*``): D^(0) of the first row's dense parent, its
  learning-rate drops marked.
- Figure 4 (``mask-dynamics-masks.*``): D^(i) (changes over the weights remaining) and
  D~^(i) (over all weights) per epoch of the first row's iterations ``report.iterations``
  (the paper: 2, 5, 9, 13 and 17 of AIMP_50), D^(0) dashed.
- Figure 5 (``mask-dynamics-norms.*``): L1^TOP(1000) and L-inf of the remaining weights per
  epoch of the first row's intermediate iterations.
- Figure 6 (``mask-dynamics-validation.*``): the validation accuracy per epoch of every
  row's intermediate iterations, a panel per row.

``mask-dynamics.csv`` holds every plotted value: a row per (run, iteration, epoch) with its
run id, seed and the figures that draw it.
"""

from collections.abc import Callable
from pathlib import Path

import matplotlib
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bench.report.figures import _save

DENSE = "Dense"
QUANTITIES = ["mask_change", "mask_change_of_all", "weight_linf", "weight_l1_top", "val_accuracy"]
COLUMNS = ["label", "run_id", "seed", "iteration", "epoch", *QUANTITIES, "figures"]


def single_runs(records: pd.DataFrame) -> pd.DataFrame:
    """Per row label, the record of the lowest seed."""
    return records.sort_values(["label", "seed"]).drop_duplicates("label")


def epoch_rows(history: pd.DataFrame, start: int, first_iteration: int) -> pd.DataFrame:
    """The history's indicators per epoch with ``iteration`` (its phases numbered in order
    from ``first_iteration``), ``epoch`` (start + the epoch within the phase) and ``last``
    (the row belongs to the run's last phase)."""
    phases = list(dict.fromkeys(history["phase"]))
    rows = history.assign(iteration=history["phase"].map({phase: first_iteration + i for i, phase in enumerate(phases)}),
                          epoch=start + history.groupby("phase", sort=False).cumcount() + 1,
                          last=history["phase"] == phases[-1])
    return rows[["iteration", "epoch", "last", *QUANTITIES]]


def dynamics_points(records: pd.DataFrame, read_history: Callable[[str], pd.DataFrame], *, labels: list[str],
                    epochs: int, iterations: list[int]) -> pd.DataFrame:
    """Every value the figures draw (``COLUMNS``), from the histories of one run per row
    (``single_runs``) and of the first row's dense parent; ``figures`` names the figures
    that draw a row. Figure 4 draws the first row's ``iterations`` (none: its intermediate
    ones); T = ``epochs``."""
    runs = single_runs(records[records["label"].isin(labels)])
    parts = []
    for run in runs.itertuples():
        rows = epoch_rows(read_history(run.run_id), epochs - int(run.hp_retrain_epochs), 1)
        intermediate, focus = ~rows["last"], run.label == labels[0]
        selected = rows["iteration"].isin(iterations) if iterations else intermediate
        drawn = pd.DataFrame({4: selected & focus, 5: intermediate & focus, 6: intermediate})
        parts.append(rows.assign(label=run.label, run_id=run.run_id, seed=run.seed, figures=[
            " ".join(str(figure) for figure, on in zip(drawn.columns, flags) if on) for flags in drawn.to_numpy()]))
        if focus:  # D^(0) in Figure 4 up to the last epoch of the iterations it draws
            dense = epoch_rows(read_history(run.parent_run_id), 0, 0)
            beside = dense["epoch"] <= rows.loc[drawn[4], "epoch"].max()
            parts.append(dense.assign(label=DENSE, run_id=run.parent_run_id, seed=run.seed,
                                      figures=beside.map({True: "3 4", False: "3"})))
    points = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    return points.loc[points["figures"] != "", COLUMNS].reset_index(drop=True)


def drawn_in(points: pd.DataFrame, figure: int) -> pd.DataFrame:
    return points[points["figures"].str.split().map(lambda figures: str(figure) in figures)]


def render_mask_dynamics(points: pd.DataFrame, *, labels: list[str], milestones: list[int], out_dir: Path,
                         title: str) -> list[Path]:
    """Write mask-dynamics.csv and Figures 3-6 (pdf and png) of the ``dynamics_points``;
    ``milestones``: the dense schedule's learning-rate drops."""
    out_dir = Path(out_dir)
    points.to_csv(out_dir / "mask-dynamics.csv", index=False)
    written = [out_dir / "mask-dynamics.csv"]
    dense, masks, norms, validation = (drawn_in(points, figure) for figure in (3, 4, 5, 6))
    heading = f"{title}\n{labels[0]}, seed {dense['seed'].iloc[0]}" if len(dense) else title
    if len(dense):
        written += _save(dense_figure(dense, milestones, title), out_dir, "mask-dynamics-dense")
    if len(masks):
        written += _save(panels_figure(masks, MASKS, heading, legend=True), out_dir, "mask-dynamics-masks")
    if len(norms):
        written += _save(panels_figure(norms, NORMS, heading, legend=False), out_dir, "mask-dynamics-norms")
    written += _save(validation_figure(validation, labels, title), out_dir, "mask-dynamics-validation")
    return written


def figure(columns: int, width: float = 5.0, shared: bool = False) -> tuple[Figure, list]:
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(width * columns, 4.0), layout="constrained")
        FigureCanvasAgg(fig)
        axes = list(fig.subplots(1, columns, squeeze=False, sharex=shared, sharey=shared)[0])
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, axes


def iteration_colours(points: pd.DataFrame) -> ScalarMappable:
    """Colours running from the first iteration drawn to the last."""
    iterations = points.loc[points["iteration"] > 0, "iteration"]
    low, high = (iterations.min(), iterations.max()) if len(iterations) else (1, 1)
    return ScalarMappable(Normalize(low, max(high, low + 1)), matplotlib.colormaps["viridis"])


def draw_iterations(ax, points: pd.DataFrame, column: str, colours: ScalarMappable, scale: float = 1.0) -> None:
    """One line per iteration of ``points`` (the dense run's dashed grey)."""
    for iteration, line in points.groupby("iteration"):
        style = ({"color": "0.3", "linestyle": "--", "label": "dense (i = 0)"} if iteration == 0 else
                 {"color": colours.to_rgba(iteration), "label": f"i = {iteration}"})
        ax.plot(line["epoch"], line[column] * scale, linewidth=1.2, **style)
    ax.set_xlabel("Epoch of the schedule")


def dense_figure(dense: pd.DataFrame, milestones: list[int], title: str) -> Figure:
    fig, (ax,) = figure(1, 6.0)
    ax.plot(dense["epoch"], dense["mask_change"], color="0.2", marker=".")
    for milestone in milestones:
        ax.axvline(milestone, color="tab:red", linestyle=":", linewidth=1)
    ax.set_xlabel("Epoch")
    ax.set_ylabel(r"$D^{(0)}$: share of the potential mask changed")
    ax.set_title(f"{title}\nDense training, seed {dense['seed'].iloc[0]} (dotted: learning-rate drops)",
                 fontsize="medium")
    return fig


MASKS = {"mask_change": r"$D^{(i)}$ (of the weights remaining)", "mask_change_of_all": r"$\tilde{D}^{(i)}$ (of all weights)"}
NORMS = {"weight_l1_top": r"$L_1^{\mathrm{TOP}(1000)}$ of the weights", "weight_linf": r"$L_\infty$ of the weights"}


def panels_figure(points: pd.DataFrame, quantities: dict[str, str], title: str, legend: bool) -> Figure:
    """A panel per quantity (column: axis label), a line per iteration, told apart by a
    legend or by a colour bar."""
    fig, axes = figure(len(quantities))
    colours = iteration_colours(points)
    for ax, (column, name) in zip(axes, quantities.items()):
        draw_iterations(ax, points, column, colours)
        ax.set_ylabel(name)
    if legend:
        axes[-1].legend(fontsize="small")
    else:
        fig.colorbar(colours, ax=axes, label="iteration i")
    fig.suptitle(title)
    return fig


def validation_figure(points: pd.DataFrame, labels: list[str], title: str) -> Figure:
    drawn = [label for label in labels if label in set(points["label"])] or labels[:1]
    fig, axes = figure(len(drawn), 4.2, shared=True)
    colours = iteration_colours(points)
    for ax, label in zip(axes, drawn):
        row = points[points["label"] == label]
        draw_iterations(ax, row, "val_accuracy", colours, scale=100)
        ax.set_title(f"{label}, seed {row['seed'].iloc[0]}" if len(row) else label, fontsize="medium")
    axes[0].set_ylabel("Validation accuracy (%)")
    fig.colorbar(colours, ax=axes, label="iteration i")
    fig.suptitle(title)
    return fig
