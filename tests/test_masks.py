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
