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

from schema import ConfigError, closest

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


def trade_off_table(trade_offs: pd.DataFrame, reference: pd.DataFrame, labels: list[str],
                    groups: dict[str, list[str]]) -> pd.DataFrame:
    """One row per label (those in no group first, as the baseline): its group (the
    reference's phase), our trade-off point in % (accuracy with its 95% interval, sparsity,
    HM of the two, the goal) and the paper's numbers of the same method and phase."""
    phase_of = {label: phase for phase, members in groups.items() for label in members}
    ordered = [label for label in labels if label not in phase_of] + [
        label for members in groups.values() for label in members if label in labels]
    ours = trade_offs.set_index("label")
    rows = []
    for label in ordered:
        phase = phase_of.get(label, BASELINE)
        paper = reference[(reference["method"] == paper_name(label)) & (reference["phase"] == phase)]
        p = paper.iloc[0] if not paper.empty else {}
        row = {"label": label, "phase": phase, "paper_accuracy": p.get("accuracy_mean", math.nan),
               "paper_accuracy_ci": p.get("accuracy_ci", math.nan), "paper_sparsity": p.get("sparsity", math.nan),
               "paper_harmonic_mean": p.get("harmonic_mean", math.nan)}
        if label in ours.index:
            cell = ours.loc[label]
            accuracy, sparsity = cell["test_accuracy_mean"] * 100, cell["sparsity_mean"] * 100
            row |= {"goal_sparsity": cell["goal_sparsity"], "n_seeds": cell["n_seeds"], "accuracy": accuracy,
                    "accuracy_ci": confidence_interval(cell["test_accuracy_std"] * 100, cell["n_seeds"]),
                    "sparsity": sparsity, "harmonic_mean": float(harmonic_mean(accuracy, sparsity)),
                    "config": cell["config"], "run_ids": cell["run_ids"]}
        rows.append(row)
    columns = ["label", "phase", "goal_sparsity", "n_seeds", "accuracy", "accuracy_ci", "sparsity", "harmonic_mean",
               "paper_accuracy", "paper_accuracy_ci", "paper_sparsity", "paper_harmonic_mean", "config", "run_ids"]
    return pd.DataFrame(rows).reindex(columns=columns)


def number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else MISSING


def table_sections(table: pd.DataFrame, plus_minus: str = PLUS_MINUS) -> list[dict]:
    """The table's sections from trade-off.csv's rows: per group, titled "Prunes <phase>" (none
    for the baseline), each row's texts: ours and the paper's accuracy with its interval,
    sparsity and HM (the baseline its accuracy only)."""
    sections = []
    for phase, rows in table.groupby("phase", sort=False):
        shown = []
        for r in rows.itertuples():
            baseline = phase == BASELINE
            shown.append({"label": r.label, "cells": [
                mean_std(r.accuracy, r.accuracy_ci, 1, 1, plus_minus), "" if baseline else number(r.sparsity, 1),
                "" if baseline else number(r.harmonic_mean, 1),
                mean_std(r.paper_accuracy, r.paper_accuracy_ci, 0, 1, plus_minus), "" if baseline else number(r.paper_sparsity, 0),
                "" if baseline else number(r.paper_harmonic_mean, 0)]})
        sections.append({"title": None if phase == BASELINE else f"Prunes {phase.replace('_', ' ')}", "rows": shown})
    return sections


def render_trade_off_table(table: pd.DataFrame, *, caption: str, paper_header: str, out_dir: Path) -> list[Path]:
    """Write ``trade-off.csv`` and the table (``table.tex``, ``standalone.tex``): a section
    per group, titled "Prunes <phase>"; the baseline shows its accuracy only."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "trade-off.csv", index=False)
    text = environment().get_template("trade_off.tex.j2").render(caption=caption, sections=table_sections(table),
                                                                  paper_header=paper_header)
    return [out_dir / "trade-off.csv", *write_table(text, out_dir)]


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
