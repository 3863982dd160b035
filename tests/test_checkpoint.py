"""Epoch checkpoints: a run interrupted anywhere resumes to the record and weights it would
have had; a checkpoint of another run, or one that does not read, is passed over."""

import io
import math

import pytest
import torch
from torch import nn

from bench.train import CHECKPOINT_SECONDS, Parent, build_run, cached_dataset, enter_phase, train_epoch, train_run
from methods import METHODS

from conftest import tiny_spec


class Interrupt(Exception):
    pass


@pytest.fixture(autouse=True)
def every_epoch(monkeypatch):
    """Checkpoints after every epoch: these runs' epochs take milliseconds, not the default 60 s."""
    monkeypatch.setenv(CHECKPOINT_SECONDS, "0")


def interrupt_after(lines: int):
    """A log callback that stops the run at its ``lines``-th log line (an epoch or a prune)."""
    seen = []

    def log(line):
        seen.append(line)
        if len(seen) == lines:
            raise Interrupt(line)
    return log


def quiet(line):
    pass


TIMING = {"train_seconds", "own_train_seconds", "run_seconds", "images_per_second", "ram_bytes",
          "inference_images_per_second", "shrunk_train_step_speedup", "shrunk_inference_speedup",
          "train_time_reduction"}


def assert_same_run(resumed, reference):
    """Equal records but for timing (NaN equal to NaN), equal weights, equal history."""
    assert resumed.record.keys() == reference.record.keys()
    for key in resumed.record.keys() - TIMING:
        a, b = resumed.record[key], reference.record[key]
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), key
    assert resumed.state_dict.keys() == reference.state_dict.keys()
    for key, value in reference.state_dict.items():
        assert torch.equal(resumed.state_dict[key], value), key
    assert [h["val_accuracy"] for h in resumed.history] == [h["val_accuracy"] for h in reference.history]


# Stops count the log lines of each attempt, its "resumed from" included. With 3 epochs of
# regular training, a pruning-stable method logs its prune at line 4 and fine-tunes for
# round(0.5 * 3) = 2 epochs (lines 5, 6): a first stop at line 6 resumes inside FT.
RESUMED = [
    ("dense", {}, [2]),
    ("imp", {"cycles": 2, "retrain_epochs": 1}, [3]),            # after cycle 1, before the second prune
    ("bimp", {"initial_epochs": 1, "cycles": 2}, [2, 4]),        # right after a prune, then in the next cycle
    ("gmp", {"steps": 4, "finetune_fraction": 0.5}, [2, 6]),     # its schedule position, then inside FT
    ("dpf", {"steps": 4, "mask_interval": 5, "finetune_fraction": 0.5}, [3]),
    ("dnw", {"finetune_fraction": 0.5}, [6]),
    ("gsm", {"finetune_fraction": 0.5}, [2]),
    ("lc", {"decay_steps": 4, "finetune_fraction": 0.5}, [3, 5]),  # its decay stage, then FT's optimizer groups
    ("str", {"s_init": -3.0, "finetune_fraction": 0.5}, [2, 6]),  # thresholds, then after the final prune
    ("cs", {"finetune_fraction": 0.5}, [3]),                      # its temperature
    ("dst", {"finetune_fraction": 0.5}, [6]),                     # after the final prune
    ("hoyer-square", {"hoyer_reg": 1e-3, "finetune_fraction": 0.5}, [2, 3]),  # at its threshold, then in FT
    ("rewinding", {"technique": "lrr", "retrain_epochs": 1, "prune_fraction": 0.5, "mask_dynamics": True}, [3, 6]),
    ("rewinding-filters", {"technique": "reinit", "retrain_epochs": 1, "filter_rates": "resnet1d-b"}, [4]),
    ("snip", {"score_batches": 1}, [3]),                          # after the prune at epoch 0 and an epoch
    ("snip-it", {"timing": "during", "steps": 0, "prune_delay": 0, "prune_interval": 1, "score_batches": 1},
     [3]),                                                        # between its steps after epochs 1 and 2
    ("grasp", {"score_batches": 1}, [3]),
    ("imp-global", {"steps": 0, "prune_delay": 0, "prune_interval": 1, "rewind_epoch": 0},
     [2]),                                                        # its kept weights, between its two steps
    ("random-init", {}, [3]),
    ("snap-it", {"score_batches": 1}, [3]),
    ("structured-random", {}, [3]),
    ("efficient-convnets", {"finetune_epochs": 1}, [2]),       # trained, its prune the first thing resumed
    ("group-hs", {"hoyer_reg": 1e-3, "finetune_fraction": 0.5}, [2, 3]),  # at its threshold, then in FT
    ("gate-decorators", {"tick_tock_epochs": 4, "step": 89, "tick_epochs": 1, "tock_epochs": 1, "score_batches": 1},
     [3, 5]),                                                     # in its tock, then as its fine-tuning starts
    ("l0", {"l0_reg": 1.0}, [2, 3]),                              # its gates and parameters' average, twice
]


TRAINS_NOTHING = {"elasticity"}  # a probe: no epoch, so no checkpoint


def test_every_method_is_resumed():
    assert {method for method, _, _ in RESUMED} == set(METHODS) - TRAINS_NOTHING


@pytest.fixture(scope="module")
def dense_parent(small_data_root):
    """The parent of the methods that prune after training: a dense run of one epoch."""
    dense = train_run(tiny_spec("dense", epochs=1), small_data_root, log=quiet)
    return Parent(dense.state_dict, dense.record, dense.stored)


@pytest.mark.parametrize("method, hp, stops", RESUMED)
def test_interrupted_runs_resume_to_the_same_record(small_data_root, tmp_path, method, hp, stops, request):
    spec = tiny_spec(method, hp, goal=0.9, epochs=3)
    parent = request.getfixturevalue("dense_parent") if METHODS[method].prunes_after_training else None
    reference = train_run(spec, small_data_root, parent, log=quiet)
    checkpoint = tmp_path / "run.pt"
    for stop in stops:
        with pytest.raises(Interrupt):
            train_run(spec, small_data_root, parent, log=interrupt_after(stop), checkpoint=checkpoint)
        assert torch.load(checkpoint, weights_only=True)["run_id"] == spec.run_id
    lines = []
    resumed = train_run(spec, small_data_root, parent, log=lines.append, checkpoint=checkpoint)
    assert any(line.startswith("resumed from") for line in lines)
    assert_same_run(resumed, reference)


def test_a_checkpoint_waits_until_its_seconds_have_passed(small_data_root, tmp_path, monkeypatch):
    spec, checkpoint = tiny_spec("dense", epochs=3), tmp_path / "run.pt"
    monkeypatch.setenv(CHECKPOINT_SECONDS, "60")  # the default
    with pytest.raises(Interrupt):
        train_run(spec, small_data_root, log=interrupt_after(2), checkpoint=checkpoint)
    assert not checkpoint.exists(), "a checkpoint written after 2 epochs of milliseconds"
    monkeypatch.delenv(CHECKPOINT_SECONDS)
    with pytest.raises(Interrupt):
        train_run(spec, small_data_root, log=interrupt_after(2), checkpoint=checkpoint)
    assert not checkpoint.exists()
    monkeypatch.setenv(CHECKPOINT_SECONDS, "0.0")
    with pytest.raises(Interrupt):
        train_run(spec, small_data_root, log=interrupt_after(2), checkpoint=checkpoint)
    assert torch.load(checkpoint, weights_only=True)["progress"]["epochs_done"] == 1


def old_format(path, data_root):
    torch.save({"model": nn.Linear(2, 2)}, path)  # a pickled module, as checkpoints once were


def truncated(path, data_root):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def foreign(path, data_root):
    path.unlink()  # replaced by a checkpoint of the same configuration but for its seed
    with pytest.raises(Interrupt):
        train_run(tiny_spec("dense", epochs=2, seed=1), data_root, log=interrupt_after(2), checkpoint=path)


@pytest.mark.parametrize("spoil, says", [(truncated, "does not read"), (old_format, "does not read"),
                                         (foreign, "is not of run")])
def test_a_foreign_or_broken_checkpoint_restarts_the_run(small_data_root, tmp_path, spoil, says):
    spec = tiny_spec("dense", epochs=2)
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        train_run(spec, small_data_root, log=interrupt_after(2), checkpoint=checkpoint)
    spoil(checkpoint, small_data_root)
    lines = []
    restarted = train_run(spec, small_data_root, log=lines.append, checkpoint=checkpoint)
    assert any(says in line and "starting afresh" in line for line in lines), lines
    assert not any(line.startswith("resumed from") for line in lines)
    assert_same_run(restarted, train_run(spec, small_data_root, log=quiet))


def equal(a, b) -> bool:
    """Equal plain values or tensors, also inside dicts and lists."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(equal, a, b))
    return a == b


@pytest.mark.parametrize("method, hp", [(method, hp) for method, hp, _ in RESUMED])
def test_what_a_method_changes_while_training_is_in_its_state(small_data_root, method, hp):
    """Every attribute a method changes in its first epoch is in its state_dict, which holds
    tensors and plain values only."""
    spec = tiny_spec(method, hp, goal=0.9, epochs=3)
    run = build_run(spec, cached_dataset("mnist1d", str(small_data_root), 0.1, 0), torch.device("cpu"))
    enter_phase(run, run.method.phases()[0], quiet)
    before = dict(vars(run.method))
    train_epoch(run, 0)
    changed = {key for key, value in vars(run.method).items() if key not in before or not equal(before[key], value)}
    state = run.method.state_dict()
    assert changed <= set(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    assert equal(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True), state)


def test_the_accuracy_before_a_prune_is_the_last_phase_ends_and_measured_only_when_there_is_none(
        small_data_root, dense_parent, monkeypatch):
    """IMP, two cycles of one epoch: the second prune's accuracy before is the first cycle's
    end, as measured there; only the first prune (no phase of this run before it) measures."""
    import bench.train as train

    spec = tiny_spec("imp", {"cycles": 2, "retrain_epochs": 1}, goal=0.9, epochs=3)
    splits = []
    measured = train.evaluate

    def counting(method, model, data, split, device):
        splits.append(split)
        return measured(method, model, data, split, device)
    monkeypatch.setattr(train, "evaluate", counting)
    reused = train_run(spec, small_data_root, dense_parent, log=quiet)
    # per cycle: (before), after (test, val), the epoch's val, the phase end's test
    assert splits == ["test", "test", "val", "val", "test", "test", "val", "val", "test"]
    ends = [row["test_accuracy"] for row in reused.history if "test_accuracy" in row]
    assert reused.record["accuracy_before_prune"] == ends[0]

    monkeypatch.setattr(train, "accuracy_so_far",
                        lambda run: measured(run.method, run.model, run.data, "test", run.device))
    assert_same_run(reused, train_run(spec, small_data_root, dense_parent, log=quiet))
