"""GSM and LC: the gradient edits that define them (ranking every parameter, as the
authors' code does, or the prunable weights only), LC's decay schedule and optimizer
groups, the exact final prune, and one real run each."""

import pytest
import torch
from torch import nn

from bench.train import make_optimizer
from methods import METHODS
from methods.core.masks import mask_of, prunable_modules

from conftest import assert_state_pruned_to, make_method

TRAINING = {"epochs": 2, "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.01}


def make(name, goal=0.5, hp=None, steps_per_epoch=10, model=None, **training):
    method = make_method(name, {"finetune_fraction": 0.5} | (hp or {}), goal, **TRAINING | training)
    if model is not None:
        method.setup(model, steps_per_epoch)
    method.enter(method.phases()[0])
    return method


def two_layers():
    """Linear(3, 2) with bias, then Linear(2, 1) without: 8 prunable weights."""
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]]))
        model[0].bias.copy_(torch.tensor([0.3, -0.3]))
        model[1].weight.copy_(torch.tensor([[-3.0, 0.1]]))
    return model


def set_grads(model, first, second, bias=(0.7, 0.7)):
    model[0].weight.grad = torch.tensor(first)
    model[0].bias.grad = torch.tensor(bias)
    model[1].weight.grad = torch.tensor(second)


def with_batchnorm():
    """Linear(2, 2) without bias (4 prunable weights 1, 2, 3, 4), then BatchNorm1d(2) with
    the large weights 10, 10 and biases 0.5, 0.5; every gradient 1."""
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model[1].weight.fill_(10.0)
        model[1].bias.fill_(0.5)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    return model


PRUNABLE = {"rank_over": "prunable"}  # the paper's reading


# --- GSM -------------------------------------------------------------------------------

def test_gsm_removes_the_gradient_outside_the_top_taylor_scores():
    model = two_layers()
    set_grads(model, [[0.5, 1.0, -0.1], [2.0, 0.1, 0.9]], [[0.2, 1.0]])
    # |w * g|: layer 0 [[0.5, 2.0, 0.3], [1.0, 0.4, 0.9]], layer 1 [[0.6, 0.1]].
    # s = 0.5 of n = 8 keeps the top 4 globally: 2.0, 1.0, 0.9 (layer 0) and 0.6 (layer 1).
    # (By magnitude alone the top 4 would be 4, 3, 3, 2: a different set.)
    make("gsm", goal=0.5, hp=PRUNABLE, model=model).after_backward(model)
    assert torch.equal(model[0].weight.grad, torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.9]]))
    assert torch.equal(model[1].weight.grad, torch.tensor([[0.2, 0.0]]))
    assert torch.equal(model[0].bias.grad, torch.tensor([0.7, 0.7]))  # biases untouched


def test_gsm_ranks_every_parameter_by_default_and_batchnorm_takes_the_places():
    # k = 4 - round(0.5 * 4) = 2. Scores |p * g| = |p|: weights 1, 2, 3, 4, BatchNorm
    # weights 10, 10, biases 0.5, 0.5. Over all eight the top 2 are the BatchNorm weights:
    # no prunable weight keeps its gradient, and 6 of 8 gradients are removed.
    model = with_batchnorm()
    make("gsm", goal=0.5, model=model).after_backward(model)
    assert torch.equal(model[0].weight.grad, torch.zeros(2, 2))
    assert torch.equal(model[1].weight.grad, torch.ones(2))
    assert torch.equal(model[1].bias.grad, torch.zeros(2))
    # Over the prunable weights only, 3 and 4 keep theirs and BatchNorm is untouched: 2 removed.
    model = with_batchnorm()
    make("gsm", goal=0.5, hp=PRUNABLE, model=model).after_backward(model)
    assert torch.equal(model[0].weight.grad, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    assert torch.equal(model[1].weight.grad, torch.ones(2)) and torch.equal(model[1].bias.grad, torch.ones(2))


def test_gsm_lets_momentum_and_weight_decay_drive_the_others_to_zero():
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0, 0.5, 0.5]]))
    x = torch.tensor([1.0, 1.0, 1e-3, 1e-3])
    method = make("gsm", goal=0.5, model=model)
    optimizer = make_optimizer(method, model)
    # The loss -w.x has gradient -x: scores |w * x| = [1, 1, 5e-4, 5e-4] keep the first two
    # (which grow, so stay on top). The last two get no gradient, only SGD's weight decay
    # and momentum: buf <- 0.9 buf + 0.01 w, w <- w - 0.1 buf, from w = 0.5, buf = 0
    # (lr * lambda = 0.001 is small enough for the decay to be monotone).
    w, buf = 0.5, 0.0
    for _ in range(300):
        optimizer.zero_grad()
        (-(model.weight[0] * x).sum()).backward()
        method.after_backward(model)
        assert model.weight.grad[0, 2:].eq(0).all()
        optimizer.step()
        method.after_step(model, optimizer)
        buf = 0.9 * buf + 0.01 * w
        previous, w = w, w - 0.1 * buf
        assert 0 < w < previous
        assert model.weight[0, 2:].tolist() == pytest.approx([w, w], rel=1e-4)
    assert w < 0.02  # 0.0197 after 300 steps, from 0.5
    assert (model.weight[0, :2] > 1).all()  # the kept weights follow their gradient


def test_gsm_leaves_fine_tuning_alone():
    model = two_layers()
    method = make("gsm", model=model)
    method.enter(method.phases()[1])
    set_grads(model, [[0.5, 1.0, -0.1], [2.0, 0.1, 0.9]], [[0.2, 1.0]])
    method.after_backward(model)
    assert torch.equal(model[1].weight.grad, torch.tensor([[0.2, 1.0]]))
    assert not METHODS["gsm"].retraining_is_timed


# --- LC --------------------------------------------------------------------------------

GROWING = {"decay_growth": 1.1}  # appendix A.2.1's lambda_0 * 1.1^j


def test_lc_decay_is_constant_by_default():
    method = make("lc", model=nn.Linear(2, 2), steps_per_epoch=10)  # the authors' code
    assert [method.decay(t) for t in range(20)] == [0.01] * 20


def test_lc_decay_grows_by_stages_of_regular_training():
    # 2 epochs of 10 iterations = 20; decay_steps = 4 gives stages of 5 iterations with
    # lambda_j = 0.01 * 1.1^j: 0.01, 0.011, 0.0121, 0.01331.
    method = make("lc", hp=GROWING | {"decay_steps": 4}, model=nn.Linear(2, 2), steps_per_epoch=10)
    expected = [0.01] * 5 + [0.011] * 5 + [0.0121] * 5 + [0.01331] * 5
    assert [method.decay(t) for t in range(20)] == pytest.approx(expected)
    # 20 stages (the default) with growth 1.1 end at 1.1^19 = 6.1159 times lambda_0.
    method = make("lc", hp=GROWING, model=nn.Linear(2, 2), steps_per_epoch=10)
    assert method.decay(19) == pytest.approx(0.01 * 6.115909, rel=1e-6)
    assert method.decay(0) == 0.01


def test_lc_decays_exactly_the_weights_outside_the_top_k_by_magnitude():
    model = two_layers()
    method = make("lc", goal=0.5, hp=PRUNABLE | GROWING | {"decay_steps": 4}, model=model, steps_per_epoch=10)
    # |w|: layer 0 [[1, 2, 3], [0.5, 4, 1]], layer 1 [[3, 0.1]]; k = 8 - round(0.5 * 8) = 4
    # keeps 4, 3, 3, 2. Decayed: w = 1, 0.5, -1 (layer 0) and 0.1 (layer 1), with
    # lambda_0 = 0.01 at iteration 0: grad 0.1 + 0.01 w = 0.11, 0.105, 0.09, 0.101.
    set_grads(model, [[0.1] * 3] * 2, [[0.1, 0.1]])
    method.after_backward(model)
    assert torch.allclose(model[0].weight.grad, torch.tensor([[0.11, 0.1, 0.1], [0.105, 0.1, 0.09]]))
    assert torch.allclose(model[1].weight.grad, torch.tensor([[0.1, 0.101]]))
    assert torch.equal(model[0].bias.grad, torch.tensor([0.7, 0.7]))  # the optimizer decays biases
    # Four more iterations stay in stage 0; the sixth (iteration 5) uses 0.01 * 1.1 = 0.011:
    # grads zero, so the decayed ones become 0.011 w = 0.011, 0.0055, -0.011, 0.0011.
    for _ in range(5):
        set_grads(model, [[0.0] * 3] * 2, [[0.0, 0.0]])
        method.after_backward(model)
    assert torch.allclose(model[0].weight.grad, torch.tensor([[0.011, 0, 0], [0.0055, 0, -0.011]]))
    assert torch.allclose(model[1].weight.grad, torch.tensor([[0, 0.0011]]))


def test_lc_ranks_every_parameter_by_default_and_batchnorm_takes_the_places():
    # k = 2 by |p|: the BatchNorm weights 10, 10 escape the decay; the four prunable weights
    # and the two biases get 0.01 p: 0.01, 0.02, 0.03, 0.04 and 0.005 (gradient 1 before).
    model = with_batchnorm()
    make("lc", goal=0.5, model=model).after_backward(model)
    assert torch.allclose(model[0].weight.grad, torch.tensor([[1.01, 1.02], [1.03, 1.04]]))
    assert torch.equal(model[1].weight.grad, torch.ones(2))
    assert torch.allclose(model[1].bias.grad, torch.full((2,), 1.005))
    # Over the prunable weights only: 1 and 2 are decayed; BatchNorm is left to the optimizer.
    model = with_batchnorm()
    make("lc", goal=0.5, hp=PRUNABLE, model=model).after_backward(model)
    assert torch.allclose(model[0].weight.grad, torch.tensor([[1.01, 1.02], [1.0, 1.0]]))
    assert torch.equal(model[1].weight.grad, torch.ones(2)) and torch.equal(model[1].bias.grad, torch.ones(2))


def decay_of(optimizer):
    return {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}


def test_lc_optimizer_groups_and_the_weight_decay_of_fine_tuning():
    model = two_layers()
    method = make("lc", hp=PRUNABLE, model=model)
    regular = decay_of(make_optimizer(method, model))
    assert regular == {id(model[0].weight): 0.0, id(model[1].weight): 0.0, id(model[0].bias): 0.01}
    method.enter(method.phases()[1])
    assert decay_of(make_optimizer(method, model)) == {id(p): 0.01 for p in model.parameters()}  # the authors' code
    paper = make("lc", hp={**PRUNABLE, "finetune_decay": "none"}, model=model)
    paper.enter(paper.phases()[1])
    finetune = decay_of(make_optimizer(paper, model))
    assert finetune == {id(p): 0.0 for p in model.parameters()}  # appendix A.2.1
    set_grads(model, [[0.1] * 3] * 2, [[0.1, 0.1]])
    paper.after_backward(model)
    assert torch.equal(model[1].weight.grad, torch.tensor([[0.1, 0.1]]))
    assert METHODS["lc"].retraining_is_timed and paper.phases()[1].timed


def test_lc_ranking_every_parameter_leaves_the_optimizer_no_decay():
    model = two_layers()
    method = make("lc", model=model)  # after_backward decays them all, the top k excepted
    assert decay_of(make_optimizer(method, model)) == {id(p): 0.0 for p in model.parameters()}


# --- both ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gsm", "lc"])
@pytest.mark.parametrize("goal", [0.5, 0.9])
def test_final_prune_hits_the_goal_exactly(name, goal):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Flatten(), nn.Linear(4 * 5, 3))
    method = make(name, goal=goal, model=model)
    finetune = method.phases()[1]
    assert finetune.prunes and finetune.sparsity == goal
    magnitudes = torch.cat([m.weight.detach().abs().flatten() for m in prunable_modules(model)])
    method.prune(model, finetune.sparsity)
    n = magnitudes.numel()  # 24 + 60 = 84
    masks = [mask_of(m) for m in prunable_modules(model)]
    assert sum(int((~mask).sum()) for mask in masks) == round(goal * n)
    for module, mask in zip(prunable_modules(model), masks):
        assert not module.weight[~mask].any()
    kept = torch.cat([m.weight.detach().abs().flatten() for m in prunable_modules(model)])
    assert kept[kept > 0].min() >= magnitudes.sort().values[round(goal * n) - 1]  # by magnitude


@pytest.mark.parametrize("name", ["gsm", "lc"])
def test_trains_and_ends_at_the_goal(train_tiny, name):
    result = train_tiny(name, {"finetune_fraction": 0.5}, goal=0.9, epochs=2)
    record = result.record
    assert [h["phase"] for h in result.history] == ["train", "train", "finetune"]
    assert_state_pruned_to(result, 0.9)
    assert record["test_accuracy"] > 0.3
    seconds = [h["seconds"] for h in result.history]
    assert (seconds[2] > seconds[1]) == (name == "lc")  # LC's retraining is timed
