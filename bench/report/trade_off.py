"""The SNIP-it paper's trade-off tables (Tables 2 and 3) and curves (Figure 2).

One row per method, at its trade-off point (``select_trade_offs``: the configuration and
goal of highest validation harmonic mean), grouped by when the method prunes (after, during
or before training), the dense baseline first: test accuracy (%) with its 95% confidence
interval 1.96 sigma / sqrt(n) over the n seeds (section 4, "Evaluation"), weight sparsity (%)
and HM, the harmonic mean of the two means as the paper prints it; the paper's numbers beside
ours. A row label names the paper's method, with an optional note in parentheses that tells
two rows of one method apart ("SNIP-it (during)"): its paper row is the method's in the
row's group.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from schema import ConfigError, closest

from bench.report.figures import _save
from bench.report.latex import environment
from bench.report.select import CELL_COLUMNS, harmonic_mean, select_cells, summarize, with_configs
from bench.report.table import MISSING, PLUS_MINUS, mean_std, write_table

Z_95 = 1.96  # the paper's 95% interval: 1.96 sigma / sqrt(n)
BASELINE = "baseline"  # the reference's phase of the dense model


def confidence_interval(std: float, n: int) -> float:
    """1.96 sigma / sqrt(n): the half-width of the paper's 95% interval of a mean over n seeds."""
    return Z_95 * std / math.sqrt(n)


def paper_name(label: str) -> str:
    """The paper's method of a row label: the label without a note in parentheses."""
    return label.split(" (")[0]


def in_setting(reference: pd.DataFrame, setting: dict, manifest: Path) -> pd.DataFrame:
    """The reference's rows of the paper's setting: those whose columns hold ``setting``'s
    values (``report.reference_setting`` of ``manifest``)."""
    for key, value in setting.items():
        if key not in reference:
            raise ConfigError(f"not a column of the reference table; {closest(key, reference)}", file=str(manifest),
                              key=f"report.reference_setting.{key}")
        reference = reference[reference[key] == value]
    return reference


# The structured table's measures (Tables 1 and 4): our trade-off cell's metric, the reference's
# column, the header, and whether it is a percentage (else a reduction against the unpruned network).
STRUCTURED_MEASURES = [
    ("sparsity", "weight_sparsity", "Weight sparsity (%)", True),
    ("node_sparsity", "node_sparsity", "Node sparsity (%)", True),
    ("theoretical_speedup", "flops_inference", "FLOPs, inference", False),
    ("train_flops_reduction", "flops_train", "FLOPs, training", False),
    ("shrunk_inference_speedup", "time_inference", "Time, inference", False),
    ("train_time_reduction", "time_train", "Time, training", False),
    ("disk_reduction", "disk", "Disk", False),
    ("train_memory_reduction", "ram", "RAM", False),
]
UNSTRUCTURED_MEASURES = [("sparsity", "sparsity", "Sparsity (%)", True),
                         ("harmonic_mean", "harmonic_mean", "HM", False)]


def is_structured(table: pd.DataFrame) -> bool:
    """Is a table of trade-off.csv's rows the structured one (it has node sparsity)?"""
    return "node_sparsity" in table


def ordered_phases(labels: list[str], groups: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(label, phase) in table order: the labels in no group first (the baseline), then each
    group's."""
    phase_of = {label: phase for phase, members in groups.items() for label in members}
    return [(label, BASELINE) for label in labels if label not in phase_of] + [
        (label, phase) for phase, members in groups.items() for label in members if label in labels]


def trade_off_table(trade_offs: pd.DataFrame, reference: pd.DataFrame, labels: list[str],
                    groups: dict[str, list[str]], measures: str = "unstructured") -> pd.DataFrame:
    """One row per label (those in no group first, as the baseline): its group (the
    reference's phase), our trade-off point (accuracy in % with its 95% interval, the goal,
    and the ``measures``: weight sparsity and HM, or the structured table's) and the paper's
    numbers of the same method and phase beside them (``paper_<measure>``)."""
    shown = STRUCTURED_MEASURES if measures == "structured" else UNSTRUCTURED_MEASURES
    ours = trade_offs.set_index("label")
    rows = []
    for label, phase in ordered_phases(labels, groups):
        paper = reference[(reference["method"] == paper_name(label)) & (reference["phase"] == phase)]
        p = paper.iloc[0] if not paper.empty else {}
        row = {"label": label, "phase": phase, "paper_accuracy": p.get("accuracy_mean", math.nan),
               "paper_accuracy_ci": p.get("accuracy_ci", math.nan),
               **{f"paper_{metric}": p.get(column, math.nan) for metric, column, _, _ in shown}}
        if label in ours.index:
            cell = ours.loc[label]
            accuracy = cell["test_accuracy_mean"] * 100
            row |= {"goal_sparsity": cell["goal_sparsity"], "n_seeds": cell["n_seeds"], "accuracy": accuracy,
                    "accuracy_ci": confidence_interval(cell["test_accuracy_std"] * 100, cell["n_seeds"]),
                    **{metric: cell.get(f"{metric}_mean", math.nan) * (100 if percent else 1)
                       for metric, _, _, percent in shown if metric != "harmonic_mean"},
                    "config": cell["config"], "run_ids": cell["run_ids"]}
            if measures != "structured":
                row["harmonic_mean"] = float(harmonic_mean(accuracy, row["sparsity"]))
        rows.append(row)
    columns = ["label", "phase", "goal_sparsity", "n_seeds", "accuracy", "accuracy_ci",
               *(metric for metric, *_ in shown), "paper_accuracy", "paper_accuracy_ci",
               *(f"paper_{metric}" for metric, *_ in shown), "config", "run_ids"]
    return pd.DataFrame(rows).reindex(columns=columns)


def number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else MISSING


def reduction(value: float, times: str) -> str:
    """A reduction against the unpruned network to two significant digits, e.g. 15x, 1.3x, 6e+02x."""
    return f"{value:.2g}{times}" if math.isfinite(value) else MISSING


def table_sections(table: pd.DataFrame, plus_minus: str = PLUS_MINUS, times: str = r"$\times$") -> list[dict]:
    """The table's sections from trade-off.csv's rows: per group, titled "Prunes <phase>" (none
    for the baseline), each row's texts (the baseline its accuracy only). Unstructured: ours and
    the paper's accuracy with its interval, sparsity and HM; structured (a ``node_sparsity``
    column): per measure, ours with the paper's in parentheses."""
    structured = is_structured(table)
    sections = []
    for phase, rows in table.groupby("phase", sort=False):
        shown = []
        for r in rows.to_dict("records"):
            baseline = phase == BASELINE
            accuracy = mean_std(r["accuracy"], r["accuracy_ci"], 1, 1, plus_minus)
            paper_accuracy = mean_std(r["paper_accuracy"], r["paper_accuracy_ci"], 0, 1, plus_minus)
            if structured:
                cells = [f"{accuracy} ({paper_accuracy})"] + [
                    "" if baseline else (f"{number(r[m], 1)} ({number(r[f'paper_{m}'], 0)})" if percent else
                                         f"{reduction(r[m], times)} ({reduction(r[f'paper_{m}'], times)})")
                    for m, _, _, percent in STRUCTURED_MEASURES]
            else:
                cells = [accuracy, "" if baseline else number(r["sparsity"], 1),
                         "" if baseline else number(r["harmonic_mean"], 1), paper_accuracy,
                         "" if baseline else number(r["paper_sparsity"], 0),
                         "" if baseline else number(r["paper_harmonic_mean"], 0)]
            shown.append({"label": r["label"], "cells": cells})
        sections.append({"title": None if phase == BASELINE else f"Prunes {phase.replace('_', ' ')}", "rows": shown})
    return sections


def table_header(table: pd.DataFrame, paper_header: str = "Paper") -> tuple[list[tuple[str, int]], list[str]]:
    """The column groups (title, span) and headers of the table of trade-off.csv's rows."""
    if is_structured(table):
        return [], ["Accuracy (%)", *(header for _, _, header, _ in STRUCTURED_MEASURES)]
    names = ["Accuracy (%)", *(header for _, _, header, _ in UNSTRUCTURED_MEASURES)]
    return [("Ours", 3), (paper_header, 3)], names + names


def render_trade_off_table(table: pd.DataFrame, *, caption: str, paper_header: str, out_dir: Path) -> list[Path]:
    """Write ``trade-off.csv`` and the table (``table.tex``, ``standalone.tex``): a section
    per group, titled "Prunes <phase>"; the baseline shows its accuracy only."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "trade-off.csv", index=False)
    groups, columns = table_header(table, paper_header)
    text = environment().get_template("trade_off.tex.j2").render(caption=caption, sections=table_sections(table),
                                                                  groups=groups, columns=columns)
    return [out_dir / "trade-off.csv", *write_table(text, out_dir)]


def render_reductions(table: pd.DataFrame, *, out_dir: Path, title: str) -> list[Path]:
    """The paper's Figures 16-21 for this setting (``reductions.pdf``/``.png``): a panel per
    reduction of the structured table (FLOPs, time, disk, RAM), a pair of bars per method, ours
    and the paper's, on a log scale with the unpruned network at 1."""
    pruned = table[table["phase"] != BASELINE]
    measures = [(metric, header) for metric, _, header, percent in STRUCTURED_MEASURES if not percent]
    rows = np.arange(len(pruned))
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(12, 1.5 + 0.9 * len(pruned)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, len(measures) // 2, sharey=True).flatten()
    ours, paper = sns.color_palette("colorblind", 2)
    for ax, (metric, header) in zip(axes, measures):
        ax.barh(rows - 0.2, pruned[metric], height=0.4, color=ours, label="ours")
        ax.barh(rows + 0.2, pruned[f"paper_{metric}"], height=0.4, color=paper, label="paper")
        ax.axvline(1, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{header} (reduction)")
    axes[0].set_yticks(rows, pruned["label"])
    axes[0].invert_yaxis()
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2)
    fig.suptitle(title)
    return _save(fig, out_dir, "reductions")


def curve_cells(records: pd.DataFrame, goals: list[float], select_by: str) -> pd.DataFrame:
    """Figure 2's points: per label and goal its selected configuration (``select_cells``);
    a row whose sparsity is learned (HoyerSquare) has a point per configuration, as the paper
    draws each of its lambdas."""
    learned = records.groupby("label")["goal_sparsity"].transform(lambda goal: goal.isna().all()).astype(bool)
    learned &= records["method"] != "dense"
    points = [{"label": label, "goal_sparsity": np.nan, "n_configs": 1, **summarize(runs)}
              for (label, _), runs in with_configs(records[learned]).groupby(["label", "config"], sort=True)]
    frames = [frame for frame in (select_cells(records[~learned], goals, select_by),
                                  pd.DataFrame(points, columns=CELL_COLUMNS)) if not frame.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CELL_COLUMNS)
