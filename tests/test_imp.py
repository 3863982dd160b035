"""IMP's prune-retrain cycles share one optimizer, as the authors' runners do."""

import pytest
import torch
from torch import nn

from bench.train import Run, enter_phase

from conftest import make_method


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
