"""The paper's numbers beside ours, and whether our runs agree with the paper's claims.

``paper-vs-ours.csv``/``.tex``: per row label and goal sparsity, the paper-reported
accuracy, speedup and sparsity (``bench/reference/<file>.csv``) next to ours. A claim is
an ordering the paper states in words, declared in the manifest as "``better`` beats
``worse`` on ``metric`` at ``goals``". At each goal where both cells exist, the difference
of means (or of medians, a claim's ``statistic``) is compared with its standard error over
seeds, sqrt(s_a^2/n_a + s_b^2/n_b):
beyond two standard errors the runs agree (or disagree); within, or with a single seed,
they cannot tell. A claim with ``relation = "matches"`` ("better" reaches "worse", as in
"IMP reaches the baseline") agrees unless the difference is beyond two standard errors
below zero (then it disagrees); a single seed still cannot tell. A
claim agrees when every goal agrees, disagrees when any goal disagrees, and otherwise
cannot tell. A cell whose configuration ended with a collapsed layer in some seed is
named: its accuracy in the comparison carries a dagger, the evidence of a goal names the
collapsed side and the claim's ``collapse`` column lists such cells.
"""

import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pandas as pd

from bench.manifest import TRADE_OFF_METRICS
from bench.report.latex import environment
from bench.report.select import GOAL_TOLERANCE
from bench.report.table import COLLAPSE_MARK, collapsed

CLAIM_METRICS = ("test_accuracy", "pruning_stability", "retrain_gain", "theoretical_speedup", "harmonic_mean")


def reference_table(name: str) -> pd.DataFrame:
    return pd.read_csv(Path(str(resources.files("bench") / "reference" / name)))


def paper_vs_ours(cells: pd.DataFrame, reference: pd.DataFrame, labels: list[str], goals: list[float]) -> pd.DataFrame:
    """One row per (label, goal): the paper's accuracy/speedup/sparsity (%) and ours."""
    rows = []
    for label in labels:
        for goal in goals:
            paper = reference[(reference["method"] == label) & ((reference["goal_sparsity"] - goal).abs() < GOAL_TOLERANCE)]
            ours = cells[(cells["label"] == label) & ((cells["goal_sparsity"] - goal).abs() < GOAL_TOLERANCE)]
            if paper.empty and ours.empty:
                continue
            p = paper.iloc[0] if not paper.empty else {}
            o = ours.iloc[0] if not ours.empty else {}
            rows.append({
                "label": label, "goal_sparsity": goal,
                "paper_accuracy": p.get("accuracy_mean", math.nan), "paper_accuracy_std": p.get("accuracy_std", math.nan),
                "ours_accuracy": o.get("test_accuracy_mean", math.nan) * 100,
                "ours_accuracy_std": o.get("test_accuracy_std", math.nan) * 100,
                "paper_speedup": p.get("speedup_mean", math.nan), "ours_speedup": o.get("theoretical_speedup_mean", math.nan),
                "paper_sparsity": p.get("sparsity_mean", math.nan), "ours_sparsity": o.get("sparsity_mean", math.nan) * 100,
                "ours_collapsed_seeds": o.get("n_collapsed_seeds", math.nan),
                "run_ids": o.get("run_ids", ""),
            })
    return pd.DataFrame(rows)


def standard_error(a: pd.Series, b: pd.Series, metric: str) -> float:
    """sqrt(s_a^2/n_a + s_b^2/n_b) of ``metric`` over the seeds of cells a and b."""
    return math.sqrt(sum(cell[f"{metric}_std"] ** 2 / cell["n_seeds"] for cell in (a, b)))


def pruned_nothing(cell: pd.Series) -> bool:
    """Did the cell's pruning method leave every weight (a search that found no lambda that
    prunes, say)? A claim won or lost against it says nothing of the method."""
    return cell.get("method") != "dense" and cell.get("sparsity_max", math.nan) == 0


def judge(a: pd.Series, b: pd.Series, metric: str, relation: str = "beats",
          statistic: str = "mean") -> tuple[str, float]:
    """'agree', 'disagree' or 'cannot tell' for "a beats b on metric" (or "a matches b"),
    and the difference of the seeds' ``statistic`` (mean or median). A single seed on either
    side gives no spread to judge against: cannot tell."""
    diff = a[f"{metric}_{statistic}"] - b[f"{metric}_{statistic}"]
    error = standard_error(a, b, metric)
    if not (math.isfinite(diff) and math.isfinite(error)):
        return "cannot tell", diff
    if relation == "matches":
        return ("disagree" if diff < -2 * error and diff < 0 else "agree"), diff
    if diff > 2 * error and diff > 0:
        return "agree", diff
    if diff < -2 * error and diff < 0:
        return "disagree", diff
    return "cannot tell", diff


def collapsed_seeds(cell: pd.Series) -> str:
    """E.g. "3 of 3 seeds": how many seeds of the cell's configuration collapsed."""
    return f"{cell['n_collapsed_seeds']:.0f} of {cell['n_seeds']} seeds"


# Metrics that are ratios (x), judged as they are; the others are fractions, judged in points.
RATIOS = ("theoretical_speedup", "train_flops_reduction", "shrunk_inference_speedup", "train_time_reduction",
          "disk_reduction", "train_memory_reduction")
CLAIM_COLUMNS = ["claim", "better", "worse", "metric", "verdict", "evidence", "collapse", "spread", "run_ids",
                 "belief", "belief_verdict", "belief_evidence"]


def evaluate_claims(cells: pd.DataFrame, claims: list[dict], goals: list[float],
                    cells_where: Callable[[dict], pd.DataFrame] | None = None,
                    trade_offs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each claim's verdict over the goals it names that this profile has, with evidence, the
    seed spread it was judged on and the run ids of the cells compared; for a claim with a
    belief (what we believe causes a disagreement), the belief's own verdict on the runs that
    test it. A claim with ``where`` (hyperparameter values, such as a retraining budget) is
    judged on ``cells_where(where)``: the cells selected among the runs with those values. A
    claim on the harmonic mean or a structured measure (``TRADE_OFF_METRICS``) is judged once, on
    the ``trade_offs`` (one cell per label, its trade-off point, ``select_trade_offs``)."""
    def judged(claim: dict) -> dict:
        where = claim.get("where")
        if claim["metric"] in ("harmonic_mean", *TRADE_OFF_METRICS):
            return verdict_of(trade_offs if trade_offs is not None else cells.iloc[:0], claim, None)
        return verdict_of(cells_where(where) if where and cells_where else cells, claim, goals)

    rows = []
    for claim in claims:
        belief = claim.get("belief") or {}
        on_belief = judged(belief) if belief else {"verdict": "", "evidence": ""}
        rows.append({"claim": claim["text"], "better": claim["better"], "worse": claim["worse"],
                     "metric": claim["metric"], **judged(claim), "belief": belief.get("text", ""),
                     "belief_verdict": on_belief["verdict"], "belief_evidence": on_belief["evidence"]})
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def verdict_of(cells: pd.DataFrame, claim: dict, goals: list[float] | None) -> dict:
    """The verdict, evidence, collapsed cells, seed spread and run ids of "better beats worse
    on metric" over the goals (None: once, on cells that are one per label, the trade-off
    points). The spread of a goal is each side's statistic and std over its seeds, in the
    evidence's unit, and the two standard errors the difference is held against. A side whose
    method pruned no weight (``pruned_nothing``) makes its goal "cannot tell"."""
    metric, statistic = claim["metric"], claim.get("statistic", "mean")
    scale = 1 if metric in RATIOS else 100  # a ratio, or points of a percentage
    verdicts, evidence, collapses, spreads, run_ids = [], [], [], [], []
    points = [None] if goals is None else [
        g for g in (claim["goals"] or goals) if any(abs(g - h) < GOAL_TOLERANCE for h in goals)]
    for goal in points:
        at_goal = (cells if goal is None else cells[(cells["goal_sparsity"] - goal).abs() < GOAL_TOLERANCE])
        at_goal = at_goal.set_index("label")
        if claim["better"] not in at_goal.index or claim["worse"] not in at_goal.index:
            continue
        better, worse = at_goal.loc[claim["better"]], at_goal.loc[claim["worse"]]
        verdict, diff = judge(better, worse, metric, claim.get("relation", "beats"), statistic)
        idle = [cell.name for cell in (better, worse) if pruned_nothing(cell)]
        verdict = "cannot tell" if idle else verdict
        verdicts.append(verdict)
        where = "trade-off" if goal is None else f"{goal * 100:g}%"
        sides = [(side, cell) for side, cell in (("better", better), ("worse", worse)) if collapsed(cell)]
        evidence_sides = [f"{side} side {cell.name} collapsed in {collapsed_seeds(cell)}" for side, cell in sides]
        evidence_sides += [f"{name} pruned no weight" for name in idle]
        collapses += [f"{cell.name} at {where} ({collapsed_seeds(cell)})" for _, cell in sides]
        evidence.append(f"{where}: {diff * scale:+.2f} ({'; '.join([verdict, *evidence_sides])})")
        spreads.append(f"{where}: " + ", ".join(
            f"{cell.name} {cell[f'{metric}_{statistic}'] * scale:.2f} \u00b1 {cell[f'{metric}_std'] * scale:.2f} "
            f"({cell['n_seeds']} seeds)" for cell in (better, worse))
            + f"; 2 SE {2 * standard_error(better, worse, metric) * scale:.2f}")
        run_ids += [run_id for cell in (better, worse) for run_id in str(cell.get("run_ids", "")).split()]
    judged = {"collapse": "; ".join(collapses), "spread": "; ".join(spreads),
              "run_ids": " ".join(dict.fromkeys(run_ids))}
    if not verdicts:
        missing = "no trade-off point" if goals is None else "no goal sparsity of this profile"
        return {**judged, "verdict": "cannot tell", "evidence": f"{missing} has both rows"}
    if "disagree" in verdicts:
        overall = "disagree"
    elif all(v == "agree" for v in verdicts):
        overall = "agree"
    else:
        overall = "cannot tell"
    return {**judged, "verdict": overall, "evidence": "; ".join(evidence)}


def render_paper_vs_ours(comparison: pd.DataFrame, claims: pd.DataFrame, *, caption: str, out_dir: Path) -> list[Path]:
    """Write ``paper-vs-ours.csv``, ``claims.csv`` and ``paper-vs-ours.tex`` (a standalone document)."""
    out_dir = Path(out_dir)
    comparison.to_csv(out_dir / "paper-vs-ours.csv", index=False)
    claims.to_csv(out_dir / "claims.csv", index=False)

    def cell(mean, std=math.nan, digits=2):
        if not math.isfinite(mean):
            return "--"
        return f"{mean:.{digits}f}" + (rf" $\pm$ {std:.{digits}f}" if math.isfinite(std) and round(std, digits) > 0 else "")

    rows = [{"label": r.label, "goal": f"{r.goal_sparsity * 100:g}\\%",
             "cells": [cell(r.paper_accuracy, r.paper_accuracy_std),
                       cell(r.ours_accuracy, r.ours_accuracy_std) + (COLLAPSE_MARK if r.ours_collapsed_seeds > 0 else ""),
                       cell(r.paper_speedup, digits=0), cell(r.ours_speedup, digits=1),
                       cell(r.paper_sparsity), cell(r.ours_sparsity)]}
            for r in comparison.itertuples()]
    if comparison.get("ours_collapsed_seeds", pd.Series(dtype=float)).gt(0).any():
        caption += (" \u2020: our configuration ended with a collapsed layer (a conv or linear layer with no remaining "
                    "weight) in some seeds; selection.csv names the layers.")
    text = environment().get_template("paper_vs_ours.tex.j2").render(
        caption=caption, rows=rows, claims=claims.to_dict("records"))
    path = out_dir / "paper-vs-ours.tex"
    path.write_text(text)
    return [out_dir / "paper-vs-ours.csv", out_dir / "claims.csv", path]
