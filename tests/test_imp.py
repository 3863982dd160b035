"""IMP: its cycles share one optimizer, as the authors' runners do; the tuned schedules' keys;
AccALLR's train accuracy, measured by the loop around the pruning step and timed as training."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from bench.train import Run, enter_phase
from methods import METHODS
from methods.core.masks import PruneEvent
from schema import ConfigError

from conftest import assert_state_pruned_to, make_method


class OneBatch:
    """Stands in for a dataset: every evaluation sees the same batch."""

    def eval_batches(self, split, batch_size, device):
        return [(torch.ones(1, 4), torch.zeros(1, dtype=torch.long))]


def test_momentum_carries_from_one_cycle_into_the_next():
    # Weights 0.1, 0.2, 3, 4; goal 0.75 in J = 2 cycles: 2 pruned, then 3. SGD with lr 0.1,
    # momentum 0.9 and no weight decay, every gradient 1.
    method = make_method("imp", {"cycles": 2, "retrain_epochs": 1}, 0.75, lr=0.1, momentum=0.9, weight_decay=0.0)
    model = nn.Sequential(nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, 0.2, 3.0, 4.0]]))
    method.setup(model, steps_per_epoch=1)
    run = Run(None, OneBatch(), torch.device("cpu"), method, model, None, None)
    first, second = method.phases()
    assert not first.keeps_optimizer and second.keeps_optimizer

    def step():
        model[0].weight.grad = torch.ones(1, 4)
        run.optimizer.step()
        method.after_step(model, run.optimizer)

    enter_phase(run, first, log=lambda line: None)
    step()  # buf = g = 1 on the kept 3 and 4, which become 2.9 and 3.9
    optimizer = run.optimizer
    enter_phase(run, second, log=lambda line: None)  # prunes 2.9
    assert run.optimizer is optimizer
    step()  # buf = 0.9 * 1 + 1 = 1.9: 3.9 - 0.1 * 1.9 = 3.71 (a fresh optimizer: 3.8)
    assert model[0].weight[0].tolist() == pytest.approx([0.0, 0.0, 0.0, 3.71])
    buffer = optimizer.state[model[0].weight]["momentum_buffer"]
    assert buffer[0].tolist() == pytest.approx([0.0, 0.0, 0.0, 1.9])


@pytest.mark.parametrize("hp, key", [
    ({"schedule": "cosine"}, "initial_lr"),
    ({"schedule": "stepped", "initial_lr": 0.05}, "warmup"),
    ({"schedule": "slr", "initial_lr": 0.05}, "initial_lr"),
    ({"schedule": "allr", "warmup": 0.1}, "warmup"),
    ({"schedule": "llr", "discount": "d1"}, "discount"),
    ({"schedule": "accallr", "discount": "d2"}, "discount"),
])
def test_tuned_schedules_need_initial_lr_and_warmup_and_fixed_ones_refuse_them(hp, key):
    method = make_method("imp", {"retrain_epochs": 1, **hp})
    with pytest.raises(ConfigError) as error:
        method.phases()
    assert error.value.key == key


def test_new_keys_default_to_none_so_run_ids_stay():
    hp = METHODS["imp"].resolve({"retrain_epochs": 1})
    assert (hp["initial_lr"], hp["warmup"], hp["discount"]) == (None, None, None)


@pytest.mark.parametrize("warmup, lrs", [
    # n = 10 iterations per cycle (T_rt = 2, 5 per epoch), initial value 0.05. Warm-up 10%: W = 1, R = 9; cycle 1
    # ends at k = 9, j = 8: 0.05 (1 + cos(8 pi / 9)) / 2 = 0.0015077; cycle 2 restarts at 0 and peaks at k = 1.
    (0.1, [0.0015076844, 0.0, 0.05]),
    # No warm-up: R = 10; cycle 1 ends at j = 9: 0.05 (1 + cos(9 pi / 10)) / 2 = 0.0012236; cycle 2 restarts at 0.05.
    (0.0, [0.0012235870, 0.05, 0.05 * (1 + math.cos(math.pi / 10)) / 2]),
])
def test_every_cycle_of_a_tuned_schedule_starts_from_the_same_initial_value(warmup, lrs):
    method = make_method("imp", {"cycles": 2, "retrain_epochs": 2, "schedule": "cosine", "initial_lr": 0.05,
                                 "warmup": warmup}, 0.9, epochs=20)
    method.setup(None, steps_per_epoch=5)
    event = PruneEvent(0.5, 0.5, relative_change=0.0)
    first, second = (phase.schedule(event) for phase in method.phases())
    assert [first(9 / 5), second(0), second(1 / 5)] == pytest.approx(lrs, abs=1e-9)


class TrainSplit(OneBatch):
    """Four training examples x -> label: (1, 0) -> 0, (0, 1) -> 1, (-1, -4) -> 1, (1, 0) -> 1. Every
    evaluation pass over any split sees them and advances the ``clock`` by one second."""

    def __init__(self):
        self.clock, self.passes = 0.0, []

    def eval_batches(self, split, batch_size, device):
        self.clock += 1.0
        self.passes.append(split)
        inputs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -4.0], [1.0, 0.0]])
        return [(inputs, torch.tensor([0, 1, 1, 1]))]


def linear_with_known_train_accuracy():
    """Linear(2, 2): weights (3, 0.5; 0.4, 1), bias (0, 0.1). Dense, the outputs are (3, 0.5), (0.5, 1.1),
    (-5, -4.3), (3, 0.5): classes 0, 1, 1, 0, so 3 of 4 right. Pruned to 50% (0.4 and 0.5 go): (3, 0.1),
    (0, 1.1), (-3, -3.9), (3, 0.1): classes 0, 1, 0, 0, so 2 of 4. Pruned to 75% (1 goes too): (3, 0.1),
    (0, 0.1), (-3, 0.1), (3, 0.1): classes 0, 1, 1, 0, 3 of 4 again (the model before this step had 2 of 4)."""
    model = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[3.0, 0.5], [0.4, 1.0]]))
        model[0].bias.copy_(torch.tensor([0.0, 0.1]))
    return model


def accallr_run(monkeypatch, cycles):
    """IMP with AccALLR on that model: goal 0.75 in J cycles, T_rt = 1 of T = 10, eta_1 = 0.1 constant, one
    iteration per epoch (n = 1: no warm-up, the cycle's only LR is its peak d eta_1); the loop's clock is the
    data's."""
    data = TrainSplit()
    monkeypatch.setattr("bench.train.time", SimpleNamespace(perf_counter=lambda: data.clock))
    method = make_method("imp", {"cycles": cycles, "retrain_epochs": 1, "schedule": "accallr"}, 0.75, lr=0.1,
                         epochs=10, lr_schedule={})
    model = linear_with_known_train_accuracy()
    method.setup(model, steps_per_epoch=1)
    return Run(None, data, torch.device("cpu"), method, model, None, None), data


def test_accallr_discounts_by_the_drop_in_train_accuracy_from_the_dense_model_and_times_its_passes(monkeypatch):
    # Two cycles: 50%, then 75%. Cycle 1: train accuracy 3/4 dense, 2/4 pruned: d1 = (0.75 - 0.5) / 0.75 = 1/3 > d2,
    # the LR 0.1 / 3. Cycle 2 keeps the dense 3/4 (not the 2/4 before its step): 3/4 pruned, d1 = 0, LR 0.01.
    run, data = accallr_run(monkeypatch, cycles=2)
    first, second = run.method.phases()
    assert first.measures_train_accuracy and second.measures_train_accuracy
    enter_phase(run, first, log=lambda line: None)
    assert (run.progress.event.dense_train_accuracy, run.progress.event.train_accuracy) == (0.75, 0.5)
    assert run.schedule(0) == pytest.approx(0.1 / 3)
    # Test before, train dense, train pruned, test and val after: only the two train passes are training time.
    assert data.passes == ["test", "train", "train", "test", "val"]
    assert run.progress.train_seconds == 2.0
    enter_phase(run, second, log=lambda line: None)
    assert (run.progress.event.dense_train_accuracy, run.progress.event.train_accuracy) == (0.75, 0.75)
    assert run.schedule(0) == pytest.approx(0.01)
    assert data.passes[5:] == ["test", "train", "test", "val"] and run.progress.train_seconds == 3.0


def test_other_schedules_make_no_train_pass(monkeypatch):
    run, data = accallr_run(monkeypatch, cycles=1)
    run.method.hp["schedule"] = "allr"
    enter_phase(run, run.method.phases()[0], log=lambda line: None)
    assert data.passes == ["test", "test", "val"] and run.progress.train_seconds == 0.0
    assert run.progress.event.train_accuracy is None


def test_accallr_imp_trains_through_the_loop(train_tiny):
    accallr = train_tiny("imp", {"cycles": 2, "retrain_epochs": 1, "schedule": "accallr"}, goal=0.9)
    assert_state_pruned_to(accallr, 0.9)


@pytest.mark.parametrize("goal, cycles", [(0.9, 11), (0.95, 14), (0.98, 18), (0.36, 2)])
def test_renda_prunes_a_fifth_of_the_remaining_weights_per_cycle_until_the_goal(goal, cycles):
    # 0.8^10 = 0.107 > 0.1, 0.8^11 = 0.086: 11 cycles to 90%; 0.8^13 = 0.055, 0.8^14 = 0.044;
    # 0.8^17 = 0.0225, 0.8^18 = 0.018; 0.8^2 = 0.64 exactly: 2 cycles to 36%.
    method = make_method("imp", {"prune_fraction": 0.2, "retrain_epochs": 2, "schedule": "lrw"}, goal)
    method.steps_per_epoch = 1
    phases = method.phases()
    assert len(phases) == cycles
    assert phases[0].sparsity == pytest.approx(0.2)
    assert phases[1].sparsity == pytest.approx(min(goal, 0.36))
    assert phases[-1].sparsity == goal
    with pytest.raises(ConfigError, match="cycles follow from prune_fraction") as error:
        make_method("imp", {"prune_fraction": 0.2, "cycles": 3, "retrain_epochs": 2}, goal).phases()
    assert error.value.key == "cycles"
