"""Run identity: independent of key order and labels, stable when None defaults are added,
different whenever anything that changes the numbers changes."""

import dataclasses

from bench.runspec import RunSpec

TRAINING = {"model": "resnet1d", "dataset": "mnist1d", "epochs": 30, "batch_size": 128, "lr": 0.1,
            "momentum": 0.9, "weight_decay": 5e-4, "lr_schedule": {"kind": "stepped", "milestones": [14, 27]}}


def spec(**changes):
    base = RunSpec("imp", 0, TRAINING, {"cycles": 2, "retrain_epochs": 3, "schedule": "slr"}, 0.9,
                   RunSpec("dense", 0, TRAINING), "IMP")
    return dataclasses.replace(base, **changes)


def test_run_id_is_short_hex_and_deterministic():
    assert spec().run_id == spec().run_id
    assert len(spec().run_id) == 16 and int(spec().run_id, 16) >= 0


def test_run_id_ignores_key_order_and_label():
    reordered = dict(reversed(list(TRAINING.items())))
    assert spec(training=reordered).run_id == spec().run_id
    assert spec(hp={"schedule": "slr", "retrain_epochs": 3, "cycles": 2}).run_id == spec().run_id
    assert spec(label="IMP+").run_id == spec().run_id


def test_run_id_stable_when_a_none_default_is_added():
    assert spec(training={**TRAINING, "label_smoothing": None}).run_id == spec().run_id
    assert spec(hp={"cycles": 2, "retrain_epochs": 3, "schedule": "slr", "new_knob": None}).run_id == spec().run_id


def test_run_id_changes_with_everything_that_changes_the_numbers():
    ids = {
        spec().run_id,
        spec(seed=1).run_id,
        spec(goal_sparsity=0.95).run_id,
        spec(hp={"cycles": 3, "retrain_epochs": 3, "schedule": "slr"}).run_id,
        spec(training={**TRAINING, "lr": 0.2}).run_id,
        spec(training={**TRAINING, "lr_schedule": {"kind": "stepped", "milestones": [15, 27]}}).run_id,
        spec(method="dense").run_id,
        spec(parent=RunSpec("dense", 0, {**TRAINING, "weight_decay": 1e-4})).run_id,
        spec(revision=1).run_id,
    }
    assert len(ids) == 9


def test_revision_zero_keeps_the_ids_of_runs_made_before_revisions_existed():
    assert "revision" not in spec().identity() and spec(revision=0).run_id == spec().run_id


def test_parent_and_hp_columns():
    run = spec()
    assert run.stage == 1 and run.parent.stage == 0
    assert run.to_json()["parent"]["run_id"] == run.parent.run_id
    assert run.hp_columns() == {"hp_lr": 0.1, "hp_weight_decay": 5e-4, "hp_momentum": 0.9, "hp_cycles": 2,
                                "hp_retrain_epochs": 3, "hp_schedule": "slr"}
