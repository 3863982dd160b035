"""Magnitude selection, exact sparsity, masks that keep pruned weights at zero, ALLR's d1."""

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from methods import METHODS
from methods.core.masks import (SELECTIONS, apply_masks, lamp_scores, magnitude_prune, prunable_count,
                                prunable_modules)
from methods.pruning_stable.gmp import recompute_masks


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


def assert_prunes_per_layer(model, sparsity, selection, expected):
    """The ``selection`` prunes ``expected`` weights per layer, round(sparsity * n) in all, each
    layer its smallest."""
    weights = [m.weight.detach().clone() for m in prunable_modules(model)]
    magnitude_prune(model, sparsity, selection)
    assert zeros_per_layer(model) == expected
    assert sum(expected) == round(sparsity * prunable_count(model))
    for module, weight in zip(prunable_modules(model), weights):
        mask = module.weight_mask
        if not mask.all():
            assert weight[mask].abs().min() >= weight[~mask].abs().max()


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
    assert_prunes_per_layer(conv_first_net(), sparsity, "uniform+", expected)


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


@pytest.mark.parametrize("sparsity", [0.3, 0.75, 0.9])
def test_uniform_selection_equals_torch_l1_unstructured_per_layer(sparsity):
    ours, theirs = tiny_net(), tiny_net()
    magnitude_prune(ours, sparsity, "uniform")
    for mine, module in zip(prunable_modules(ours), prunable_modules(theirs)):
        prune.l1_unstructured(module, "weight", amount=sparsity)
        assert torch.equal(mine.weight_mask, module.weight_mask.bool())


def erk_net():
    """Weights of 4x2x3x3 = 72 (E = 4 + 2 + 3 + 3 = 12), 8x4x3x3 = 288 (E = 18) and 2x32 = 64
    (E = 2 + 32 = 34): 424 weights, E = 64 in all. Never run forward."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.Conv2d(4, 8, 3), nn.Linear(32, 2))


@pytest.mark.parametrize("sparsity, expected", [
    # round(0.8 * 424) = 339 pruned, 85 kept at 85/64 = 1.328 per unit of E: 15.9, 23.9, 45.2, all within
    # their layers. Cumulatively: round(85 * 12/64) = round(15.94) = 16, round(85 * 30/64) - 16 = 40 - 16 = 24,
    # 85 - 40 = 45 kept: 72 - 16, 288 - 24, 64 - 45 pruned.
    (0.8, [56, 264, 19]),
    # round(0.5 * 424) = 212 pruned, 212 kept at 212/64 = 3.3125: the linear layer would keep 34 * 3.3125 = 112.6
    # > 64, so it stays dense; the convolutions share 212 - 64 = 148 at 148/30 = 4.93: 59.2 <= 72 and 88.8.
    # round(148 * 12/30) = 59, then 148 - 59 = 89 kept: 72 - 59 = 13, 288 - 89 = 199 pruned.
    (0.5, [13, 199, 0]),
    # round(0.3 * 424) = round(127.2) = 127 pruned, 297 kept at 4.64: the linear layer (157.8 > 64) stays dense;
    # rescaled, 233 at 233/30 = 7.77, the first convolution would keep 93.2 > 72: dense too; the second keeps
    # 233 - 72 = 161 and prunes 288 - 161 = 127.
    (0.3, [0, 127, 0]),
])
def test_erk_per_layer_counts_by_hand(sparsity, expected):
    assert_prunes_per_layer(erk_net(), sparsity, "erk", expected)


def test_erk_keeps_pruned_weights_pruned_and_caps_a_layer_at_its_unpruned_weights():
    model = erk_net()
    magnitude_prune(model, 0.3, "erk")
    first = [m.weight_mask.clone() for m in prunable_modules(model)]
    magnitude_prune(model, 0.8, "erk")
    assert zeros_per_layer(model) == [56, 264, 19]
    for before, m in zip(first, prunable_modules(model)):
        assert not (m.weight_mask & ~before).any()
    model = erk_net()
    magnitude_prune(model, 0.5, "uniform")  # 36, 144 and 32 pruned: 36, 144 and 32 left
    magnitude_prune(model, 0.8, "erk")
    # 85 kept at 1.328: 15.9 <= 36, 23.9 <= 144, but 45.2 > 32 left in the linear layer: it keeps its 32 and the
    # convolutions share 85 - 32 = 53 at 53/30: round(53 * 12/30) = round(21.2) = 21, then 53 - 21 = 32 kept.
    assert zeros_per_layer(model) == [72 - 21, 288 - 32, 32]


def test_erk_counts_every_dimension_of_a_1d_kernel():
    torch.manual_seed(0)
    # Conv1d(3, 5, 4): 5x3x4 = 60 weights, E = 5 + 3 + 4 = 12; Linear(20, 2): 40 weights, E = 22. round(0.6 * 100)
    # = 60 pruned, 40 kept at 40/34: round(40 * 12/34) = round(14.12) = 14, then 26 kept: 46 and 14 pruned.
    model = nn.Sequential(nn.Conv1d(3, 5, 4), nn.Linear(20, 2))
    magnitude_prune(model, 0.6, "erk")
    assert zeros_per_layer(model) == [46, 14]


def test_erk_refuses_to_bring_pruned_weights_back():
    model = erk_net()
    magnitude_prune(model, 0.8, "erk")
    with pytest.raises(ValueError, match="erk cannot keep 297 weights: 85 are left unpruned"):
        magnitude_prune(model, 0.3, "erk")


def test_lamp_scores_of_four_weights_by_hand():
    # weights 3, -1, 4, -2: squares 9, 1, 16, 4, ascending 1, 4, 9, 16 with sums from there on 30, 29, 25, 16
    scores = lamp_scores(torch.tensor([3.0, -1.0, 4.0, -2.0]).abs())
    assert scores.tolist() == pytest.approx([9 / 25, 1 / 30, 1.0, 4 / 29])


def test_lamp_scores_leave_pruned_weights_out():
    # -1 marks a pruned weight: it scores -1 and is in no sum; 1 and 2 score 1/(1 + 4) and 4/4
    assert lamp_scores(torch.tensor([-1.0, 1.0, 2.0])).tolist() == pytest.approx([-1.0, 1 / 5, 1.0])


def test_lamp_scores_ties_by_sorted_position():
    # magnitudes 2, 1, 2, 3: squares 4, 1, 4, 9 (18 in all); the stable ascending order is 1 (index 1), 2 (index 0),
    # 2 (index 2), 3: 1/18, then 4/(4 + 4 + 9) = 4/17 for index 0, 4/(4 + 9) = 4/13 for index 2, 9/9.
    scores = lamp_scores(torch.tensor([2.0, 1.0, 2.0, 3.0]))
    assert scores.tolist() == pytest.approx([4 / 17, 1 / 18, 4 / 13, 1.0])
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[2.0, 1.0, -2.0, 3.0]]))
    magnitude_prune(layer, 0.5, "lamp")  # 2 pruned: 1/18 and 4/17, the first of the tied weights
    assert layer.weight_mask.tolist() == [[False, False, True, True]]


def test_lamp_one_threshold_across_two_layers():
    model = nn.Sequential(nn.Linear(4, 1, bias=False), nn.Linear(1, 4, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
        model[1].weight.copy_(torch.tensor([[5.0], [6.0], [7.0], [100.0]]))
    # first layer: 1/30 = 0.033, 4/29 = 0.138, 9/25 = 0.36, 1; second: 25/10110 = 0.0025, 36/10085 = 0.0036,
    # 49/10049 = 0.0049, 1. round(0.5 * 8) = 4 pruned: 5, 6, 7 and 1 (global magnitude would prune 1 to 4).
    magnitude_prune(model, 0.5, "lamp")
    assert model[0].weight_mask.flatten().tolist() == [False, True, True, True]
    assert model[1].weight_mask.flatten().tolist() == [False, False, False, True]
    magnitude_prune(model, 0.75, "lamp")  # 2 more: 2 (now 4/29) and 3 (9/25) rank below the two 1s
    assert model[0].weight_mask.flatten().tolist() == [False, False, False, True]
    assert model[1].weight_mask.flatten().tolist() == [False, False, False, True]


def masks_of(model):
    return torch.cat([m.weight_mask.flatten() for m in prunable_modules(model)])


def random_mask(sparsity, seed, model=None):
    model = model or tiny_net()
    torch.manual_seed(seed)
    magnitude_prune(model, sparsity, "random")
    return masks_of(model)


def test_random_selection_is_seeded_exact_and_keeps_pruned_weights_pruned():
    n = prunable_count(tiny_net())
    first = random_mask(0.5, seed=1)
    assert torch.equal(first, random_mask(0.5, seed=1))
    assert not torch.equal(first, random_mask(0.5, seed=2))
    assert int((~first).sum()) == round(0.5 * n)
    model = tiny_net()
    random_mask(0.5, seed=1, model=model)
    state = torch.get_rng_state()  # a checkpoint saves the global generator's state
    magnitude_prune(model, 0.9, "random")
    second = masks_of(model)
    assert not (second & ~first).any()
    assert int((~second).sum()) == round(0.9 * n)
    resumed = tiny_net()  # resuming restores that state: the next step draws the same mask
    random_mask(0.5, seed=1, model=resumed)
    torch.manual_seed(4)
    torch.set_rng_state(state)
    magnitude_prune(resumed, 0.9, "random")
    assert torch.equal(second, masks_of(resumed))


def test_random_selection_ignores_magnitudes():
    # among 1 - 0.5 = 50% kept at random, the largest half of the magnitudes is not what survives
    model = tiny_net()
    weights = torch.cat([m.weight.detach().abs().flatten() for m in prunable_modules(model)])
    mask = random_mask(0.5, seed=0, model=model)
    assert weights[mask].min() < weights[~mask].max()


@pytest.mark.parametrize("selection", ["erk", "lamp", "random"])
def test_gmp_soft_masks_and_the_methods_take_the_new_selections(selection):
    model = erk_net()
    recompute_masks(model, 0.8, selection)
    assert sum(int((~m.weight_mask).sum()) for m in prunable_modules(model)) == round(0.8 * 424)
    if selection == "erk":
        assert [int((~m.weight_mask).sum()) for m in prunable_modules(model)] == [56, 264, 19]
    for name in ("gmp", "dpf", "imp", "bimp"):
        assert METHODS[name].params["selection"].known() == SELECTIONS
