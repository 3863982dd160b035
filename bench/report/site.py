"""A static HTML site of every target's report: ``prunebench site``.

Renders ``reports/site/<profile>/`` from the stored runs and the rendered reports alone,
training nothing and importing neither the methods nor torch: the runs of a target come from
its stored run list (``bench/runlist.py``), the methods' descriptions from
``results/runlists/methods.json`` written beside the lists. The site:

- ``index.html``: the claims across the project (``bench/report/claims.py``), a card per
  paper (targets grouped by the paper their ``source`` names) and one per target (table or
  figure, profile, runs done, failed and missing, the claims' verdicts);
- ``targets/<target>.html``: the selected cells as an HTML table (selection.csv, the best
  accuracies in bold as in the LaTeX table; the AIMP and trade-off kinds' own tables from
  their CSVs, as their LaTeX tables), the figures (PNG inline, PDF linked), the
  paper's numbers beside ours with the difference, each claim with its verdict, evidence,
  seed spread and run ids, and the manifest's TOML; the report's files are copied beside it;
- ``methods/<method>.html``: the method's docstrings and hyperparameters, the targets that
  use it and the validation accuracy of its selected runs per epoch, mean over seeds with the
  seeds' min-max band.

Every link is relative and nothing is fetched from the network, so the site opens from the
file system. It is rendered into a folder beside its place and swapped in at the end.
"""

import math
import os
import shutil
import sys
import time
import tomllib
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import cycle
from pathlib import Path

import jinja2
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..manifest import Manifest, manifest_dir
from ..runlist import RunList, current_runs, read_methods
from ..store import HISTORY, RunStore
from .aimp import table_rows as aimp_rows
from .trade_off import is_structured
from .trade_off import table_header as trade_off_header
from .trade_off import table_sections as trade_off_sections
from .build import profile_text
from .claims import VERDICTS, all_claims, claims_of
from .figures import MARKERS
from .latex import TEMPLATES
from .table import MISSING, goal_entries, goal_header, time_cells

TABLE_KINDS = ("table", "aimp", "trade_off")
PLUS_MINUS, TIMES = " \u00b1 ", "\u00d7"
LINE_SECONDS = 30
PANEL_COLUMNS = 4
CLAIM_FIELDS = ["claim", "verdict", "evidence", "spread", "run_ids", "collapse", "belief", "belief_verdict",
                "belief_evidence"]


def environment() -> jinja2.Environment:
    """The environment of the site's templates: HTML-escaped values."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["slug"] = lambda verdict: verdict.replace(" ", "-")
    return env


def paper_of(source: str) -> str:
    """The paper a ``source`` names: up to the parenthesis closing its authors, e.g. "Back to
    Basics (Zimmer et al.)", or else up to the first comma."""
    if "(" in source and ")" in source:
        return source[: source.index(")") + 1]
    return source.split(",")[0].strip()


def verdict_counts(claims: pd.DataFrame) -> dict[str, int]:
    """Verdict -> how many claims have it, in the order of ``VERDICTS``, those with none left out."""
    counts = claims["verdict"].value_counts()
    return {verdict: int(counts[verdict]) for verdict in VERDICTS if verdict in counts}


def run_counts(runs: RunList | None, store: RunStore) -> dict | None:
    """How many runs the target's grid needs (parents included), done, failed and missing;
    None without a current stored run list."""
    if runs is None:
        return None
    problems = store.failures(runs.needed)
    failed = sum(store.has_failed(run_id) for run_id in problems)
    return {"total": len(runs.needed), "done": len(runs.needed) - len(problems), "failed": failed,
            "missing": len(problems) - failed}


def target_card(manifest: Manifest, store: RunStore, reports: Path) -> dict:
    """What the index shows of a target."""
    return {"target": manifest.target, "title": manifest.title, "source": manifest.source,
            "paper": paper_of(manifest.source), "profile": manifest.profile,
            "kind": "table" if manifest.report["kind"] in TABLE_KINDS else "figure",
            "runs": run_counts(current_runs(manifest, store.results), store),
            "reported": (Path(reports) / manifest.target / manifest.profile).is_dir(),
            "verdicts": verdict_counts(claims_of(manifest, reports))}


def paper_cards(cards: list[dict]) -> list[dict]:
    """One card per paper: its targets and their verdicts summed."""
    papers: dict[str, dict] = {}
    for card in cards:
        paper = papers.setdefault(card["paper"], {"paper": card["paper"], "targets": [], "verdicts": {}})
        paper["targets"].append(card["target"])
        for verdict, n in card["verdicts"].items():
            paper["verdicts"][verdict] = paper["verdicts"].get(verdict, 0) + n
    return [{**paper, "verdicts": {v: paper["verdicts"][v] for v in VERDICTS if v in paper["verdicts"]}}
            for paper in sorted(papers.values(), key=lambda paper: paper["paper"])]


def table_labels(manifest: Manifest, cells: pd.DataFrame) -> list[str]:
    """The rows the table shows, in the manifest's order: those with a cell, diagnostic rows
    left out (as in the LaTeX table), then labels the report added (a rewinding figure's Dense)."""
    present, diagnostic = set(cells["label"]), {row.label for row in manifest.rows if row.diagnostic}
    ordered = [row.label for row in manifest.rows if row.label in present and row.label not in diagnostic]
    return ordered + sorted(present - set(ordered) - diagnostic)


OWN_TABLES = {  # kinds whose LaTeX table is not laid out from selection.csv: its CSV, header and note
    "aimp": ("aimp.csv", ["Method", "p (%)", "Sparsity (%)", "Accuracy (%), paper", "Accuracy (%), ours",
                          "\u0394 IMP (points), paper", "\u0394 IMP (points), ours", "Retraining epochs, paper",
                          "Retraining epochs, ours", "Speed-up, paper", "Speed-up, ours"],
             "Per row and pruning rate p, the median over seeds as in the LaTeX table (aimp.csv holds each cell's "
             "seeds, min, max and run ids); \u0394 IMP: the difference from IMP with the same retraining."),
    "trade_off": ("trade-off.csv", ["Method", "Accuracy (%)", "Sparsity (%)", "HM", "Accuracy (%), paper",
                                    "Sparsity (%), paper", "HM, paper"],
                  "Per method, its trade-off point as in the LaTeX table (trade-off.csv holds its configuration, "
                  "goal and run ids): test accuracy with its 95% interval over seeds, weight sparsity and the "
                  "harmonic mean of the two, the paper's beside ours."),
}


STRUCTURED_NOTE = ("Per method, its trade-off point as in the LaTeX table (trade-off.csv holds its configuration, goal "
                   "and run ids): test accuracy with its 95% interval over seeds, weight and node sparsity, and the "
                   "reductions against the unpruned network, the paper's in parentheses.")


def own_table(kind: str, report: Path) -> dict | None:
    """The table of a kind in ``OWN_TABLES`` from its CSV, as its LaTeX table shows it:
    header, note and sections of rows (a title per section, or none); None for other kinds."""
    if kind not in OWN_TABLES:
        return None
    name, header, note = OWN_TABLES[kind]
    table = read_csv(report / name)
    if table.empty:
        return None
    if kind == "aimp":
        return {"header": header, "note": note, "sections": [{"title": None, "rows": aimp_rows(table)}]}
    if is_structured(table):  # ours with the paper's in parentheses
        header, note = ["Method", *(f"{name}, ours (paper)" for name in trade_off_header(table)[1])], STRUCTURED_NOTE
    return {"header": header, "note": note, "sections": trade_off_sections(table, PLUS_MINUS, TIMES)}


def html_table(cells: pd.DataFrame, manifest: Manifest) -> dict:
    """The table of the selected cells, goal by goal, as the LaTeX table lays it out: each
    cell's texts with whether its accuracy is bold (among the ``report.bold`` best) and
    whether it collapsed."""
    labels, goals, report = table_labels(manifest, cells), manifest.goal_sparsities, manifest.report
    time_header, times = time_cells(cells, report["time_column"], TIMES)
    columns = [goal_entries(cells, goal, labels, report["bold"], PLUS_MINUS) for goal in goals]
    return {"goals": [goal_header(goal) for goal in goals], "columns": report["columns"], "bold": report["bold"],
            "time_header": time_header,
            "rows": [{"label": label, "time": times.get(label, MISSING),
                      "cells": [column.get(label) for column in columns]} for label in labels]}


def number(value, digits: int = 2, sign: bool = False) -> str:
    """A number at ``digits`` decimals ("+" before a positive one with ``sign``), "--" for NaN."""
    value = float(value)
    return f"{value:{'+' if sign else ''}.{digits}f}" if math.isfinite(value) else MISSING


def comparison_rows(comparison: pd.DataFrame) -> list[dict]:
    """paper-vs-ours.csv as the site shows it: per row and goal the paper's accuracy, ours and
    ours minus the paper's (points), and both speedups and sparsities."""
    return [{"label": r.label, "goal": goal_header(r.goal_sparsity),
             "paper_accuracy": number(r.paper_accuracy) + (PLUS_MINUS + number(r.paper_accuracy_std)
                                                           if math.isfinite(r.paper_accuracy_std) else ""),
             "ours_accuracy": number(r.ours_accuracy) + (PLUS_MINUS + number(r.ours_accuracy_std)
                                                         if math.isfinite(r.ours_accuracy_std) else ""),
             "collapsed": bool(r.ours_collapsed_seeds > 0),
             "difference": number(r.ours_accuracy - r.paper_accuracy, sign=True),
             "paper_speedup": number(r.paper_speedup, 0), "ours_speedup": number(r.ours_speedup, 1),
             "paper_sparsity": number(r.paper_sparsity), "ours_sparsity": number(r.ours_sparsity)}
            for r in comparison.itertuples()]


def read_csv(path: Path) -> pd.DataFrame:
    """A report's CSV; empty when the report did not write it or wrote no rows."""
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def manifest_texts(manifest: Manifest) -> list[dict]:
    """The manifest's TOML, and that of every manifest it ``extends``."""
    texts, path = [], manifest.path
    while path is not None:
        text = path.read_text()
        texts.append({"name": path.name, "text": text})
        base = tomllib.loads(text).get("extends")
        path = manifest_dir() / f"{base}.toml" if base else None
    return texts


def target_page(manifest: Manifest, card: dict, reports: Path, files: list[str]) -> dict:
    """What a target's page shows, from its report folder (whose ``files`` the site copies);
    ``selection`` is its selection.csv."""
    report = Path(reports) / manifest.target / manifest.profile
    cells = read_csv(report / "selection.csv")
    judged = read_csv(report / "claims.csv")  # without it, the claims are "not run"
    claims = (judged if not judged.empty else claims_of(manifest, reports)).reindex(columns=CLAIM_FIELDS)
    claims = claims.astype(object).fillna("")
    figures = [{"png": name, "pdf": name[:-4] + ".pdf" if name[:-4] + ".pdf" in files else None}
               for name in files if name.endswith(".png")]
    return {**card, "description": manifest.description, "setting": profile_text(manifest) if manifest.rows else "",
            "split": bool(manifest.report["split_by"]),
            "table": None if cells.empty or manifest.report["kind"] in OWN_TABLES else html_table(cells, manifest),
            "own_table": own_table(manifest.report["kind"], report),
            "figures": figures, "files": files,
            "comparison": comparison_rows(read_csv(report / "paper-vs-ours.csv")),
            "claims": claims.to_dict("records"), "manifests": manifest_texts(manifest),
            "methods": methods_of(manifest, cells), "selection": cells}


def methods_of(manifest: Manifest, cells: pd.DataFrame) -> list[str]:
    """The methods of the target's rows and of its selected cells (a rewinding figure's dense runs)."""
    return sorted({row.method for row in manifest.rows} | set(cells.get("method", [])))


def curves(cells: pd.DataFrame, store: RunStore) -> pd.DataFrame:
    """Per selected cell of one method, the validation accuracy per epoch of its runs over the
    seeds: mean, min and max, under the cell's label and goal. Runs backing several cells
    (the dense baseline competes in every goal column) are drawn once, under all their goals."""
    frames = []
    backing = cells["run_ids"].astype(str).map(lambda ids: " ".join(sorted(ids.split())))
    for (label, run_ids), backed in cells.groupby([cells["label"], backing], sort=False):
        goals = ", ".join(goal_header(goal) for goal in backed["goal_sparsity"])
        for run_id in run_ids.split():
            if (store.run_dir(run_id) / HISTORY).is_file():
                history = store.read_history(run_id)
                frames.append(pd.DataFrame({"label": label, "goal": goals, "epoch": range(1, len(history) + 1),
                                            "val_accuracy": history["val_accuracy"].to_numpy()}))
    if not frames:
        return pd.DataFrame(columns=["goal", "label", "epoch", "mean", "min", "max", "n_seeds"])
    points = pd.concat(frames, ignore_index=True)
    return (points.groupby(["goal", "label", "epoch"], sort=False)["val_accuracy"]
            .agg(mean="mean", min="min", max="max", n_seeds="count").reset_index())


def render_curves(points: pd.DataFrame, path: Path) -> None:
    """One panel per goal, a line per row label: the mean over seeds and the seeds' band (PNG)."""
    goals = list(dict.fromkeys(points["goal"]))
    labels = list(dict.fromkeys(points["label"]))
    styles = dict(zip(labels, ({"color": color, "marker": marker} for color, marker in
                               zip(sns.color_palette("colorblind", len(labels)), cycle(MARKERS)))))
    columns = min(len(goals), PANEL_COLUMNS)
    fig = Figure(figsize=(3.6 * columns + 2.4, 3 * math.ceil(len(goals) / columns) + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(math.ceil(len(goals) / columns), columns, squeeze=False, sharey=True).flatten()
    for ax in axes[len(goals):]:
        ax.set_visible(False)
    for ax, goal in zip(axes, goals):
        for label, line in points[points["goal"] == goal].groupby("label", sort=False):
            style = styles[label]
            ax.plot(line["epoch"], line["mean"] * 100, label=label, markersize=3, **style)
            ax.fill_between(line["epoch"], line["min"] * 100, line["max"] * 100, color=style["color"], alpha=0.2,
                            linewidth=0)
        ax.set_title(f"goal {goal}", fontsize=9)
        ax.set_xlabel("epoch of the run")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy (%)")
    handles, names = axes[0].get_legend_handles_labels()
    for ax in axes[1:len(goals)]:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            if name not in names:
                handles, names = [*handles, handle], [*names, name]
    fig.legend(handles, names, loc="outside right upper", fontsize=8, frameon=False)
    fig.savefig(path, dpi=100)


def method_page(name: str, description: dict | None, pages: list[dict], store: RunStore, out: Path) -> dict:
    """What a method's page shows; its curves are drawn into ``out/methods/<name>/``."""
    figures = []
    for page in pages:
        cells = page["selection"]
        points = pd.DataFrame() if cells.empty else curves(cells[cells["method"] == name], store)
        if not points.empty:
            path = out / "methods" / name / f"{page['target']}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            render_curves(points, path)
            figures.append({"target": page["target"], "png": f"{name}/{path.name}"})
    return {"name": name, "description": description, "targets": [page["target"] for page in pages],
            "figures": figures}


@contextmanager
def swapped(out: Path) -> Iterator[Path]:
    """A folder beside ``out`` to render into; it replaces ``out`` whole at the end (stale
    pages go with the old folder), and is removed if rendering fails."""
    staging = out.parent / f".{out.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)  # not mkdtemp: the site is as readable as the umask lets
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = staging.with_name(f"{staging.name}-old")
    if out.exists():
        os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def progress(items: list, what: str, quiet: bool, stream=None) -> Iterable:
    """``items`` one by one with a progress display: a bar on a terminal, a plain line at
    most every LINE_SECONDS and at the end in a log, nothing when ``quiet``."""
    from tqdm import tqdm

    stream = stream or sys.stderr
    if quiet or stream.isatty():
        yield from tqdm(items, desc=what, disable=quiet, file=stream)
        return
    start = said = time.monotonic()
    for i, item in enumerate(items, start=1):
        yield item
        if i == len(items) or time.monotonic() - said >= LINE_SECONDS:
            stream.write(f"{what}: {i}/{len(items)} done, {time.monotonic() - start:.0f}s elapsed\n")
            stream.flush()
            said = time.monotonic()


def render_site(manifests: list[Manifest], results: Path, reports: Path, profile: str, quiet: bool = False) -> Path:
    """Render the site of ``manifests`` (one profile) into ``reports/site/<profile>/``."""
    store, reports = RunStore(results), Path(reports)
    env, out = environment(), reports / "site" / profile
    with swapped(out) as staging:
        (staging / "targets").mkdir()
        (staging / "methods").mkdir()
        cards, pages = [], []
        for manifest in progress(manifests, "site: targets", quiet):
            card = target_card(manifest, store, reports)
            files = copy_report(reports / manifest.target / manifest.profile, staging / "targets" / manifest.target)
            page = target_page(manifest, card, reports, files)
            (staging / "targets" / f"{manifest.target}.html").write_text(
                env.get_template("site_target.html.j2").render(page=page, root="../"))
            cards.append(card)
            pages.append(page)
        described = read_methods(results)
        used = sorted({method for page in pages for method in page["methods"]})
        for name in progress(used, "site: methods", quiet):
            method = method_page(name, described.get(name), [page for page in pages if name in page["methods"]],
                                 store, staging)
            (staging / "methods" / f"{name}.html").write_text(
                env.get_template("site_method.html.j2").render(method=method, root="../"))
        claims = all_claims(manifests, reports)
        (staging / "index.html").write_text(env.get_template("site_index.html.j2").render(
            profile=profile, cards=cards, papers=paper_cards(cards), methods=used, claims=claims.to_dict("records"),
            summary=f"{len(claims)} claims", verdicts=verdict_counts(claims), root=""))
    return out


def copy_report(report: Path, to: Path) -> list[str]:
    """Copy the files of a target's report folder (none when it has no report); their names."""
    names = sorted(path.name for path in report.glob("*") if path.is_file() and not path.name.startswith("."))
    if names:
        to.mkdir(parents=True)
        for name in names:
            shutil.copy2(report / name, to / name)
    return names
