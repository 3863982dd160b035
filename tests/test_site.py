"""`prunebench site`: the static HTML site's data (cards, verdicts, the HTML table, curves),
its escaping and its imports, on stored runs faked without training."""

import html
import io
import json
import subprocess
import sys

import pandas as pd
import pytest

from bench.cli import main
from bench.manifest import load
from bench.perf.reporting import stored_runs
from bench.report import select_cells
from bench.report.build import render_report
from bench.report.site import (curves, html_table, paper_cards, paper_of, progress, render_site, target_card,
                               verdict_counts)
from bench.runlist import read_methods, remember
from bench.runspec import with_parents
from bench.store import FAILED, HISTORY, RECORD, RunStore
from test_report import GOALS, frame, render, run, table_line

CLAIMS = [{"text": "IMP beats Dense", "better": "IMP", "worse": "Dense"},
          {"text": "Dense beats IMP", "better": "Dense", "worse": "IMP"}]


def with_claims(data):
    data["seeds"] = [0, 1]
    data["claims"] = CLAIMS


@pytest.fixture
def stored(tmp_path, write_manifest):
    """A target whose runs are stored (synthetic records and two-epoch histories), one of them
    failed and one missing, its run list written and its report rendered: (path, results, reports)."""
    path = write_manifest(with_claims)
    manifest = load(str(path), "base")
    results, reports = tmp_path / "results", tmp_path / "reports"
    store = RunStore(results)
    specs = manifest.expand()
    stored_runs(store, with_parents(specs))
    for i, spec in enumerate(with_parents(specs)):
        pd.DataFrame({"phase": "train", "epoch": [1, 2], "val_accuracy": [0.5 + i / 100, 0.6 + i / 100]}).to_parquet(
            store.run_dir(spec.run_id) / HISTORY)
    imp = [spec for spec in specs if spec.method == "imp"]
    (store.run_dir(imp[0].run_id) / RECORD).unlink()
    (store.run_dir(imp[0].run_id) / FAILED).write_text(json.dumps({"error": "diverged"}))
    (store.run_dir(imp[1].run_id) / RECORD).unlink()
    runs = remember(manifest, specs, results)
    render_report(manifest, runs, store, reports)
    return path, results, reports


def test_a_card_counts_the_runs_failed_and_missing_and_the_claims_verdicts(stored):
    path, results, reports = stored
    manifest = load(str(path), "base", registries=False)
    judged = pd.read_csv(reports / "small" / "base" / "claims.csv", keep_default_na=False)
    card = target_card(manifest, RunStore(results), reports)
    needed = len(with_parents(load(str(path), "base").expand()))
    assert card["runs"] == {"total": needed, "done": needed - 2, "failed": 1, "missing": 1}
    assert card["verdicts"] == judged["verdict"].value_counts().to_dict() and sum(card["verdicts"].values()) == 2
    assert (card["kind"], card["paper"], card["reported"]) == ("table", "tests", True)

    other = {**card, "target": "other", "verdicts": {"agree": 1, "not run": 2}}
    papers = paper_cards([card, other])
    assert [paper["targets"] for paper in papers] == [["small", "other"]]
    total = {verdict: card["verdicts"].get(verdict, 0) + other["verdicts"].get(verdict, 0)
             for verdict in ("agree", "disagree", "cannot tell", "not run")}
    assert papers[0]["verdicts"] == {verdict: n for verdict, n in total.items() if n}


def test_verdict_counts_follow_the_order_of_the_verdicts():
    claims = pd.DataFrame({"verdict": ["not run", "agree", "cannot tell", "agree"]})
    assert list(verdict_counts(claims).items()) == [("agree", 2), ("cannot tell", 1), ("not run", 1)]


def test_the_paper_of_a_source():
    assert paper_of("Back to Basics (Zimmer et al.), Table 1 / Table 4; the BIMP row from Love Retraining") == \
        "Back to Basics (Zimmer et al.)"
    assert paper_of("Comparing Rewinding and Fine-tuning (Renda, Frankle & Carbin), Figures 1-4") == \
        "Comparing Rewinding and Fine-tuning (Renda, Frankle & Carbin)"
    assert paper_of("tests, a table") == "tests"


def test_the_html_table_bolds_the_cells_the_latex_table_bolds(tmp_path, write_manifest):
    accuracies = {"A": (0.91, 0.80), "B": (0.93, 0.70), "C": (0.92, 0.85), "D": (0.90, 0.86)}
    records = frame(run("dense", "Dense", method="dense", test=0.99),
                    *(run(f"{label}{goal}", label, goal=goal, test=test)
                      for label, tests in accuracies.items() for goal, test in zip(GOALS, tests)))
    cells = select_cells(records, GOALS)

    def rows(data):
        data["goal_sparsities"] = GOALS
        data["rows"] = [{"label": "Dense", "method": "dense"},
                        *({"label": label, "method": "imp"} for label in accuracies)]
    table = html_table(cells, load(str(write_manifest(rows)), "base", registries=False))
    assert [row["label"] for row in table["rows"]] == ["Dense", *accuracies]
    html_bold = {row["label"]: [cell["bold"] for cell in row["cells"]] for row in table["rows"]}
    assert html_bold == {"Dense": [False, False], "A": [False, False], "B": [True, False], "C": [True, True],
                         "D": [False, True]}
    tex = render(cells, tmp_path, ["Dense", *accuracies])
    assert html_bold == {label: [r"\textbf" in cell for cell in table_line(tex, label).split(" & ")[2::3]]
                         for label in ["Dense", *accuracies]}
    assert table["rows"][2]["cells"][0]["accuracy"] == "93.00" and table["rows"][0]["time"] == "1.00\u00d7"


def test_curves_are_the_seeds_mean_and_band_per_cell_and_shared_runs_drawn_once(tmp_path):
    store = RunStore(tmp_path)
    for run_id, accuracies in {"d0": [0.5, 0.7], "d1": [0.7, 0.9], "i0": [0.4, 0.6]}.items():
        store.run_dir(run_id).mkdir(parents=True)
        pd.DataFrame({"val_accuracy": accuracies}).to_parquet(store.run_dir(run_id) / HISTORY)
        pd.DataFrame([{"run_id": run_id}]).to_parquet(store.run_dir(run_id) / RECORD)
    cells = pd.DataFrame({"label": ["Dense", "Dense", "IMP"], "goal_sparsity": [0.5, 0.9, 0.9],
                          "run_ids": ["d0 d1", "d1 d0", "i0 missing"]})
    points = curves(cells, store).set_index(["goal", "label", "epoch"])
    assert points.loc[("50%, 90%", "Dense", 2), ["mean", "min", "max", "n_seeds"]].tolist() == \
        pytest.approx([0.8, 0.7, 0.9, 2])
    assert points.loc[("90%", "IMP", 1), ["mean", "n_seeds"]].tolist() == pytest.approx([0.4, 1])
    assert len(points) == 4


def test_the_site_escapes_what_it_shows(tmp_path, write_manifest):
    def hostile(data):
        with_claims(data)
        data["title"] = "<script>alert('title')</script>"
        data["rows"][1]["label"] = "IMP <b>&</b>"
        data["claims"] = [{"text": "<img src=x onerror=alert(1)>", "better": "IMP <b>&</b>", "worse": "Dense"}]
    path = write_manifest(hostile)
    manifest = load(str(path), "base")
    results, reports = tmp_path / "results", tmp_path / "reports"
    store = RunStore(results)
    stored_runs(store, with_parents(manifest.expand()))
    render_report(manifest, remember(manifest, manifest.expand(), results), store, reports)
    site = render_site([load(str(path), "base", registries=False)], results, reports, "base", quiet=True)
    page, index = (site / "targets" / "small.html").read_text(), (site / "index.html").read_text()
    for html in (page, index):
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>&</b>" not in html
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in page
    assert "IMP &lt;b&gt;&amp;&lt;/b&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in index


def test_the_site_has_a_page_per_target_and_method_and_replaces_the_old_one(stored):
    path, results, reports = stored
    stale = reports / "site" / "base" / "stale.html"
    stale.parent.mkdir(parents=True)
    stale.write_text("from an earlier site")
    site = render_site([load(str(path), "base", registries=False)], results, reports, "base", quiet=True)
    assert not stale.exists() and not [p for p in site.parent.iterdir() if p.name.startswith(".")]
    assert {p.relative_to(site).as_posix() for p in site.rglob("*.html")} == {
        "index.html", "targets/small.html", "methods/dense.html", "methods/imp.html"}
    assert (site / "methods" / "imp" / "small.png").stat().st_size > 0
    copied = site / "targets" / "small" / "pareto.png"
    assert copied.read_bytes() == (reports / "small" / "base" / "pareto.png").read_bytes()
    index = (site / "index.html").read_text()
    assert "2 claims: " in index and "runs: " in index and "1 failed, 1 missing" in index
    imp = (site / "methods" / "imp.html").read_text()
    assert read_methods(results)["imp"]["params"]["cycles"] in html.unescape(imp)
    page = html.unescape((site / "targets" / "small.html").read_text())
    judged = pd.read_csv(reports / "small" / "base" / "claims.csv", keep_default_na=False)
    for claim in judged.itertuples():
        assert claim.run_ids and claim.run_ids in page and claim.spread.split(";")[0] in page


SITE_IMPORTS = """
import sys
from bench.cli import main
code = main(["site", *sys.argv[1:]])
print("imported:", sorted(name for name in ("torch", "methods", "models") if name in sys.modules))
sys.exit(code)
"""


def test_the_site_of_stored_runs_imports_neither_torch_nor_methods_nor_models(stored):
    path, results, reports = stored
    done = subprocess.run([sys.executable, "-c", SITE_IMPORTS, str(path), "--profile", "base", "--quiet",
                           "--results", str(results), "--reports", str(reports)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "imported: []" in done.stdout and (reports / "site" / "base" / "index.html").is_file()


def test_a_target_without_a_run_list_or_report_says_what_makes_them(tmp_path, capsys):
    assert main(["site", "table-imp-vs-stable", "--profile", "smoke", "--quiet", "--results", str(tmp_path / "r"),
                 "--reports", str(tmp_path / "reports")]) == 0
    index = (tmp_path / "reports" / "site" / "smoke" / "index.html").read_text()
    assert "no current run list: <code>prunebench report table-imp-vs-stable --profile smoke</code>" in index
    assert "no report yet" in index and "not run" in index


def test_progress_is_a_line_in_a_log_and_nothing_when_quiet():
    log = io.StringIO()
    assert list(progress([1, 2, 3], "site: targets", quiet=False, stream=log)) == [1, 2, 3]
    assert log.getvalue().splitlines()[-1].startswith("site: targets: 3/3 done")
    quiet = io.StringIO()
    assert list(progress([1, 2], "site", quiet=True, stream=quiet)) == [1, 2] and quiet.getvalue() == ""


def test_a_claim_records_the_seed_spread_and_the_runs_it_was_judged_on():
    from bench.report.paper import evaluate_claims

    cells = pd.DataFrame([{"label": label, "goal_sparsity": 0.9, "test_accuracy_mean": mean, "test_accuracy_std": 0.01,
                           "n_seeds": 2, "run_ids": ids}
                          for label, mean, ids in (("A", 0.93, "a0 a1"), ("B", 0.9, "b0 b1"))])
    claim = {"text": "A beats B", "better": "A", "worse": "B", "metric": "test_accuracy", "goals": None}
    judged = evaluate_claims(cells, [claim], [0.9]).iloc[0]
    # 2 SE = 2 sqrt(2 * 0.01^2 / 2) = 0.02, in points: 2.00
    assert judged["spread"] == "90%: A 93.00 \u00b1 1.00 (2 seeds), B 90.00 \u00b1 1.00 (2 seeds); 2 SE 2.00"
    assert judged["run_ids"] == "a0 a1 b0 b1" and judged["evidence"] == "90%: +3.00 (agree)"
