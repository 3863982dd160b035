"""Manifests: TOML errors, profiles, grids and constraints, the shipped manifests.
(Every malformed manifest through the command line: test_bad_input.py.)"""

import pytest

from schema import ConfigError
from bench.manifest import load, load_all_profiles
from manifest_edits import set_in


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


def imp_points(manifest) -> list[tuple]:
    specs = [s for s in manifest.expand() if s.label == "IMP"]
    return sorted({(s.training["lr"], s.training["weight_decay"], s.hp["cycles"], s.hp["retrain_epochs"])
                   for s in specs})


def test_a_profile_that_fixes_a_training_key_removes_that_axis_from_every_grid(write_manifest):
    def edit(data):
        data["rows"][1]["grid"] |= {"lr": [0.05, 0.1], "weight_decay": [1e-4, 5e-4]}
        data["profiles"]["quick"]["training"] = {"lr": 0.2}
    manifest = load(str(write_manifest(edit)), "quick")
    assert imp_points(manifest) == [(0.2, 1e-4, 1, 1), (0.2, 1e-4, 2, 1), (0.2, 5e-4, 1, 1), (0.2, 5e-4, 2, 1)]


def test_a_profile_row_that_names_a_fixed_key_again_wins(write_manifest):
    def edit(data):
        data["rows"][1]["grid"] |= {"lr": [0.05, 0.1]}
        data["profiles"]["quick"]["training"] = {"lr": 0.2}
        data["profiles"]["quick"]["rows"] = {"IMP": {"grid": {"lr": [0.3], "cycles": [1]}}}
    manifest = load(str(write_manifest(edit)), "quick")
    assert imp_points(manifest) == [(0.3, 5e-4, 1, 1)]  # cycles replaced, retrain_epochs kept


def test_top_level_params_reach_every_row_whose_method_has_them(write_manifest):
    def edit(data):
        data["rows"].append({"label": "GMP", "method": "gmp", "grid": {"steps": [2]}})
        data["profiles"]["quick"]["params"] = {"finetune_fraction": 0.5, "selection": "uniform"}
    manifest = load(str(write_manifest(edit)), "quick")
    hp = {s.label: s.hp for s in manifest.expand()}
    assert hp["GMP"]["finetune_fraction"] == 0.5 and hp["GMP"]["selection"] == "uniform"
    assert hp["IMP"]["selection"] == "uniform" and "finetune_fraction" not in hp["IMP"]
    assert not any(hp["Dense"].values())  # dense has no selection or finetune_fraction to take


def test_an_epoch_count_given_as_a_share_of_the_budget(write_manifest):
    # T = 2 in SMALL; "50%" -> round(1.0) = 1 epoch, "10%" -> 0.2, at least 1; the same runs as
    # retrain_epochs = [1]: the run id hashes the epochs, not the share.
    shares = load(str(write_manifest(set_in(["rows", 1, "grid", "retrain_epochs"], ["50%", "10%"]))), "base")
    epochs = load(str(write_manifest(set_in(["rows", 1, "grid", "retrain_epochs"], [1]))), "base")
    assert {s.run_id for s in shares.expand()} == {s.run_id for s in epochs.expand()}
    t24 = load(str(write_manifest(lambda data: (set_in(["rows", 1, "grid", "retrain_epochs"], ["12.5%", "30%"])(data),
                                               data["training"].update(epochs=24),
                                               data["rows"][1].pop("constraint")))), "base")
    assert sorted({s.hp["retrain_epochs"] for s in t24.expand() if s.method == "imp"}) == [3, 7]  # 3.0, 7.2
    with pytest.raises(ConfigError, match=r"rows\[1\].grid.retrain_epochs\[0\]: expected epochs or a share"):
        load(str(write_manifest(set_in(["rows", 1, "grid", "retrain_epochs"], ["five"]))), "base")


def test_a_claim_is_judged_where_a_budget_share_or_any_other_value_says(write_manifest):
    def edit(data):
        data["claims"] = [{"text": "t", "better": "IMP", "worse": "Dense",
                           "where": {"retrain_epochs": "50%", "schedule": "slr"}}]
    claim = load(str(write_manifest(edit)), "base").claims[0]
    assert claim["where"] == {"retrain_epochs": 1, "schedule": "slr"}  # 50% of T = 2 is 1 epoch; strings stay
