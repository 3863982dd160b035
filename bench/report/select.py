"""Pick, for every table cell, the configuration with the best validation score.

A cell is a (row label, goal sparsity) pair. Runs are grouped into configurations by
their ``hp_`` values; the configuration with the highest mean validation score over seeds
wins (``select_by``: the validation accuracy, or the SNIP-it paper's harmonic mean of it
and the sparsity), and its runs give the cell's statistics. Test accuracy is only reported.
A cell also counts the seeds whose final model has a collapsed layer (no remaining weight).
The SNIP-it paper's tables have one cell per row instead: its trade-off point, the
configuration and goal of highest validation harmonic mean (``select_trade_offs``).
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.manifest import TRADE_OFF_METRICS
from bench.search import LANDING_TOLERANCE

SPREAD_METRICS = ("test_accuracy", "theoretical_speedup", "sparsity", "pruning_stability", "retrain_gain",
                  "harmonic_mean")
MEAN_METRICS = ("train_seconds", "images_per_second", "accuracy_before_prune", "accuracy_after_prune")
SPREAD_STATISTICS = ("mean", "median", "std", "min", "max")


def spread_columns(metrics: tuple[str, ...]) -> list[str]:
    """The columns ``summarize`` writes for ``metrics``: each one's ``SPREAD_STATISTICS``."""
    return [f"{metric}_{stat}" for metric in metrics for stat in SPREAD_STATISTICS]


CELL_COLUMNS = [
    "label", "method", "goal_sparsity", "config", "n_configs", "n_seeds", "run_ids", "val_accuracy_mean",
    *spread_columns(SPREAD_METRICS),
    *(f"{metric}_mean" for metric in MEAN_METRICS),
    "n_collapsed_seeds", "collapsed_layers",
]
GOAL_TOLERANCE = 1e-6


def plain(value):
    """A JSON-friendly Python scalar; integral floats (from NaN-padded columns) become ints."""
    value = value.item() if isinstance(value, np.generic) else value
    return int(value) if isinstance(value, float) and value.is_integer() else value


def harmonic_mean(accuracy, sparsity) -> np.ndarray:
    """HM = 2 a s / (a + s) of accuracies a and weight sparsities s (arrays or numbers, both
    fractions or both in %), the SNIP-it paper's measure of their trade-off, "just like the
    F1-score" (section 5); 0 where both are 0, NaN where either is unknown."""
    accuracy, sparsity = np.asarray(accuracy, dtype=float), np.asarray(sparsity, dtype=float)
    total = accuracy + sparsity
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total != 0, 2 * accuracy * sparsity / total, 0.0)


def with_harmonic_means(records: pd.DataFrame) -> pd.DataFrame:
    """The records with ``harmonic_mean`` (of the test accuracy and the sparsity, reported)
    and ``val_harmonic_mean`` (of the validation accuracy and the sparsity, selected on), and
    the same two of the node sparsity (``node_harmonic_mean``, ``val_node_harmonic_mean``;
    NaN for a record without one)."""
    nodes = records["node_sparsity"] if "node_sparsity" in records else pd.Series(np.nan, index=records.index)
    return records.assign(harmonic_mean=harmonic_mean(records["test_accuracy"], records["sparsity"]),
                          val_harmonic_mean=harmonic_mean(records["val_accuracy"], records["sparsity"]),
                          node_harmonic_mean=harmonic_mean(records["test_accuracy"], nodes),
                          val_node_harmonic_mean=harmonic_mean(records["val_accuracy"], nodes))


def config_json(hp: dict) -> str:
    """Compact JSON of one run's ``hp_`` values; missing ones (NaN/None) are left out, so
    runs that share their missing values share their configuration."""
    config = {key.removeprefix("hp_"): plain(value) for key, value in hp.items() if not pd.isna(value)}
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def with_configs(records: pd.DataFrame, goal: bool = False) -> pd.DataFrame:
    """The records with a ``config`` column: the JSON of their ``hp_`` values (and, with
    ``goal``, their goal sparsity: a configuration of the trade-off table is both)."""
    keys = sorted(column for column in records.columns if column.startswith("hp_"))
    keys += ["goal_sparsity"] if goal else []
    return records.assign(config=[config_json(hp) for hp in records[keys].to_dict("records")])


def assign_columns(runs: pd.DataFrame, goals: list[float]) -> dict[float, pd.DataFrame]:
    """The runs of one label that compete for each goal column.

    Runs pruned towards a goal compete in its column. A label without goals is either the
    dense baseline, which competes in every column, or a method whose sparsity is learned
    (CS, STR, DST): a configuration of it lands in a column when its mean final sparsity
    over seeds is within LANDING_TOLERANCE (0.25 percentage points) of the goal.
    """
    if runs["goal_sparsity"].notna().any():
        achieved = runs["goal_sparsity"].to_numpy(dtype=float)
        return {goal: runs[np.isclose(achieved, goal, rtol=0, atol=GOAL_TOLERANCE)] for goal in goals}
    if (runs["method"] == "dense").all():
        return {goal: runs for goal in goals}
    mean_sparsity = runs.groupby("config")["sparsity"].transform("mean").to_numpy(dtype=float)
    return {goal: runs[np.abs(mean_sparsity - goal) <= LANDING_TOLERANCE + GOAL_TOLERANCE] for goal in goals}


def best_configuration(runs: pd.DataFrame, select_by: str) -> pd.DataFrame:
    """The runs of the configuration with the highest mean ``select_by`` over seeds.

    A seed without a score (e.g. diverged) counts as 0, so unstable configurations are
    penalised; ties go to the smallest (method, config) pair.
    """
    scores = runs[select_by].astype(float).fillna(0.0).groupby([runs["method"], runs["config"]]).mean()
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    method, config = ranked[0][0]
    return runs[(runs["method"] == method) & (runs["config"] == config)]


def collapse_summary(runs: pd.DataFrame) -> dict:
    """How many seeds ended with a collapsed layer and which layers (";"-joined over the
    seeds). The count is NaN, unknown, when a record predates the check (it has no
    ``n_collapsed_layers``) and no other seed collapsed."""
    counts = runs["n_collapsed_layers"].astype(float) if "n_collapsed_layers" in runs else pd.Series(math.nan, runs.index)
    collapsed = int((counts > 0).sum())
    names = runs["collapsed_layers"].dropna() if "collapsed_layers" in runs else []
    layers = dict.fromkeys(name for joined in names for name in joined.split(";") if name)
    return {"n_collapsed_seeds": collapsed if collapsed or counts.notna().all() else math.nan,
            "collapsed_layers": ";".join(layers)}


def summarize(runs: pd.DataFrame, metrics: tuple[str, ...] = SPREAD_METRICS) -> dict:
    """Provenance and statistics over the seeds of one selected configuration: mean, median,
    std, min and max of each of the ``metrics`` (NaN where the runs have none)."""
    summary = {
        "method": runs["method"].iloc[0],
        "config": runs["config"].iloc[0],
        "n_seeds": len(runs),
        "run_ids": " ".join(sorted(runs["run_id"])),
        "val_accuracy_mean": runs["val_accuracy"].astype(float).mean(),
    }
    for metric in metrics:
        values = runs[metric].astype(float) if metric in runs else pd.Series(np.nan, index=runs.index)
        summary |= {f"{metric}_{stat}": getattr(values, stat)() for stat in SPREAD_STATISTICS}
    for metric in MEAN_METRICS:
        summary[f"{metric}_mean"] = runs[metric].astype(float).mean() if metric in runs else np.nan
    return summary | collapse_summary(runs)


def select_cells(records: pd.DataFrame, goals: list[float], select_by: str = "val_accuracy") -> pd.DataFrame:
    """One row per (label, goal) with a selection: the chosen configuration, the runs
    backing it and their statistics (columns ``CELL_COLUMNS``). ``n_configs`` counts the
    configurations that competed for the cell: those pruned towards its goal, or every
    configuration of a row whose sparsity is learned (each is a try at every column)."""
    if select_by == "test_accuracy":
        raise ValueError("configurations must be selected on validation data, not on test accuracy")
    cells = []
    for label, label_runs in with_configs(records).groupby("label", sort=True):
        learned = label_runs["goal_sparsity"].isna().all()
        for goal, candidates in assign_columns(label_runs, goals).items():
            if not candidates.empty:
                chosen = best_configuration(candidates, select_by)
                n_configs = (label_runs if learned else candidates)["config"].nunique()
                cells.append({"label": label, "goal_sparsity": goal, "n_configs": n_configs, **summarize(chosen)})
    return pd.DataFrame(cells, columns=CELL_COLUMNS)


def select_trade_offs(records: pd.DataFrame, select_by: str = "val_harmonic_mean") -> pd.DataFrame:
    """One cell per label, its trade-off point: among all its runs, the configuration and goal
    sparsity with the highest mean ``select_by`` over seeds (the SNIP-it paper's Tables 1-4:
    "points are picked using the highest harmonic mean between sparsity and accuracy", here
    of the validation accuracy). Columns ``CELL_COLUMNS`` and the statistics of the
    ``TRADE_OFF_METRICS``; ``n_configs`` counts the points."""
    if select_by == "test_accuracy":
        raise ValueError("configurations must be selected on validation data, not on test accuracy")
    cells = []
    for label, runs in with_configs(records, goal=True).groupby("label", sort=True):
        chosen = best_configuration(runs, select_by)
        cells.append({"label": label, "goal_sparsity": chosen["goal_sparsity"].iloc[0],
                      "n_configs": runs["config"].nunique(),
                      **summarize(chosen, SPREAD_METRICS + TRADE_OFF_METRICS)})
    return pd.DataFrame(cells, columns=CELL_COLUMNS + spread_columns(TRADE_OFF_METRICS))


def time_ratios(cells: pd.DataFrame) -> dict[str, float]:
    """Per label, the mean train_seconds of its selected runs over that of the dense
    row(s); empty when no row has method "dense"."""
    timed = cells.dropna(subset=["train_seconds_mean"])
    total = timed["train_seconds_mean"] * timed["n_seeds"]
    seconds = total.groupby(timed["label"]).sum() / timed["n_seeds"].groupby(timed["label"]).sum()
    dense = timed["method"] == "dense"
    if not dense.any():
        return {}
    dense_seconds = total[dense].sum() / timed.loc[dense, "n_seeds"].sum()
    return {label: float(value / dense_seconds) for label, value in seconds.items()}


def write_selection(cells: pd.DataFrame, out_dir: Path) -> Path:
    """Write ``selection.csv``: every cell's configuration, run ids and statistics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "selection.csv"
    cells[CELL_COLUMNS].to_csv(path, index=False)
    return path
