"""Manifest validation: every kind of bad input is an error naming the file and the key."""

import pytest

from bench.errors import ConfigError
from bench.manifest import load, load_all_profiles


def set_in(path, value):
    def edit(data):
        node = data
        *parents, last = path
        for part in parents:
            node = node[part]
        node[last] = value
    return edit


def remove(path):
    def edit(data):
        node = data
        *parents, last = path
        for part in parents:
            node = node[part]
        del node[last]
    return edit


BAD = [
    # (edit, key in the message, words in the message)
    (set_in(["training", "epocs"], 3), "training.epocs", "did you mean 'epochs'"),
    (set_in(["colour"], "red"), "colour", "unknown key"),
    (set_in(["rows", 1, "method"], "imq"), "rows[1].method", "did you mean 'imp'"),
    (set_in(["training", "model"], "resnet1e"), "training.model", "did you mean 'resnet1d'"),
    (set_in(["training", "dataset"], "mnist1"), "training.dataset", "did you mean 'mnist1d'"),
    (set_in(["training", "epochs"], 0), "training.epochs", "must be positive"),
    (set_in(["training", "epochs"], -3), "training.epochs", "must be positive"),
    (set_in(["training", "epochs"], "ten"), "training.epochs", "expected int"),
    (set_in(["training", "lr"], True), "training.lr", "boolean"),
    (set_in(["goal_sparsities"], [0.5, 1.0]), "goal_sparsities[1]", "must be below 1"),
    (set_in(["goal_sparsities"], [-0.1]), "goal_sparsities[0]", "at least 0"),
    (set_in(["goal_sparsities"], []), "goal_sparsities", "must not be empty"),
    (set_in(["seeds"], []), "seeds", "must not be empty"),
    (set_in(["rows", 1, "grid", "cycles"], []), "rows[1].grid.cycles", "non-empty list"),
    (set_in(["rows", 1, "grid", "cycles"], 2), "rows[1].grid.cycles", "non-empty list"),
    (set_in(["rows", 1, "grid", "cycles"], [0]), "rows[1].grid.cycles[0]", "must be positive"),
    (set_in(["rows", 1, "params", "schedule"], "slow"), "rows[1].params.schedule", "did you mean 'slr'"),
    (set_in(["rows", 1, "grid", "retrain_epoch"], [1]), "rows[1].grid.retrain_epoch", "did you mean 'retrain_epochs'"),
    (set_in(["rows", 1, "constraint"], "cycles * retrain <= epochs"), "rows[1].constraint", "unknown name 'retrain'"),
    (set_in(["rows", 1, "constraint"], "cycles * <= epochs"), "rows[1].constraint", "invalid expression"),
    (set_in(["rows", 1, "constraint"], "__import__('os')"), "rows[1].constraint", "not allowed"),
    (remove(["rows", 1, "grid", "retrain_epochs"]), "rows[1].params.retrain_epochs", "required by method"),
    (set_in(["rows", 0, "label"], "IMP"), "rows[1].label", "duplicate label"),
    (remove(["training", "model"]), "training.model", "missing required key"),
    (set_in(["training", "lr_schedule", "kind"], "steped"), "training.lr_schedule.kind", "did you mean 'stepped'"),
    (set_in(["training", "momentum"], 1.5), "training.momentum", "must be below 1"),
    (set_in(["report", "columns"], ["acuracy"]) if False else set_in(["report"], {"columns": ["acuracy"]}),
     "report.columns[0]", "did you mean 'accuracy'"),
    (set_in(["profiles", "quick", "training"], {"epocs": 3}), "profiles.quick: training.epocs", "unknown key"),
    (set_in(["profiles", "quick", "rows"], {"IMQ": {"grid": {"cycles": [1]}}}), "profiles.quick.rows.IMQ",
     "no row labelled"),
    (set_in(["profiles", "quick", "goal_sparsities"], [1.2]), "profiles.quick: goal_sparsities[0]", "below 1"),
    (set_in(["claims"], [{"text": "x", "better": "IMQ", "worse": "Dense"}]), "claims[0].better", "did you mean 'IMP'"),
    (set_in(["claims"], [{"text": "x", "better": "IMP", "worse": "Dense", "metric": "acc"}]), "claims[0].metric",
     "unknown value 'acc'"),
    (set_in(["extends"], "table-imp-vs-stabel"), "extends", "did you mean 'table-imp-vs-stable'"),
    (set_in(["report"], {"kind": "figure"}), "report.kind", "unknown value 'figure'"),
    (set_in(["report"], {"select_by": "test_accuracy"}), "report.select_by", "unknown value 'test_accuracy'"),
]


@pytest.mark.parametrize("edit, key, words", BAD)
def test_bad_manifest_names_file_and_key(write_manifest, edit, key, words):
    path = write_manifest(edit)
    with pytest.raises(ConfigError) as caught:
        load_all_profiles(str(path))
    message = str(caught.value)
    assert str(path) in message and key in message and words in message, message


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("title = \n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load(str(path))


def test_unknown_profile_and_target():
    with pytest.raises(ConfigError, match="unknown profile 'cpuu'.*did you mean 'cpu'"):
        load("table-imp-vs-stable", "cpuu")
    with pytest.raises(ConfigError, match="unknown target 'table-imp-vs-stabel'.*did you mean 'table-imp-vs-stable'"):
        load("table-imp-vs-stabel")


def test_profile_overrides_and_rows_by_label(write_manifest):
    path = write_manifest(set_in(["profiles", "quick", "rows"], {"IMP": {"grid": {"retrain_epochs": [1], "cycles": [3]}}}))
    manifest = load(str(path), "quick")
    assert manifest.seeds == [0, 1]
    imp = next(row for row in manifest.rows if row.label == "IMP")
    assert imp.grids == [{"retrain_epochs": [1], "cycles": [3]}]
    assert load(str(path), "base").seeds == [0]


def test_constraint_filters_the_grid(write_manifest):
    # epochs = 2: cycles * retrain_epochs <= 2 keeps cycles 1 and 2 with retrain_epochs 1.
    path = write_manifest(set_in(["rows", 1, "grid"], {"retrain_epochs": [1, 2], "cycles": [1, 2]}))
    specs = [s for s in load(str(path), "base").expand() if s.method == "imp"]
    pairs = sorted({(s.hp["cycles"], s.hp["retrain_epochs"]) for s in specs})
    assert pairs == [(1, 1), (1, 2), (2, 1)]


def test_a_list_of_grids_is_their_union_without_duplicates(write_manifest):
    path = write_manifest(set_in(["rows", 1, "grid"], [{"retrain_epochs": [1], "cycles": [1, 2]},
                                                        {"retrain_epochs": [1, 2], "cycles": [1]}]))
    specs = [s for s in load(str(path), "base").expand() if s.method == "imp"]
    pairs = sorted({(s.hp["cycles"], s.hp["retrain_epochs"]) for s in specs})
    assert pairs == [(1, 1), (1, 2), (2, 1)]
    assert len(specs) == 3 * 2  # three points, two goals, one seed: (1, 1) once, not twice


def test_shipped_manifest_profiles_expand():
    manifests = {m.profile: m for m in load_all_profiles("table-imp-vs-stable")}
    assert {"base", "paper", "cpu", "smoke"} <= set(manifests)
    paper = manifests["paper"]
    assert paper.training["model"] == "resnet56" and paper.training["epochs"] == 200
    assert paper.goal_sparsities == [0.90, 0.93, 0.95, 0.98, 0.99, 0.995]
    specs = paper.expand()
    imp_plus = [s for s in specs if s.label == "IMP+"]
    assert len(imp_plus) == 4 * 4 * 4 * 4 * 6 * 3  # lr x wd x T_rt x J x sparsities x seeds
    imp = [s for s in specs if s.label == "IMP"]
    assert all(s.hp["cycles"] * s.hp["retrain_epochs"] <= 30 for s in imp)
    assert len({s.parent.run_id for s in imp_plus}) == 4 * 4 * 3  # one dense run per (lr, wd, seed)
    dense_ids = {s.run_id for s in specs if s.label == "Dense"}
    assert {s.parent.run_id for s in imp_plus} == dense_ids  # pruning reuses the Dense row's runs
