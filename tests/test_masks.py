"""Magnitude selection, exact sparsity, masks that keep pruned weights at zero, ALLR's d1."""

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from methods.core.masks import apply_masks, magnitude_prune, prunable_count, prunable_modules


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))


def zeros(model):
    return sum(int((m.weight == 0).sum()) for m in prunable_modules(model))


def test_only_conv_and_linear_weights_are_prunable():
    model = tiny_net()
    assert [type(m) for m in prunable_modules(model)] == [nn.Conv2d, nn.Linear]
    assert prunable_count(model) == 8 * 3 * 9 + 10 * 288


@pytest.mark.parametrize("sparsity", [0.3, 0.9, 0.995])
def test_global_selection_equals_torch_global_unstructured(sparsity):
    ours, theirs = tiny_net(), tiny_net()
    magnitude_prune(ours, sparsity, "global")
    params = [(m, "weight") for m in prunable_modules(theirs)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=sparsity)
    for mine, module in zip(prunable_modules(ours), prunable_modules(theirs)):
        assert torch.equal(mine.weight_mask, module.weight_mask.bool())
        assert torch.equal(mine.weight, module.weight)


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.93, 0.995])
def test_exactly_round_s_n_weights_are_zero(sparsity):
    model = tiny_net()
    magnitude_prune(model, sparsity)
    assert zeros(model) == round(sparsity * prunable_count(model))


def test_uniform_selection_prunes_every_layer_to_the_goal():
    model = tiny_net()
    magnitude_prune(model, 0.75, "uniform")
    for module in prunable_modules(model):
        assert int((module.weight == 0).sum()) == round(0.75 * module.weight.numel())


def test_iterative_pruning_keeps_pruned_weights_pruned_and_hits_the_goal():
    model, goal, cycles = tiny_net(), 0.98, 3
    n = prunable_count(model)
    previous = None
    for j in range(1, cycles + 1):
        target = 1 - (1 - goal) ** (j / cycles)
        event = magnitude_prune(model, target)
        mask = torch.cat([m.weight_mask.flatten() for m in prunable_modules(model)])
        if previous is not None:
            assert not (mask & ~previous).any(), "a pruned weight came back"
            assert event.fraction == pytest.approx(1 - (1 - goal) ** (1 / cycles), abs=2 / n * 100)
        previous = mask
        with torch.no_grad():  # perturb the weights as retraining would
            for m in prunable_modules(model):
                m.weight.add_(torch.randn_like(m.weight))
        apply_masks(model)
    assert zeros(model) == round(goal * n)


def test_zeros_stay_zero_through_sgd_with_momentum_and_weight_decay():
    model = tiny_net()
    magnitude_prune(model, 0.9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)
    for _ in range(5):
        optimizer.zero_grad()
        model(torch.randn(4, 3, 8, 8)).pow(2).mean().backward()
        optimizer.step()
        apply_masks(model, optimizer)
        assert zeros(model) == round(0.9 * prunable_count(model))
        for m in prunable_modules(model):
            buffer = optimizer.state[m.weight]["momentum_buffer"]
            assert not buffer[~m.weight_mask].any(), "momentum of a pruned weight survived"


def test_allr_d1_on_a_hand_made_weight_vector():
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[4.0, -3.0, 1.0, -1.0]]))
    event = magnitude_prune(layer, 0.5)
    # W - W_p = (0, 0, 1, -1): norm sqrt(2); ||W|| = sqrt(27); s = 0.5 of the remaining pruned.
    assert event.fraction == 0.5
    assert event.relative_change == pytest.approx(math.sqrt(2) / (math.sqrt(27) * math.sqrt(0.5)))
    # A second step prunes 1 of the 2 remaining (s = 0.5): W = (4, -3, 0, 0), W - W_p = (0, 3, 0, 0).
    event = magnitude_prune(layer, 0.75)
    assert event.fraction == 0.5
    assert event.relative_change == pytest.approx(3 / (5 * math.sqrt(0.5)))


def conv_first_net(seed=0):
    """Prunable sizes 30 (first convolution), 50, 50 and 20 (last layer): 150 weights."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(3, 5, 2), nn.Conv1d(5, 5, 2, bias=False), nn.Flatten(), nn.Linear(10, 5),
                         nn.Linear(5, 4))


def zeros_per_layer(model):
    return [int((m.weight == 0).sum()) for m in prunable_modules(model)]


@pytest.mark.parametrize("sparsity, expected", [
    # round(0.7 * 150) = 105 pruned; the first convolution stays dense. Uniform over the
    # other 120 weights, f = 105/120 = 0.875, would prune 17.5 of the last 20, more than 20 - round(0.2 * 20)
    # = 16: the last layer prunes 16 and the middle layers 105 - 16 = 89 at 89/100, 44.5 each, apportioned
    # by cumulative rounding: round(89 * 50/100) = round(44.5) = 44, then round(89) - 44 = 45.
    (0.7, [0, 44, 45, 16]),
    # round(0.5 * 150) = 75 pruned; f = 75/120 = 0.625 prunes 12.5 <= 16 of the last layer: the cap does not
    # bind. Cumulatively over 50, 50, 20: round(75 * 50/120) = round(31.25) = 31,
    # round(75 * 100/120) - 31 = round(62.5) - 31 = 62 - 31 = 31, 75 - 62 = 13.
    (0.5, [0, 31, 31, 13]),
])
def test_uniform_plus_per_layer_counts_by_hand(sparsity, expected):
    model = conv_first_net()
    weights = [m.weight.detach().clone() for m in prunable_modules(model)]
    magnitude_prune(model, sparsity, "uniform+")
    assert zeros_per_layer(model) == expected
    assert sum(expected) == round(sparsity * 150)
    for module, weight in zip(prunable_modules(model), weights):  # each layer loses its smallest weights
        mask = module.weight_mask
        if not mask.all():
            assert weight[mask].abs().min() >= weight[~mask].abs().max()


def test_uniform_plus_prunes_the_first_layer_when_it_is_not_a_convolution():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 25), nn.ReLU(), nn.Linear(25, 10))  # 1000 + 250 weights
    magnitude_prune(model, 0.9, "uniform+")
    # round(0.9 * 1250) = 1125; uniform would prune 225 of the last 250, the cap is 250 - round(50) = 200:
    # the first layer takes the other 925.
    assert zeros_per_layer(model) == [925, 200]


def test_uniform_plus_keeps_pruned_weights_pruned_as_the_sparsity_grows():
    model = conv_first_net()
    magnitude_prune(model, 0.5, "uniform+")
    first = [m.weight_mask.clone() for m in prunable_modules(model)]
    magnitude_prune(model, 0.7, "uniform+")
    for before, m in zip(first, prunable_modules(model)):
        assert not (m.weight_mask & ~before).any()
    assert zeros_per_layer(model) == [0, 44, 45, 16]


def test_uniform_plus_refuses_a_sparsity_it_cannot_reach():
    # round(0.9 * 150) = 135 > 50 + 50 + 16 = 116 prunable under uniform+
    with pytest.raises(ValueError, match="uniform\\+ cannot prune 135 of 150"):
        magnitude_prune(conv_first_net(), 0.9, "uniform+")
