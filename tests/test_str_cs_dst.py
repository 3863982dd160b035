"""STR, CS and DST: the methods that learn their sparsity through extra tensors on each layer."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.train import make_optimizer, train_step
from methods.pruning_stable.dst import BinaryStep
from methods.core.masks import mask_of, prunable_modules
from methods.pruning_stable.soft_threshold import soft_threshold

from conftest import make_method

TRAINING = {"epochs": 2, "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4}
EXTRA = {"str": "weight_threshold", "cs": "weight_mask_logits", "dst": "weight_threshold"}


def make(name, steps_per_epoch=10, model=None, **hp):
    method = make_method(name, hp, None, **TRAINING)
    model = model or nn.Sequential(nn.Linear(3, 1, bias=False))
    method.setup(model, steps_per_epoch)
    method.enter(method.phases()[0])
    return method, model


def set_weight(module, values):
    with torch.no_grad():
        module.weight.copy_(torch.as_tensor(values))


def sum_of_outputs(method, model, inputs):
    """Backward of the sum of the outputs: each effective weight gets gradient (its input)."""
    method.forward(model, inputs).sum().backward()


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6, 3))


def train_steps(method, model, n=3):
    optimizer = torch.optim.SGD(method.optimizer_groups(model), lr=0.1, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(1)
    for _ in range(n):
        inputs, targets = torch.randn(8, 2, 8, generator=generator), torch.randint(0, 3, (8,), generator=generator)
        loss = F.cross_entropy(method.forward(model, inputs), targets)
        penalty = method.regularizer(model)
        if penalty is not None:
            loss = loss + penalty
        optimizer.zero_grad()
        loss.backward()
        method.after_backward(model)
        optimizer.step()
        method.after_step(model, optimizer)


def decay_of(method, model, parameter):
    """The weight decay the optimizer applies to ``parameter`` (training's unless a group overrides)."""
    group = next(g for g in method.optimizer_groups(model) if any(p is parameter for p in g["params"]))
    return group.get("weight_decay", TRAINING["weight_decay"])


# STR

def test_str_soft_threshold_on_hand_values():
    # sigmoid(0) = 0.5: 0.3 and -0.05 fall below it, -2 -> -(2 - 0.5) = -1.5.
    out = soft_threshold(torch.tensor([0.3, -0.05, -2.0]), torch.tensor(0.0))
    assert out.tolist() == pytest.approx([0.0, 0.0, -1.5])


def test_str_threshold_is_learned_and_decayed():
    method, model = make("str", s_init=0.0)
    layer = model[0]
    set_weight(layer, [[0.3, -0.05, -2.0]])
    assert layer.weight_threshold.item() == 0.0 and method.goal_sparsity is None
    sum_of_outputs(method, model, torch.ones(1, 3))
    # out = sign(w3) (|w3| - sigmoid(s)) = -1.5; d out / ds = -sign(-2) sigmoid'(0) = 0.25.
    assert layer.weight_threshold.grad.item() == pytest.approx(0.25)
    assert layer.weight.grad.tolist() == [[0.0, 0.0, 1.0]]  # only the weight above the threshold
    assert decay_of(method, model, layer.weight_threshold) == TRAINING["weight_decay"]


def test_str_prunes_to_its_learned_mask():
    method, model = make("str", s_init=0.0)
    layer = model[0]
    set_weight(layer, [[0.3, -0.05, -2.0]])
    event = method.prune(model, None)
    assert mask_of(layer).tolist() == [[False, False, True]]
    assert layer.weight.tolist() == [[0.0, 0.0, -1.5]]  # the reparametrised values
    assert event.sparsity == pytest.approx(2 / 3) and event.fraction == pytest.approx(2 / 3)
    assert not hasattr(layer, "weight_threshold")


# CS

def test_cs_temperature_rises_geometrically_per_iteration():
    method, model = make("cs", steps_per_epoch=10)  # N = 2 epochs * 10 = 20 iterations
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    betas = []
    for _ in range(21):
        betas.append(method.beta)
        method.after_step(model, optimizer)
    # beta = 300^(i / 20): 1, 300^(1/4) = 4.16179, 300^(1/2) = 17.32051, 300^(3/4) = 72.08434, 300.
    assert [betas[i] for i in (0, 5, 10, 15, 20)] == pytest.approx([1.0, 4.16179, 17.32051, 72.08434, 300.0])
    method.enter(method.phases()[1])
    method.after_step(model, optimizer)
    assert method.iteration == 21  # fine-tuning does not move the temperature


def test_cs_starts_from_the_plain_weights_and_penalises_soft_masks():
    method, model = make("cs", s_init=-0.2, penalty=1e-2)
    layer = model[0]
    assert torch.equal(layer.weight_mask_logits, torch.full((1, 3), -0.2))
    # beta = 1: w * sigmoid(-0.2) / sigmoid(-0.2) = w.
    assert torch.allclose(method.effective_weight(layer), layer.weight)
    inputs = torch.randn(4, 3)
    assert torch.allclose(method.forward(model, inputs), model(inputs))
    # 1e-2 * 3 * sigmoid(-0.2) = 1e-2 * 3 * 0.450166, and 0.5 * 5e-4 * ||w||^2 with w = (1, -2, 2).
    set_weight(layer, [[1.0, -2.0, 2.0]])
    assert method.regularizer(model).item() == pytest.approx(1e-2 * 3 * 0.450166 + 0.5 * 5e-4 * 9, rel=1e-5)
    assert decay_of(method, model, layer.weight_mask_logits) == TRAINING["weight_decay"]  # Back to Basics' code
    assert decay_of(method, model, layer.weight) == TRAINING["weight_decay"]


def test_cs_final_mask_keeps_positive_logits():
    method, model = make("cs", s_init=0.0)
    layer = model[0]
    set_weight(layer, [[0.3, -0.05, -2.0]])
    with torch.no_grad():
        layer.weight_mask_logits.copy_(torch.tensor([[0.1, -0.2, 0.0]]))
    method.iteration = method.total_iterations  # the end of training: beta = 300
    event = method.prune(model, None)
    assert mask_of(layer).tolist() == [[True, False, False]]
    # 0.3 * sigmoid(300 * 0.1) / sigmoid(0) = 0.3 * 2 (sigmoid(30) = 1 - 9e-14)
    assert layer.weight.flatten().tolist() == pytest.approx([0.6, 0.0, 0.0])
    assert event.sparsity == pytest.approx(2 / 3)


# DST

def test_dst_step_and_its_surrogate_gradient():
    x = torch.tensor([0.0, 0.1, -0.3, 0.4, 0.5, -1.0, 1.5], requires_grad=True)
    step = BinaryStep.apply(x)
    step.sum().backward()
    assert step.tolist() == [0, 1, 0, 1, 1, 0, 1]
    # 2 - 4|x| up to 0.4 (2, 1.6, 0.8, 0.4), 0.4 up to 1, 0 beyond.
    assert x.grad.tolist() == pytest.approx([2.0, 1.6, 0.8, 0.4, 0.4, 0.4, 0.0])


def test_dst_masks_by_row_and_gradients_reach_weights_and_thresholds():
    method, model = make("dst", model=nn.Sequential(nn.Linear(2, 2, bias=False)))
    layer = model[0]
    set_weight(layer, [[0.3, -0.05], [0.2, 0.6]])
    assert layer.weight_threshold.tolist() == [0.0, 0.0]
    with torch.no_grad():
        layer.weight_threshold.copy_(torch.tensor([0.1, 0.5]))
    assert method.effective_weight(layer).flatten().tolist() == pytest.approx([0.3, 0.0, 0.0, 0.6])
    sum_of_outputs(method, model, torch.ones(1, 2))
    # margins |w| - t: [[0.2, -0.05], [-0.3, 0.1]], surrogate slopes [[1.2, 1.8], [0.8, 1.6]].
    # d(w step)/dw = step + |w| slope: [[1 + 0.36, 0.09], [0.16, 1 + 0.96]].
    assert layer.weight.grad.flatten().tolist() == pytest.approx([1.36, 0.09, 0.16, 1.96])
    # d(w step)/dt = -w slope, summed over the row: -(0.36 - 0.09), -(0.16 + 0.96).
    assert layer.weight_threshold.grad.tolist() == pytest.approx([-0.27, -1.12])
    assert decay_of(method, model, layer.weight_threshold) == method.training["weight_decay"]  # as the authors decay it


def test_dst_penalty():
    method, model = make("dst", alpha=1e-3, model=nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1)))
    with torch.no_grad():
        model[0].weight_threshold.copy_(torch.tensor([0.0, 1.0]))
        for layer in model:
            layer.weight.fill_(0.5)
    # 1e-3 * (e^0 + e^-1 + e^0 of the second layer), and 0.5 * 5e-4 * ||w||^2 = 0.5 * 5e-4 * 8 * 0.25.
    assert method.regularizer(model).item() == pytest.approx(1e-3 * (2 + math.exp(-1)) + 0.5 * 5e-4 * 2)


@pytest.mark.parametrize("name, hp", [("cs", {"s_init": 0.5}), ("dst", {})])
def test_cs_and_dst_decay_the_weights_twice_in_a_step(name, hp):
    """One SGD step (lr 0.1, no momentum) with weight decay 0.01 against the same step with
    none: the loss term 0.5 * 0.01 * ||w||^2 and the optimizer each take 0.1 * 0.01 * w, so
    w moves by -0.002 w more; CS's mask logits m only by the optimizer's -0.001 m."""
    moved = {}
    for decay in (0.0, 0.01):
        method = make_method(name, hp, None, **TRAINING | {"momentum": 0.0, "weight_decay": decay})
        model = nn.Sequential(nn.Linear(3, 1, bias=False))
        set_weight(model[0], [[0.8, -0.6, 0.9]])
        method.setup(model, 10)
        method.enter(method.phases()[0])
        optimizer = make_optimizer(method, model)
        train_step(method, model, torch.ones(2, 3), torch.zeros(2, dtype=torch.long), optimizer,
                   torch.amp.GradScaler("cpu", enabled=False))
        moved[decay] = {key: p.detach().clone() for key, p in model[0].named_parameters()}
    w = torch.tensor([[0.8, -0.6, 0.9]])
    assert torch.allclose(moved[0.01]["weight"] - moved[0.0]["weight"], -0.002 * w, atol=1e-7)
    if name == "cs":
        m = torch.full((1, 3), 0.5)
        assert torch.allclose(moved[0.01]["weight_mask_logits"] - moved[0.0]["weight_mask_logits"], -0.001 * m,
                              atol=1e-7)


def test_dst_resets_a_collapsed_layer():
    method, model = make("dst", model=nn.Sequential(nn.Linear(10, 10, bias=False), nn.Linear(10, 10, bias=False)))
    first, second = model
    for layer, above in ((first, 1), (second, 2)):  # 1% and 2% of the weights above t = 0.3
        weights = torch.full((10, 10), 0.1)
        weights.view(-1)[:above] = 0.5
        set_weight(layer, weights)
        with torch.no_grad():
            layer.weight_threshold.fill_(0.3)
    method.forward(model, torch.ones(1, 10))
    assert first.weight_threshold.tolist() == [0.0] * 10  # at most 1% left: reset
    assert second.weight_threshold.tolist() == pytest.approx([0.3] * 10)


# All three

@pytest.mark.parametrize("name, hp", [("str", {"s_init": -1.0}), ("cs", {"s_init": 0.0}), ("dst", {"alpha": 1e-2})])
def test_final_prune_zeroes_pruned_weights_and_reports_the_mask(name, hp):
    method, model = make(name, model=small_net(), **hp)
    if name == "dst":
        with torch.no_grad():
            model[0].weight_threshold.fill_(0.2)
    train_steps(method, model)
    event = method.prune(model, 0.9)  # the sparsity is ignored
    masks = [mask_of(m) for m in prunable_modules(model)]
    n = sum(mask.numel() for mask in masks)
    pruned = sum(int((~mask).sum()) for mask in masks)
    assert 0 < pruned < n
    assert event.sparsity == pytest.approx(pruned / n) and event.fraction == pytest.approx(pruned / n)
    for module in prunable_modules(model):
        assert not module.weight[~mask_of(module)].any()
        assert not hasattr(module, EXTRA[name])
    assert not any(EXTRA[name] in key for key in model.state_dict())
    method.enter(method.phases()[1])
    inputs = torch.randn(4, 2, 8)
    assert torch.equal(method.forward(model, inputs), model(inputs))
    assert method.regularizer(model) is None
    assert sum(len(g["params"]) for g in method.optimizer_groups(model)) == len(list(model.parameters()))


@pytest.mark.parametrize("name, hp, low, high", [
    ("str", {"s_init": -3.0}, 0.3, 0.8),
    ("cs", {"s_init": 0.0, "penalty": 1e-4}, 0.7, 0.99),
    ("dst", {"alpha": 1e-3}, 0.2, 0.8),
])
def test_trains_to_a_learned_sparsity(train_tiny, name, hp, low, high):
    result = train_tiny(name, {**hp, "finetune_fraction": 0.5}, epochs=2)
    record, state = result.record, result.state_dict
    masks = {k: v for k, v in state.items() if k.endswith("weight_mask")}
    n = sum(v.numel() for v in masks.values())
    zeros = sum(int((~v).sum()) for v in masks.values())
    assert low < record["sparsity"] < high
    assert record["sparsity"] == pytest.approx(zeros / n)
    assert math.isnan(record["goal_sparsity"]) and record["epochs"] == 3
    assert record["test_accuracy"] > 0.3
    for key, mask in masks.items():
        assert not state[key.replace("weight_mask", "weight")][~mask].any()
    assert not any(EXTRA[name] in key for key in state)
    if name != "cs":  # the hard prune keeps exactly the network STR and DST computed with
        assert record["accuracy_after_prune"] == record["accuracy_before_prune"]
