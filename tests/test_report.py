"""Reporting: configuration selection, the LaTeX table, selection.csv and the Pareto plot."""

import math
import shutil
import subprocess

import pandas as pd
import pytest

from bench.report import render_pareto, render_table, select_cells, time_ratios, write_selection
from bench.report.latex import escape
from bench.report.table import mean_std

GOALS = [0.9, 0.95]


def run(run_id, label, *, method=None, goal=0.9, seed=0, val=0.9, test=0.9, seconds=100.0,
        speedup=10.0, sparsity=None, **hp):
    """One record; ``hp`` gives the hp_ columns (default: lr 0.1)."""
    dense = method == "dense"
    return {
        "run_id": run_id, "parent_run_id": None, "method": method or "imp", "label": label,
        "seed": seed, "goal_sparsity": math.nan if dense else goal,
        **{f"hp_{key}": value for key, value in ({"lr": 0.1} | hp).items()},
        "model": "resnet56", "dataset": "cifar10", "status": "ok",
        "test_accuracy": test, "val_accuracy": val,
        "accuracy_before_prune": math.nan if dense else 0.5, "accuracy_after_prune": math.nan if dense else test,
        "pruning_stability": math.nan if dense else 0.5 / test,
        "sparsity": (0.0 if dense else goal) if sparsity is None else sparsity,
        "sparsity_overall": 0.0 if dense else goal * 0.99,
        "theoretical_speedup": 1.0 if dense else speedup, "compression_ratio": 1.0 if dense else 1 / (1 - goal),
        "epochs": 10, "train_seconds": seconds, "images_per_second": 1000.0,
        "schema_version": 1, "code_version": "test",
    }


def collapse(layers: str) -> dict:
    """The collapse columns of a record whose final model has ``layers`` (";"-joined) empty."""
    return {"collapsed_layers": layers, "n_collapsed_layers": len(layers.split(";")) if layers else 0}


def frame(*runs):
    return pd.DataFrame(list(runs))


def render(cells, tmp_path, labels, goals=GOALS, caption="Test table", **kwargs):
    render_table(cells, labels=labels, goals=goals, caption=caption, out_dir=tmp_path, **kwargs)
    return (tmp_path / "table.tex").read_text()


def table_line(tex, label):
    """The body line of the row starting with ``label``."""
    return next(line for line in tex.splitlines() if line.startswith(f"{label} &"))


def test_selection_uses_validation_not_test_accuracy(tmp_path):
    records = frame(
        run("a0", "IMP", seed=0, val=0.92, test=0.85, cycles=2),
        run("a1", "IMP", seed=1, val=0.93, test=0.86, cycles=2),
        run("b0", "IMP", seed=0, val=0.90, test=0.95, cycles=3),
        run("b1", "IMP", seed=1, val=0.91, test=0.96, cycles=3),
    )
    cells = select_cells(records, [0.9])
    assert len(cells) == 1
    cell = cells.iloc[0]
    assert cell["config"] == '{"cycles":2,"lr":0.1}'
    assert cell["run_ids"] == "a0 a1"
    assert cell["test_accuracy_mean"] == pytest.approx(0.855)
    assert cell["val_accuracy_mean"] == pytest.approx(0.925)
    line = table_line(render(cells, tmp_path, ["IMP"], goals=[0.9]), "IMP")
    assert "85.50" in line and "95.50" not in line


def test_selecting_on_test_accuracy_is_refused():
    with pytest.raises(ValueError, match="validation"):
        select_cells(frame(run("a", "IMP")), [0.9], select_by="test_accuracy")


def test_ties_are_broken_by_config_whatever_the_row_order():
    runs = [run("x", "IMP", val=0.9, test=0.80, lr=0.2), run("y", "IMP", val=0.9, test=0.70, lr=0.05)]
    for ordered in (runs, runs[::-1]):
        assert select_cells(frame(*ordered), [0.9]).iloc[0]["run_ids"] == "y"


def test_missing_hyperparameters_form_one_configuration_and_goals_match_within_tolerance():
    records = frame(
        run("a", "IMP", goal=0.9 + 1e-12, seed=0, val=0.90, cycles=math.nan),
        run("b", "IMP", goal=0.9, seed=1, val=0.90, cycles=math.nan),
        run("c", "IMP", goal=0.9, seed=0, val=0.89, cycles=2),
    )
    cell = select_cells(records, [0.9]).iloc[0]
    assert (cell["config"], cell["run_ids"], cell["n_seeds"]) == ('{"lr":0.1}', "a b", 2)


def test_dense_row_is_broadcast_and_missing_cells_are_dashes(tmp_path):
    records = frame(
        run("d0", "Dense", method="dense", seed=0, val=0.94, test=0.93),
        run("d1", "Dense", method="dense", seed=1, val=0.95, test=0.94),
        run("d2", "Dense", method="dense", seed=0, val=0.80, test=0.99, lr=0.5),
        run("i0", "IMP", goal=0.9, test=0.91),
    )
    cells = select_cells(records, GOALS)
    dense = cells[cells["label"] == "Dense"]
    assert list(dense["goal_sparsity"]) == GOALS
    assert set(dense["run_ids"]) == {"d0 d1"}
    assert list(cells.loc[cells["label"] == "IMP", "goal_sparsity"]) == [0.9]
    tex = render(cells, tmp_path, ["Dense", "IMP", "GMP"])
    assert table_line(tex, "Dense").count("93.50") == 2
    imp = table_line(tex, "IMP")
    assert "91.00" in imp and imp.count(r"\multicolumn{3}{c}{--}") == 1
    assert table_line(tex, "GMP").count(r"\multicolumn{3}{c}{--}") == 2


def test_columns_pick_and_order_the_sub_columns(tmp_path):
    records = frame(run("i0", "IMP", goal=0.9, test=0.91, speedup=12.0), run("g0", "GMP", goal=0.9, test=0.8))
    tex = render(select_cells(records, GOALS), tmp_path, ["IMP", "GMP"], columns=["speedup", "accuracy"])
    assert "Method & Time & Speedup & Accuracy & Speedup & Accuracy" in tex
    assert r"\multicolumn{2}{c}{--}" in table_line(tex, "IMP")
    assert "& 12 & \\textbf{91.00}" in table_line(tex, "IMP")


def test_exactly_the_two_best_accuracies_per_column_are_bold(tmp_path):
    accuracies = {"A": (0.91, 0.80), "B": (0.93, 0.70), "C": (0.92, 0.85), "D": (0.90, 0.86)}
    records = frame(
        run("dense", "Dense", method="dense", test=0.99),
        *(run(f"{label}{goal}", label, goal=goal, test=test)
          for label, tests in accuracies.items() for goal, test in zip(GOALS, tests)),
    )
    tex = render(select_cells(records, GOALS), tmp_path, ["Dense", *accuracies])
    bold = [[r"\textbf" in cell for cell in table_line(tex, label).split(" & ")[2::3]] for label in accuracies]
    assert bold == [[False, False], [True, False], [True, True], [False, True]]
    assert tex.count(r"\textbf") == 4


def test_ties_for_the_last_bold_place_are_all_bold(tmp_path):
    records = frame(run("a", "A", test=0.93), run("b", "B", test=0.92), run("c", "C", test=0.92),
                    run("d", "D", test=0.91))
    tex = render(select_cells(records, [0.9]), tmp_path, ["A", "B", "C", "D"], goals=[0.9])
    assert [r"\textbf" in table_line(tex, label) for label in "ABCD"] == [True, True, True, False]


def test_std_is_shown_only_when_it_prints_as_nonzero(tmp_path):
    assert mean_std(91.0, 1.41421, 2, 2) == r"91.00 $\pm$ 1.41"
    assert mean_std(91.0, 0.004, 2, 2) == "91.00"
    assert mean_std(91.0, math.nan, 2, 2) == "91.00"
    records = frame(
        run("s0", "Spread", seed=0, test=0.90), run("s1", "Spread", seed=1, test=0.92),
        run("o0", "Single", seed=0, test=0.90),
        run("e0", "Equal", seed=0, test=0.90), run("e1", "Equal", seed=1, test=0.90),
    )
    tex = render(select_cells(records, [0.9]), tmp_path, ["Spread", "Single", "Equal"], goals=[0.9])
    assert r"91.00 $\pm$ 1.41" in table_line(tex, "Spread")
    for label in ("Single", "Equal"):
        line = table_line(tex, label)
        assert "90.00" in line and r"$\pm$" not in line


def test_time_ratio_is_mean_train_seconds_over_dense(tmp_path):
    records = frame(
        run("d0", "Dense", method="dense", seed=0, seconds=100.0),
        run("d1", "Dense", method="dense", seed=1, seconds=120.0),
        run("i0", "IMP", goal=0.9, seed=0, seconds=121.0), run("i1", "IMP", goal=0.9, seed=1, seconds=132.0),
        run("j0", "IMP", goal=0.95, seed=0, seconds=143.0), run("j1", "IMP", goal=0.95, seed=1, seconds=154.0),
    )
    cells = select_cells(records, GOALS)
    ratios = time_ratios(cells)
    assert ratios["IMP"] == pytest.approx(137.5 / 110.0)
    assert ratios["Dense"] == pytest.approx(1.0)
    assert time_ratios(cells[cells["method"] != "dense"]) == {}
    tex = render(cells, tmp_path, ["Dense", "IMP"])
    assert table_line(tex, "IMP").startswith(r"IMP & 1.25$\times$ &")


def test_selection_csv_lists_the_runs_behind_each_cell(tmp_path):
    records = frame(
        run("d0", "Dense", method="dense", seed=0), run("d1", "Dense", method="dense", seed=1),
        run("i1", "IMP", goal=0.9, seed=1), run("i0", "IMP", goal=0.9, seed=0),
        run("k0", "IMP", goal=0.95, seed=0),
    )
    write_selection(select_cells(records, GOALS), tmp_path)
    selection = pd.read_csv(tmp_path / "selection.csv")
    assert {"label", "goal_sparsity", "config", "n_seeds", "run_ids",
            "test_accuracy_mean", "test_accuracy_std"} <= set(selection.columns)
    backing = {(row.label, row.goal_sparsity): row.run_ids for row in selection.itertuples()}
    assert backing == {("Dense", 0.9): "d0 d1", ("Dense", 0.95): "d0 d1",
                       ("IMP", 0.9): "i0 i1", ("IMP", 0.95): "k0"}


def test_text_is_latex_escaped(tmp_path):
    assert escape("IMP+ & 50%_x") == r"IMP+ \& 50\%\_x"
    assert escape(r"a\b{c}$#~^") == r"a\textbackslash{}b\{c\}\$\#\textasciitilde{}\textasciicircum{}"
    tex = render(select_cells(frame(run("a", "IMP+ & 50%_x")), [0.9]), tmp_path, ["IMP+ & 50%_x"],
                 goals=[0.9], caption="profile cpu_small, 100% of data")
    assert r"IMP+ \& 50\%\_x & " in tex
    assert r"\caption{profile cpu\_small, 100\% of data}" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_standalone_compiles_with_pdflatex(tmp_path):
    goals = [0.9, 0.93, 0.95, 0.98, 0.99, 0.995]
    labels = ["Dense", "IMP", "IMP+ & 50%_x", r"odd \label{x} ~^#$"]
    records = frame(
        run("d", "Dense", method="dense"),
        *(run(f"{i}-{goal}-{seed}", label, goal=goal, seed=seed, test=0.9 - goal / 10 + seed / 100, speedup=1 / (1 - goal))
          | collapse("stem.0_x" if goal == 0.995 else "")
          for i, label in enumerate(labels[1:]) for goal in goals[i:] for seed in (0, 1)),
    )
    render_table(select_cells(records, goals), labels=labels, goals=goals,
                 caption="ResNet-56 on CIFAR-10 (profile cpu_small: 5% & $1 ~ #1)", out_dir=tmp_path)
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "standalone.tex"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "standalone.pdf").stat().st_size > 0


def test_pareto_figures_are_written(tmp_path):
    records = frame(
        run("d0", "Dense", method="dense", seed=0, test=0.93), run("d1", "Dense", method="dense", seed=1, test=0.94),
        *({**run(f"{label}{goal}{seed}", label, goal=goal, seed=seed, test=0.9 - goal / 10 + seed / 100,
                 speedup=1 / (1 - goal)), **collapse("fc" if (label, goal, seed) == ("GMP", 0.95, 1) else "")}
          for label in ("IMP", "GMP") for goal in GOALS for seed in (0, 1)),
    )  # close curves (a zoomed panel) and a collapsed seed (a dagger)
    render_pareto(select_cells(records, GOALS), labels=["Dense", "IMP", "GMP"], out_dir=tmp_path, title="Test")
    assert (tmp_path / "pareto.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "pareto.png").read_bytes().startswith(b"\x89PNG")


def test_learned_sparsity_lands_in_a_column_within_a_quarter_point():
    # Config A: mean sparsity (0.9010 + 0.9030) / 2 = 0.9020, 0.20 points from 90%: lands in 90%.
    # Config B: mean 0.9030, 0.30 points away: lands nowhere, although one seed is at 0.9020.
    # Config C: mean 0.9490, 0.10 points below 95%: lands in 95%.
    records = frame(
        run("a0", "CS", method="cs", goal=math.nan, sparsity=0.9010, seed=0, val=0.90, s_init=0.1),
        run("a1", "CS", method="cs", goal=math.nan, sparsity=0.9030, seed=1, val=0.90, s_init=0.1),
        run("b0", "CS", method="cs", goal=math.nan, sparsity=0.9020, seed=0, val=0.99, s_init=0.2),
        run("b1", "CS", method="cs", goal=math.nan, sparsity=0.9040, seed=1, val=0.99, s_init=0.2),
        run("c0", "CS", method="cs", goal=math.nan, sparsity=0.9490, seed=0, val=0.80, s_init=0.3),
    )
    cells = select_cells(records, GOALS).set_index("goal_sparsity")
    assert cells.loc[0.9, "run_ids"] == "a0 a1"
    assert cells.loc[0.9, "sparsity_mean"] == pytest.approx(0.902)
    assert cells.loc[0.95, "run_ids"] == "c0"
    assert set(cells.index) == {0.9, 0.95}


def test_a_collapsed_cell_is_marked_and_the_caption_names_its_layers(tmp_path):
    records = frame(
        run("p0", "DPF", seed=0, test=0.089) | collapse("stem.0;fc"),
        run("p1", "DPF", seed=1, test=0.089) | collapse("stem.0"),
        run("p2", "DPF", seed=2, test=0.089) | collapse(""),
        run("i0", "IMP", seed=0) | collapse(""),
        run("o0", "Old", seed=0),  # recorded before collapses were looked for: unknown, not "none"
    )
    cells = select_cells(records, [0.9])
    by_label = cells.set_index("label")
    assert (by_label.loc["DPF", "n_collapsed_seeds"], by_label.loc["DPF", "collapsed_layers"]) == (2, "stem.0;fc")
    assert by_label.loc["IMP", "n_collapsed_seeds"] == 0 and math.isnan(by_label.loc["Old", "n_collapsed_seeds"])
    tex = render(cells, tmp_path, ["DPF", "IMP", "Old"], goals=[0.9])
    assert r"8.90$^\dagger$" in table_line(tex, "DPF")
    assert tex.count(r"$^\dagger$") == 1
    assert "\u2020: the selected configuration ended with a collapsed layer" in tex
    assert r"DPF at 90\% (2 of 3 seeds: stem.0, fc)." in tex
    write_selection(cells, tmp_path)
    selection = pd.read_csv(tmp_path / "selection.csv").set_index("label")
    assert selection.loc["DPF", "n_collapsed_seeds"] == 2 and math.isnan(selection.loc["Old", "n_collapsed_seeds"])


def test_a_table_without_collapse_has_no_mark_and_no_note(tmp_path):
    tex = render(select_cells(frame(run("i0", "IMP") | collapse("")), [0.9]), tmp_path, ["IMP"], goals=[0.9])
    assert "dagger" not in tex and "\u2020" not in tex


def test_log_axes_carry_plain_tick_labels():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from bench.report.figures import plain_log_axis

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([5, 45], [0, 1])
    ax.set_xscale("log")
    plain_log_axis(ax.xaxis)
    fig.canvas.draw()
    shown = [label.get_text() for label in ax.get_xticklabels() if label.get_text()]
    low, high = ax.get_xlim()
    visible = [text for text, tick in zip(shown, ax.get_xticks()) if low <= tick <= high]
    assert visible == ["6", "10", "20", "40"]


def cell(label, goal, mean, low=None, high=None, method="imp"):
    return {"label": label, "method": method, "goal_sparsity": goal, "test_accuracy_mean": mean,
            "test_accuracy_min": mean if low is None else low, "test_accuracy_max": mean if high is None else high}


def test_overlapping_top_curves_get_a_zoomed_band():
    from bench.report.figures import top_band

    cells = pd.DataFrame([cell("Dense", math.nan, 0.97, method="dense"),
                          cell("IMP", 0.9, 0.96, 0.955, 0.965), cell("IMP", 0.95, 0.94),
                          cell("GMP", 0.9, 0.95), cell("GMP", 0.95, 0.92, 0.91, 0.93),
                          cell("DNW", 0.9, 0.70), cell("DNW", 0.95, 0.60)])
    low, high = top_band(cells, ["IMP", "GMP", "DNW"], ["Dense"])
    assert low < 91 and 91 - low < 0.5 and 97 < high < 97.5  # GMP's band up to the dense mean, DNW left out
    far = cells.copy()
    pruned = far["method"] != "dense"
    far.loc[pruned, ["test_accuracy_mean", "test_accuracy_min", "test_accuracy_max"]] -= 0.1
    assert top_band(far, ["IMP", "GMP"], ["Dense"])[1] < 87  # a dense mean far above them is left out
    assert top_band(cells, ["IMP", "DNW"], ["Dense"]) is None  # one top curve: nothing to zoom on
    spread = cells.assign(test_accuracy_mean=cells["test_accuracy_mean"].where(cells["label"] != "GMP", 0.85))
    assert top_band(spread, ["IMP", "GMP", "DNW"], ["Dense"]) is None

