"""Build a target's report from its stored runs: collect, select, render.

Writes ``reports/<target>/<profile>/``, by the manifest's ``report.kind`` (``RENDERERS``):
for a table, table.tex, standalone.tex and pareto.pdf/png (or, with ``split_by``, a table
whose goal columns split by budget, with split-selection.csv); for the stability figure,
stability.pdf/png; for the envelope over the retraining budget, envelope.pdf/png/csv; for
IMP after a budgeted initial training, initial-budget.pdf/png/csv; for Renda et al.'s
rewinding figures, rewinding-points.csv and those of ``report.figures`` (rewinding-best.pdf/png,
rewinding-curves.pdf/png, rewinding-algorithm.pdf/png with table.tex, rewinding-speedup.pdf/png/csv);
for AIMP's table, table.tex, standalone.tex, aimp.csv and its Figure 1 curve.pdf/png/csv; for
AIMP's training dynamics, mask-dynamics-{dense,masks,norms,validation}.pdf/png and
mask-dynamics.csv; for SNIP-it's trade-off table, trade-off.csv, table.tex, standalone.tex and
its curves pareto.pdf/png; for SNIP-it's weight elasticities at initialisation,
elasticity.pdf/png/csv (from the histories of runs that train nothing); for the retraining schedules, schedules.pdf/png/csv (drawn from the schedule
code, from no runs). With the
paper's numbers or claims, paper-vs-ours.tex/csv and claims.csv; always selection.csv (the
run ids behind every cell) and failures.csv (runs of the grid that failed or are missing,
with the reason).
Files are rendered aside and moved into place, so a reader never sees a half-written report.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ..manifest import Manifest, load
from ..runlist import RunList
from ..store import RunStore
from . import render_pareto, render_stability, render_table, select_cells, write_selection
from .aimp import iteration_curves, median_cells, render_aimp_table, render_curves, with_paper
from .budget import envelope, envelope_by, render_envelope, with_budget
from .elasticity import elasticity_curves, render_elasticities
from .initial_budget import at_largest_budget, deviation_from_full_budget, render_initial_budget
from .mask_dynamics import dynamics_points, render_mask_dynamics
from .split_table import render_split_table, select_split_cells
from .rewinding import DENSE, per_iteration, render_rewinding
from .paper import evaluate_claims, paper_vs_ours, reference_table, render_paper_vs_ours
from .trade_off import curve_cells, in_setting, render_reductions, render_trade_off_table, trade_off_table
from .select import select_trade_offs, with_configs, with_harmonic_means
from .table import goal_header


def labelled_records(runs: RunList, store: RunStore) -> tuple[pd.DataFrame, dict[str, str]]:
    """The records of the runs, each under the label of the row that uses it (a run shared
    by two rows appears once per row), and the unreadable records."""
    records, broken = store.collect(run_id for run_id, _ in runs.runs)
    uses = pd.DataFrame(runs.runs, columns=["run_id", "label"]).drop_duplicates()
    if records.empty:
        return records, broken
    records = records.assign(retrain_gain=records["accuracy_after_retrain"] - records["accuracy_after_prune"])
    records = with_harmonic_means(records)
    return uses.merge(records.drop(columns="label"), on="run_id"), broken


def profile_text(manifest: Manifest) -> str:
    t = manifest.training
    return (f"Profile \u201c{manifest.profile}\u201d: {t['model']} on {t['dataset']}, {t['epochs']} epochs, "
            f"batch size {t['batch_size']}, {len(manifest.seeds)} seeds.")


def labels_where(records: pd.DataFrame, flag: str) -> list[str]:
    """The row labels whose records carry ``flag`` (a column the run wrote, e.g. pruning_stable)."""
    if flag not in records:
        return []
    return sorted(records.loc[records[flag].astype(bool), "label"].unique())


def search_note(manifest: Manifest, records: pd.DataFrame, cells: pd.DataFrame, learned: list[str]) -> str:
    """How many configurations each learned-sparsity row tried, and why a goal column of it
    is empty (after how many search rounds)."""
    if not learned:
        return ""
    tried = with_configs(records).groupby("label")["config"].nunique()
    rounds = {row.label: row.search_rounds for row in manifest.rows}
    filled = set(zip(cells["label"], cells["goal_sparsity"].round(6)))
    empty = [f"{label} at {goal_header(goal)}: no configuration within 0.25 points"
             + (f" after {rounds[label]} rounds" if rounds.get(label) else "") + f" ({tried[label]} tried)"
             for label in learned for goal in manifest.goal_sparsities if (label, round(goal, 6)) not in filled]
    counts = ", ".join(f"{label} {tried[label]}" for label in learned)
    return f"Configurations tried: {counts}. " + (f"Empty: {'; '.join(empty)}. " if empty else "")


def caption(manifest: Manifest, learned: list[str], note: str = "") -> str:
    second = ("Images/s is the training throughput" if manifest.report["time_column"] == "throughput"
              else "Time is the training wall time relative to the dense model")
    landing = (f"Methods whose sparsity is learned ({', '.join(learned)}) land in a column when the mean final "
               "sparsity of a configuration is within 0.25 points of the goal. " + note if learned else "")
    return (f"{manifest.title} ({manifest.source}). {profile_text(manifest)} "
            "Per method and goal sparsity, the configuration with the highest mean validation accuracy is "
            "shown with its test accuracy (%), theoretical speedup and sparsity (%), mean \u00b1 std over seeds. "
            f"{landing}{second}; the {manifest.report['bold']} best accuracies per column are bold; a dash means no "
            "configuration reached that column.")


def render_report(manifest: Manifest, runs: RunList, store: RunStore, reports: Path) -> Path:
    """Render the report of ``manifest`` (loaded with or without its registries) from the
    stored records of ``runs``; reads records and the manifest, never training code."""
    out = Path(reports) / manifest.target / manifest.profile
    out.mkdir(parents=True, exist_ok=True)
    if manifest.report["kind"] == "schedules":
        return render_schedule_figure(manifest, out)
    records, broken = labelled_records(runs, store)
    if manifest.report["kind"] == "rewinding" and not records.empty:
        records = rewinding_records(records, runs, store)
    # diagnostic rows only test beliefs; a row the profile leaves without runs is not shown
    expanded = {label for _, label in runs.runs}
    labels = [row.label for row in manifest.rows if not row.diagnostic and row.label in expanded]
    with staged(out) as staging:
        missing = store.failures(runs.needed) | broken
        pd.DataFrame({"run_id": list(missing), "reason": list(missing.values())}).to_csv(
            staging / "failures.csv", index=False)
        if not records.empty:
            cells = cells_of(manifest, records)
            write_selection(cells, staging)
            RENDERERS[manifest.report["kind"]](manifest, records, cells, labels, staging, store)
            if manifest.report["reference"] or manifest.claims:
                render_comparison(manifest, records, cells, labels, staging)
    return out


@contextmanager
def staged(out: Path):
    """A folder beside ``out`` to render into; its files replace those of ``out`` at the end."""
    with tempfile.TemporaryDirectory(dir=out, prefix=".render-") as tmp:
        yield Path(tmp)
        for path in Path(tmp).iterdir():
            os.replace(path, out / path.name)


def cells_of(manifest: Manifest, records: pd.DataFrame) -> pd.DataFrame:
    """The selected cell of every (row, goal): for the initial-budget figure, at each row's
    largest training budget; otherwise among all its runs."""
    if manifest.report["kind"] == "initial_budget":
        return at_largest_budget(initial_budget_points(manifest, records))
    return select_cells(records, manifest.goal_sparsities, manifest.report["select_by"])


def initial_budget_points(manifest: Manifest, records: pd.DataFrame) -> pd.DataFrame:
    return deviation_from_full_budget(records, manifest.goal_sparsities, manifest.training["epochs"],
                                      manifest.report["select_by"])


def title_of(manifest: Manifest) -> str:
    return f"{manifest.title} ({manifest.profile})"


def render_tables(manifest: Manifest, records: pd.DataFrame, cells: pd.DataFrame, labels: list[str], out: Path,
                  store: RunStore) -> None:
    """A table of goal columns (table.tex, standalone.tex) with its Pareto plots, or one
    whose goal columns split by ``report.split_by``."""
    report = manifest.report
    if report["split_by"]:
        render_split(manifest, records, labels, cells, out)
        return
    learned = [label for label in labels if label in labels_where(records, "learns_sparsity")]
    render_table(cells, labels=labels, goals=manifest.goal_sparsities, bold=report["bold"],
                 caption=caption(manifest, learned, search_note(manifest, records, cells, learned)),
                 out_dir=out, columns=report["columns"], time_column=report["time_column"])
    render_pareto(cells, labels=labels, out_dir=out, title=manifest.title, panels=report["panels"] or None)


def render_stability_figure(manifest: Manifest, records: pd.DataFrame, cells: pd.DataFrame, labels: list[str],
                            out: Path, store: RunStore) -> None:
    stable = [label for label in labels if label in labels_where(records, "pruning_stable")]
    render_stability(cells, labels=stable, out_dir=out, title=title_of(manifest))


def render_envelope_figure(manifest: Manifest, records: pd.DataFrame, cells: pd.DataFrame, labels: list[str],
                           out: Path, store: RunStore) -> None:
    report, goals = manifest.report, manifest.goal_sparsities
    drawn = with_budget(records[records["label"].isin(labels)], manifest.training["epochs"])
    render_envelope(envelope(drawn, goals, report["select_by"]), labels=labels, baselines=report["baselines"],
                    goals=goals, out_dir=out, title=title_of(manifest))
    if report["envelope_by"]:
        render_envelope(envelope_by(drawn, goals, report["envelope_by"], report["select_by"]), labels=labels,
                        baselines=report["baselines"], goals=goals, out_dir=out, title=title_of(manifest),
                        stem=f"envelope-by-{report['envelope_by']}")


def render_initial_budget_figure(manifest: Manifest, records: pd.DataFrame, cells: pd.DataFrame, labels: list[str],
                                 out: Path, store: RunStore) -> None:
    render_initial_budget(initial_budget_points(manifest, records), labels=labels, goals=manifest.goal_sparsities,
                          columns=manifest.report["panel_columns"], out_dir=out, title=title_of(manifest))


def rewinding_records(records: pd.DataFrame, runs: RunList, store: RunStore) -> pd.DataFrame:
    """Renda et al.'s figures: every iteration of an iterative run (from its history) and the
    dense parents the runs start from, labelled "Dense" (without their hyperparameters: a
    reference line, not a configuration)."""
    parents, _ = store.collect(set(runs.needed) - {run_id for run_id, _ in runs.runs})
    if not parents.empty:
        parents = parents[parents["method"] == "dense"].assign(label=DENSE)
        parents = parents.drop(columns=[column for column in parents if column.startswith("hp_")])
    return pd.concat([per_iteration(records, store.read_history), parents], ignore_index=True)


def render_rewinding_figures(manifest: Manifest, records: pd.DataFrame, cells: pd.DataFrame, labels: list[str],
                             out: Path, store: RunStore) -> None:
    drawn = records[records["label"].isin([*labels, DENSE])]
    render_rewinding(drawn, epochs=manifest.training["epochs"], out_dir=out, title=title_of(manifest),
                     figures=tuple(manifest.report["figures"]), goals=tuple(manifest.goal_sparsities))


def render_split(manifest: Manifest, records: pd.DataFrame, labels: list[str], cells: pd.DataFrame,
                 out: Path) -> None:
    """The table whose goal columns split by ``report.split_by`` (its cells in
    split-selection.csv); the dense model's accuracy goes into the caption."""
    report = manifest.report
    split = select_split_cells(records, manifest.goal_sparsities, report["split_by"], report["select_by"])
    split.to_csv(out / "split-selection.csv", index=False)
    dense = cells[cells["method"] == "dense"].drop_duplicates("label")
    dense_text = "".join(f" {row.label}: {row.test_accuracy_mean * 100:.2f} \u00b1 {row.test_accuracy_std * 100:.2f}."
                         for row in dense.itertuples())
    render_split_table(split, labels=[label for label in labels if label not in set(dense["label"])],
                       goals=manifest.goal_sparsities, split_by=report["split_by"], bold=report["bold"],
                       out_dir=out, caption=(
                           f"{manifest.title} ({manifest.source}). {profile_text(manifest)} Columns: goal sparsity "
                           f"and {' x '.join(report['split_by'])} (epochs). Per cell, the configuration with the "
                           "highest mean validation accuracy; test accuracy (%), mean \u00b1 std over seeds; the "
                           f"{report['bold']} best per column are bold.{dense_text}"))


def render_comparison(manifest: Manifest, records: pd.DataFrame, cells: pd.DataFrame, labels: list[str],
                      out: Path) -> None:
    """paper-vs-ours.tex/csv (the paper's numbers beside ours, when the manifest names them)
    and claims.csv (each claim judged against our runs)."""
    beside = manifest.report["reference"] and manifest.report["kind"] != "trade_off"  # that table has them itself
    comparison = (paper_vs_ours(cells, reference_table(manifest.report["reference"]), labels,
                                manifest.goal_sparsities) if beside else pd.DataFrame())
    def cells_where(where: dict) -> pd.DataFrame:
        matching = records[pd.concat([records.get(f"hp_{key}", pd.Series(index=records.index, dtype=object)) == value
                                      for key, value in where.items()], axis=1).all(axis=1)]
        return select_cells(matching, manifest.goal_sparsities, manifest.report["select_by"])

    claims = evaluate_claims(cells, manifest.claims, manifest.goal_sparsities, cells_where,
                             select_trade_offs(records, manifest.report["select_by"]))
    paper = load(str(manifest.path), "base", registries=False).training
    setting = (f"Paper: {paper['model']} on {paper['dataset']}, {paper['epochs']} epochs. Ours: {profile_text(manifest)} "
               "Numbers from a scaled-down profile are not the paper's setting.")
    render_paper_vs_ours(comparison, claims, out_dir=out, caption=(
        f"{manifest.source}: the paper's numbers beside ours. {setting}" if beside else
        f"{manifest.source}: the orderings the paper states in words, judged against our runs. {setting}"))


def render_aimp(manifest: Manifest, records: pd.DataFrame, cells: pd.DataFrame, labels: list[str], out: Path,
                store: RunStore) -> None:
    """AIMP's table (medians over seeds, delta and speed-up against IMP, the paper's numbers
    beside ours) and its Figure 1 from the runs' histories."""
    drawn = records[records["label"].isin(labels)]
    render_aimp_table(with_paper(median_cells(drawn, manifest.report["baselines"])), labels=labels, out_dir=out,
                      caption=(f"{manifest.title} ({manifest.source}). {profile_text(manifest)} Per row and pruning "
                               "rate p, the median over seeds of the test accuracy, its difference from the median "
                               "of IMP with the same technique, the retraining epochs and IMP's over them "
                               "(speed-up). The paper counts 19 tau + T epochs for AIMP_tau+WR and 20 T for IMP+WR; "
                               "ours are the epochs trained after the dense run (the rewind to epoch 1 leaves "
                               "19 (tau - 1) + T - 1 and 20 (T - 1)); the taus are the paper's shares of T. The "
                               "paper's numbers are its VGG-19 on CIFAR-10 at p = 20%, 30% and 40% (20, 12 and 9 "
                               "iterations) whatever the profile."))
    histories = {run_id: store.read_history(run_id) for run_id in drawn["run_id"].unique()}
    render_curves(iteration_curves(histories, drawn), labels=labels, out_dir=out, title=title_of(manifest))


def render_mask_dynamics_figures(manifest: Manifest, records: pd.DataFrame, cells: pd.DataFrame, labels: list[str],
                                 out: Path, store: RunStore) -> None:
    """AIMP's Figures 3-6 from the histories of one run per row and of its dense parent."""
    training = manifest.training
    points = dynamics_points(records, store.read_history, labels=labels, epochs=training["epochs"],
                             iterations=manifest.report["iterations"])
    render_mask_dynamics(points, labels=labels, milestones=training["lr_schedule"].get("milestones", []), out_dir=out,
                         title=title_of(manifest))


SELECTED_BY = {"val_harmonic_mean": "validation harmonic mean (HM) of accuracy and weight sparsity",
               "val_node_harmonic_mean": "validation harmonic mean (HM) of accuracy and node sparsity"}


def render_trade_offs(manifest: Manifest, records: pd.DataFrame, cells: pd.DataFrame, labels: list[str], out: Path,
                      store: RunStore) -> None:
    """The SNIP-it paper's table: every row at its trade-off point, grouped by when it prunes,
    the paper's numbers of ``report.reference_setting`` beside ours (trade-off.csv, table.tex,
    standalone.tex); and its curves, every row in one panel as its Figures 1 and 2
    (pareto.pdf/png), against node sparsity where the table is ``report.measures`` structured,
    whose reductions are also drawn as its Figures 16-21 (reductions.pdf/png)."""
    report = manifest.report
    shown = records[records["label"].isin(labels)]
    reference = in_setting(reference_table(report["reference"]) if report["reference"] else
                           pd.DataFrame(columns=["method", "phase"]), report["reference_setting"], manifest.path)
    paper = ", ".join(map(str, report["reference_setting"].values()))
    measure = SELECTED_BY.get(report["select_by"], report["select_by"].replace("_", " "))
    structured = report["measures"] == "structured"
    shown_as = ("its weight and node sparsity (%), and the reductions against the unpruned network of the "
                "inference and training FLOPs, the inference and training time, the CSR disk size and the training "
                "RAM, the paper's in parentheses" if structured else "its weight sparsity (%) and the HM of the two")
    table = trade_off_table(select_trade_offs(shown, report["select_by"]), reference, labels, report["groups"],
                            report["measures"])
    if structured:
        render_reductions(table, out_dir=out, title=f"{manifest.title}: reductions against the unpruned network")
    render_trade_off_table(
        table, paper_header=f"Paper: {paper}" if paper else "Paper", out_dir=out, caption=(
            f"{manifest.title} ({manifest.source}). {profile_text(manifest)} Per method, its trade-off point: of "
            f"all its configurations and goal sparsities, the one with the highest mean {measure} over seeds; "
            f"its test accuracy (%) with the 95% interval 1.96 sigma / sqrt(n) over the n seeds, {shown_as}."
            + (f" The paper's numbers are those of its {paper} setting." if paper else "")))
    drawn = shown.assign(sparsity=shown["node_sparsity"]) if structured else shown
    render_pareto(curve_cells(drawn, manifest.goal_sparsities, report["select_by"]), labels=labels, out_dir=out,
                  title=f"{manifest.title} (x: node sparsity)" if structured else manifest.title)


def render_elasticity_figure(manifest: Manifest, records: pd.DataFrame, cells: pd.DataFrame, labels: list[str],
                             out: Path, store: RunStore) -> None:
    """SNIP-it's Figure 6 from the sorted elasticities the runs keep in their histories."""
    render_elasticities(elasticity_curves(records, store.read_history, labels), out_dir=out, title=title_of(manifest))


RENDERERS = {"table": render_tables, "stability": render_stability_figure, "envelope": render_envelope_figure,
             "initial_budget": render_initial_budget_figure, "rewinding": render_rewinding_figures,
             "aimp": render_aimp, "mask_dynamics": render_mask_dynamics_figures, "trade_off": render_trade_offs,
             "elasticity": render_elasticity_figure}


def render_schedule_figure(manifest: Manifest, out: Path) -> Path:
    """The retraining schedules of ``report.schedules`` after the manifest's training."""
    from .schedules import render_schedules, schedule_curves

    figure, t = manifest.report["schedules"], manifest.training
    curves = schedule_curves(t, figure["kinds"], figure["retrain_epochs"], figure["steps_per_epoch"],
                             figure["allr_d1"])
    with staged(out) as staging:
        render_schedules(curves, out_dir=staging, title=(
            f"{manifest.title} ({manifest.profile})\n{figure['retrain_epochs']} retraining epochs after "
            f"{t['epochs']} epochs of {t['lr_schedule']['kind']} training"))
    return out
