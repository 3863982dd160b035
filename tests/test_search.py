"""The sparsity search of STR, CS and DST: proposals on hand-made numbers, the manifest key,
the expansion from a hand-made store, and one real search through `prunebench run`."""

import math
import random

import pandas as pd
import pytest

from schema import ConfigError, Param
from bench.cli import main
from bench.manifest import load
from bench.report.select import LANDING_TOLERANCE
from bench.search import expand, propose
from bench.store import RunStore
from bench.synthetic import synthetic_record


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# --- propose --------------------------------------------------------------------------------

def test_a_bracketed_goal_is_interpolated_in_logit_sparsity():
    # logit sparsity 0 at s_init 0 and 2 at s_init 2: logit 1 lies halfway.
    assert propose([(0.0, 0.5), (2.0, sigmoid(2))], [sigmoid(1)], "linear") == [1.0]


def test_the_tightest_bracket_is_used():
    tried = [(-10.0, 0.01), (0.0, 0.5), (2.0, sigmoid(2)), (9.0, 0.999)]
    assert propose(tried, [sigmoid(1)], "linear") == [1.0]


def test_without_a_bracket_the_two_values_nearest_the_goal_are_extrapolated():
    tried = [(-5.0, 0.1), (0.0, 0.5), (1.0, sigmoid(1))]
    assert propose(tried, [sigmoid(3)], "linear") == [3.0]


def test_a_log_scale_interpolates_in_log10():
    assert propose([(1e-4, 0.5), (1e-2, sigmoid(2))], [sigmoid(1)], "log") == [0.001]


def test_a_goal_already_reached_within_the_tolerance_gets_nothing():
    tried = [(0.0, 0.5), (2.0, 0.9 - LANDING_TOLERANCE)]
    assert propose(tried, [0.9], "linear") == []
    tried = [(0.0, 0.5), (2.0, sigmoid(2))]
    assert propose(tried, [sigmoid(2) + 0.002, sigmoid(1)], "linear") == [1.0]


def test_fewer_than_two_distinct_values_propose_nothing():
    assert propose([], [0.9], "linear") == []
    assert propose([(-2.0, 0.5)], [0.9], "linear") == []
    assert propose([(-2.0, 0.5), (-1.0, math.nan)], [0.9], "linear") == []  # a diverged configuration
    assert propose([(-2.0, 0.5), (-1.0, 0.5)], [0.9], "linear") == []  # no slope to follow


def test_values_are_rounded_to_three_digits_and_tried_or_out_of_bounds_ones_dropped():
    (value,) = propose([(-5.0, 0.8), (-2.0, 0.97)], [0.9], "linear")
    assert value == -3.84  # -3.8356...
    assert propose([(0.0, 0.5), (2.0, sigmoid(2)), (1.0, math.nan)], [sigmoid(1)], "linear") == []
    assert propose([(1e-4, 0.5), (1e-2, sigmoid(2))], [sigmoid(1)], "log", bounds=Param(1e-5, at_most=1e-3)) == [0.001]
    assert propose([(0.0, 0.5), (1.0, sigmoid(1))], [0.2], "linear", bounds=Param(1.0, at_least=0.0)) == []
    assert propose([(0.0, 0.5), (1.0, sigmoid(1))], [0.93, 0.9301], "linear") == [2.59]  # once


# --- the manifest key -----------------------------------------------------------------------------

STR_ROW = {"label": "STR", "method": "str", "grid": {"s_init": [-5.0, -2.0]}, "search": {"rounds": 2}}


def test_a_search_is_read_per_row_and_a_profile_overrides_it(write_manifest):
    def edit(data):
        data["rows"].append(STR_ROW)
        data["profiles"]["quick"]["rows"] = {"STR": {"search": {"rounds": 1}}}
    path = write_manifest(edit)
    assert [row.search_rounds for row in load(str(path), "base").rows] == [0, 0, 2]
    assert [row.search_rounds for row in load(str(path), "quick").rows] == [0, 0, 1]
    assert load(str(path), "base", registries=False).rows[2].search_rounds == 2


def test_a_search_on_a_method_given_its_sparsity_is_refused(write_manifest):
    path = write_manifest(lambda data: data["rows"][1].update(search={"rounds": 1}))
    with pytest.raises(ConfigError, match=r"small.toml: rows\[1\].search: .*only a method that learns it"):
        load(str(path), "base")


def test_a_row_names_the_column_its_search_fits(write_manifest):
    def edit(data):
        data["rows"].append({**STR_ROW, "search": {"rounds": 1, "column": "node_sparsity"}})
    manifest = load(str(write_manifest(edit)), "base")
    assert [row.search_column for row in manifest.rows] == [None, None, "node_sparsity"]
    assert load(str(write_manifest(edit)), "base", registries=False).rows[2].search_column == "node_sparsity"
    path = write_manifest(lambda data: data["rows"].append({**STR_ROW, "search": {"rounds": 1, "column": "nodes"}}))
    with pytest.raises(ConfigError, match=r"small.toml: rows\[2\].search.column: unknown value 'nodes'"):
        load(str(path), "base")


def test_the_shipped_table_searches_str_cs_and_dst_without_changing_its_grid():
    for profile in ("paper", "cpu", "smoke"):
        manifest = load("table-imp-vs-stable", profile)
        assert {row.label: row.search_rounds for row in manifest.rows if row.search_rounds} == \
            {"STR": 3, "CS": 3, "DST": 3}


# --- the expansion, from a hand-made store --------------------------------------------------------

def learned(s_init: float) -> float:
    """The final sparsity of the fake runs: logit sparsity = s_init + 3."""
    return sigmoid(s_init + 3)


def finish(store: RunStore, specs) -> None:
    """Record every spec not yet done, with the sparsity ``learned`` gives its s_init."""
    for spec in specs:
        if not store.is_done(spec.run_id):
            record = synthetic_record(spec, random.Random(spec.seed)) | {"sparsity": learned(spec.hp["s_init"])}
            store.write_run(spec, record, [{"epoch": 1}], {}, "fake")


@pytest.fixture
def searched(write_manifest, tmp_path):
    def edit(data):
        data["seeds"] = [0, 1]
        data["rows"] = [{"label": "STR", "method": "str", "search": {"rounds": 3},
                         "grid": [{"s_init": [-5.0, -2.0]}, {"weight_decay": [5e-3], "s_init": [-2.0]}]}]
    return load(str(write_manifest(edit)), "base"), RunStore(tmp_path / "results")


def s_inits(specs) -> list[tuple]:
    return sorted({(spec.training["weight_decay"], spec.hp["s_init"]) for spec in specs})


def test_the_search_adds_a_round_once_its_inputs_are_finished(searched):
    manifest, store = searched
    first = expand(manifest, store)
    assert [s.run_id for s in first] == [s.run_id for s in manifest.expand()]  # nothing stored: the first grid
    finish(store, first[:-1])
    assert [s.run_id for s in expand(manifest, store)] == [s.run_id for s in first]  # one run still out
    finish(store, first)
    # Goals 50% and 90%: s_init -3 (bracketed) and -0.803 (extrapolated) in the group with weight
    # decay 5e-4; the group with weight decay 5e-3 has one value and gets nothing.
    after_one = expand(manifest, store)
    assert s_inits(after_one) == [(5e-4, -5.0), (5e-4, -3.0), (5e-4, -2.0), (5e-4, -0.803), (5e-3, -2.0)]
    assert len(after_one) == 5 * 2  # two seeds each
    assert {s.run_id for s in first} < {s.run_id for s in after_one}  # the first grid's runs unchanged
    finish(store, after_one)
    assert [s.run_id for s in expand(manifest, store)] == [s.run_id for s in after_one]  # both goals reached


def test_a_failed_run_does_not_stop_the_search(searched):
    manifest, store = searched
    first = expand(manifest, store)
    finish(store, first[1:])
    store.write_failure(first[0], "RuntimeError: out of memory", "log")  # s_init -5, seed 0
    assert s_inits(expand(manifest, store)) == [(5e-4, -5.0), (5e-4, -3.0), (5e-4, -2.0), (5e-4, -0.803),
                                                (5e-3, -2.0)]  # seed 1 of s_init -5 stands for it


def test_each_goal_gets_one_proposal_from_the_group_scoring_best_near_it(write_manifest, tmp_path):
    def edit(data):
        data["seeds"] = [0, 1]
        data["goal_sparsities"] = [0.1, 0.5]
        data["rows"] = [{"label": "STR", "method": "str", "search": {"rounds": 1},
                         "grid": {"weight_decay": [5e-4, 5e-3], "s_init": [-5.0, -2.0]}}]
    manifest, store = load(str(write_manifest(edit)), "base"), RunStore(tmp_path / "results")
    # Both groups fit the same line: s_init -5 gives 11.9%, -2 gives 73.1%. Near 10% (s_init -5)
    # weight decay 5e-4 validates better, near 50% (s_init -2) weight decay 5e-3 does.
    score = {(5e-4, -5.0): 0.8, (5e-4, -2.0): 0.6, (5e-3, -5.0): 0.7, (5e-3, -2.0): 0.9}
    first = expand(manifest, store)
    for spec in first:
        record = synthetic_record(spec, random.Random(spec.seed)) | {
            "sparsity": learned(spec.hp["s_init"]), "val_accuracy": score[spec.training["weight_decay"], spec.hp["s_init"]]}
        store.write_run(spec, record, [{"epoch": 1}], {}, "fake")
    # 10%: logit(0.1) - 3 = -5.197 from weight decay 5e-4; 50%: logit(0.5) - 3 = -3 from 5e-3.
    added = sorted(set(s_inits(expand(manifest, store))) - set(s_inits(first)))
    assert added == [(5e-4, -5.2), (5e-3, -3.0)]


def proposed(write_manifest, tmp_path, row: dict, sparsities) -> list[tuple]:
    """The (control, value) pairs one round adds to ``row`` whose first grid's records have the
    weight and node sparsities ``sparsities(hp)`` gives."""
    def edit(data):
        data["rows"] = [row]
    manifest, store = load(str(write_manifest(edit)), "base"), RunStore(tmp_path / "results")
    first = expand(manifest, store)
    for spec in first:
        sparsity, node_sparsity = sparsities(spec.hp)
        record = synthetic_record(spec, random.Random(spec.seed)) | {"sparsity": sparsity, "node_sparsity": node_sparsity}
        store.write_run(spec, record, [{"epoch": 1}], {}, "fake")
    return sorted({tuple(spec.hp.items()) for spec in expand(manifest, store)} - {tuple(s.hp.items()) for s in first})


def test_a_structured_penalty_method_is_searched_on_node_sparsity(write_manifest, tmp_path):
    # Weight sparsity 50% everywhere (a goal already met, and no slope); node sparsity has
    # logit log10(lambda) + 3: goal 50% at lambda 1e-3, goal 90% at 10^(logit(0.9) - 3) = 0.157.
    row = {"label": "Group-HS", "method": "group-hs", "grid": {"hoyer_reg": [1e-4, 1e-2]}, "search": {"rounds": 1}}
    added = proposed(write_manifest, tmp_path, row, lambda hp: (0.5, sigmoid(math.log10(hp["hoyer_reg"]) + 3)))
    assert [dict(hp)["hoyer_reg"] for hp in added] == [0.001, 0.157]


def test_describe_names_the_column_a_method_is_searched_on():
    from bench.cli import describe_method
    from methods import METHODS

    assert "(searched on a log scale, fitting node_sparsity)" in describe_method(METHODS["l0"])
    assert "(searched on a linear scale, fitting sparsity)" in describe_method(METHODS["str"])


def test_a_row_can_search_a_method_on_node_sparsity(write_manifest, tmp_path):
    # STR's weight sparsity has logit s_init + 3, its node sparsity logit s_init + 4: fitted on
    # node sparsity, goal 50% lands at s_init -4 (bracketed by -5 and -2), goal 90% at
    # logit(0.9) - 4 = -1.80 (extrapolated).
    row = {**STR_ROW, "search": {"rounds": 1, "column": "node_sparsity"}}
    added = proposed(write_manifest, tmp_path, row, lambda hp: (learned(hp["s_init"]), learned(hp["s_init"] + 1)))
    assert [dict(hp)["s_init"] for hp in added] == [-4.0, -1.8]


# --- one real search ---------------------------------------------------------------------------

@pytest.mark.slow
def test_prunebench_run_searches_and_the_report_counts_configurations(write_manifest, tmp_path, data_root):
    def edit(data):
        data["goal_sparsities"] = [0.5, 0.9]
        data["rows"] = [{"label": "STR", "method": "str", "grid": {"s_init": [-4.0, -3.0]},
                         "search": {"rounds": 1}, "params": {"finetune_fraction": 0.5}}]
    path = write_manifest(edit)
    results, reports = tmp_path / "results", tmp_path / "reports"
    argv = ["run", str(path), "--profile", "base", "--executor", "inline", "--quiet", "--results", str(results),
            "--reports", str(reports), "--data-root", str(data_root)]
    assert main(argv) == 0
    configs = {run.name for run in (results / "runs").iterdir() if not run.name.startswith(".")}
    assert len(configs) > 2  # the search added configurations
    selection = pd.read_csv(reports / "small" / "base" / "selection.csv")
    assert (selection["n_configs"] == len(configs)).all()
    assert f"Configurations tried: STR {len(configs)}" in (reports / "small" / "base" / "table.tex").read_text()


def test_the_caption_counts_the_tries_and_says_why_a_cell_is_empty(searched):
    from bench.report.build import search_note
    from bench.report.select import select_cells

    manifest, _ = searched
    records = pd.DataFrame([{"run_id": f"r{i}", "label": "STR", "method": "str", "goal_sparsity": math.nan,
                             "hp_s_init": s_init, "sparsity": sparsity, "val_accuracy": 0.9}
                            for i, (s_init, sparsity) in enumerate([(-5.0, 0.5), (-2.0, 0.7), (-1.0, 0.8)])])
    cells = select_cells(records, manifest.goal_sparsities)
    assert list(cells["n_configs"]) == [3]  # the 50% cell: every configuration of the row competed
    assert search_note(manifest, records, cells, ["STR"]) == (
        "Configurations tried: STR 3. Empty: STR at 90%: no configuration within 0.25 points after 3 rounds "
        "(3 tried). ")
