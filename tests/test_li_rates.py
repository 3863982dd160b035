"""Li et al.'s L1 filter pruning at their hand-chosen rates (Renda et al. 2020, section 2.2),
against the authors' dicts (lottery-ticket/rewinding-iclr20-public, l1_filter_pruning.py)
and counts computed by hand.

The first three draws of random.Random(0) are 0.8444, 0.7580 and 0.4206: each pruned layer
of resnet1d-b (layers 2, 4, 6 with 32, 64 and 128 filters) takes one, in that order.
"""

import random

import pytest
import torch

from bench.metrics import flops, sparsity_report
from methods.core.li_rates import VARIANTS, level_rate, li_filter_prune, li_layers, stochastic_round
from methods.core.masks import mask_of
from models import build_model
from schema import ConfigError

from test_filters import pruned_filters


def resnet1d(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("resnet1d", 10, 1)


def first_convs(net) -> list:
    """resnet1d-b's layers 2, 4 and 6: the first convolution of each block."""
    return [block.conv1 for block in net.stages]


def test_numbering_is_the_stem_then_two_per_block_without_projection_shortcuts():
    net = build_model("resnet56", 10, 3)
    layers = li_layers(net)

    def layer(i):
        return layers[i - 1]

    assert len(layers) == 55 and layer(1) is net.stem[0]
    # block b (counting from 1) holds layers 2b and 2b + 1
    assert layer(2) is net.blocks[0].conv1 and layer(3) is net.blocks[0].conv2
    assert layer(16) is net.blocks[7].conv1
    assert layer(20) is net.blocks[9].conv1 and net.blocks[9].shortcut[0] not in layers  # stage 2's first block
    assert layer(54) is net.blocks[26].conv1 and layer(55) is net.blocks[26].conv2


def test_numbering_of_resnet34_and_resnet110():
    net = build_model("resnet34", 10, 3)
    layers = li_layers(net)
    assert len(layers) == 33 and layers[0] is net.conv1
    assert layers[7] is net.layer2[0].conv1 and net.layer2[0].downsample[0] not in layers  # layer 8
    assert layers[32] is net.layer4[2].conv2
    assert len(li_layers(build_model("resnet110", 10, 3))) == 109


@pytest.mark.parametrize("variant, rates", [
    ("resnet56-a", {i: 0.1 for i in range(2, 55, 2) if i not in (16, 20, 38, 54)}),
    ("resnet56-b", {i: 0.6 if i <= 19 else 0.3 if i <= 37 else 0.1
                    for i in range(2, 55, 2) if i not in (16, 18, 20, 34, 38, 54)}),
    ("resnet110-a", {i: 0.5 for i in range(2, 35, 2)}),
    ("resnet110-b", {i: 0.5 if i <= 37 else 0.4 if i <= 73 else 0.3
                     for i in range(2, 109, 2) if i not in (36, 38, 74)}),
    ("resnet34-a", dict.fromkeys((4, 6, 10, 12, 18, 20, 22, 24), 0.3)),
    ("resnet34-b", {4: 0.5, 6: 0.5, 10: 0.6, 12: 0.6, 18: 0.4, 20: 0.4, 22: 0.4, 24: 0.4}),
    ("resnet1d-b", {2: 0.6, 4: 0.3, 6: 0.1}),
])
def test_each_variant_prunes_the_authors_layers_at_their_rates(variant, rates):
    assert VARIANTS[variant].rates == rates


def test_level_k_exponentiates_the_density():
    # density 0.4 -> 0.4^2 = 0.16: 0.84 pruned; 0.7^3 = 0.343; 0.9^5 = 0.59049
    assert level_rate(0.6, 2) == pytest.approx(0.84)
    assert level_rate(0.3, 3) == pytest.approx(0.657)
    assert level_rate(0.1, 5) == pytest.approx(0.40951)
    assert level_rate(0.6, 1) == 0.6


class Draw:
    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


def test_the_fraction_is_rounded_up_with_its_probability():
    assert stochastic_round(2.25, Draw(0.2)) == 3 and stochastic_round(2.25, Draw(0.3)) == 2
    assert stochastic_round(4.0, Draw(0.0)) == 4


def test_filters_pruned_per_layer_at_levels_1_and_2():
    # Level 1: 32 * 0.6 = 19.2 (0.844 >= 0.2: 19), 64 * 0.3 = 19.2 (0.758: 19), 128 * 0.1 = 12.8 (0.421 < 0.8: 13).
    net = resnet1d()
    li_filter_prune(net, "resnet1d-b", 1)
    assert [len(pruned_filters(conv)) for conv in first_convs(net)] == [19, 19, 13]
    # Level 2: 32 * 0.84 = 26.88 (0.844 < 0.88: 27), 64 * 0.51 = 32.64 (0.758 >= 0.64: 32), 128 * 0.19 = 24.32 (24).
    net = resnet1d()
    li_filter_prune(net, "resnet1d-b", 2)
    assert [len(pruned_filters(conv)) for conv in first_convs(net)] == [27, 32, 24]
    # every other convolution and the head keep all their weights
    others = [m for m in li_layers(net) if m not in first_convs(net)] + [net.fc]
    assert all(mask_of(m).all() for m in others)


def test_filters_are_ranked_by_l1_not_l2_norm():
    # Layer 2 (32 filters of 32 x 3 = 96 weights) prunes 19 at level 1. Filters 0-18 hold one weight of 3
    # (L1 3, L2 3), filters 19-31 hold 0.05 everywhere (L1 4.8, L2 0.49): by L1 the 19 spiky ones go, by L2
    # the 13 flat ones would go first.
    net = resnet1d()
    conv = net.stages[0].conv1
    with torch.no_grad():
        conv.weight.fill_(0.05)
        conv.weight[:19] = 0
        conv.weight[:19, 0, 0] = 3.0
    li_filter_prune(net, "resnet1d-b", 1)
    assert pruned_filters(conv) == list(range(19))


def test_a_second_step_prunes_the_remaining_filters_and_keeps_the_pruned():
    net = resnet1d()
    li_filter_prune(net, "resnet1d-b", 1)
    first = [pruned_filters(conv) for conv in first_convs(net)]
    with torch.no_grad():  # as if the pruned filters had regrown to the largest norms
        for conv, pruned in zip(first_convs(net), first):
            conv.weight[pruned] = 10.0
    li_filter_prune(net, "resnet1d-b", 1)
    second = [pruned_filters(conv) for conv in first_convs(net)]
    assert all(set(a) < set(b) for a, b in zip(first, second))
    # of the remaining 13, 45 and 115: 13 * 0.6 = 7.8 (0.844 >= 0.8: 7), 45 * 0.3 = 13.5 (0.758: 13),
    # 115 * 0.1 = 11.5 (0.421 < 0.5: 12)
    assert [len(b) - len(a) for a, b in zip(first, second)] == [7, 13, 12]


def test_a_step_is_deterministic_and_leaves_the_global_random_state_alone():
    a, b = resnet1d(), resnet1d()
    state, torch_state = random.getstate(), torch.get_rng_state()
    li_filter_prune(a, "resnet1d-b", 3)
    li_filter_prune(b, "resnet1d-b", 3)
    assert random.getstate() == state and torch.equal(torch.get_rng_state(), torch_state)
    assert all(torch.equal(mask_of(x), mask_of(y)) for x, y in zip(li_layers(a), li_layers(b)))


def test_pruned_filters_drop_the_next_layers_flops():
    # Level 1 prunes 19/32, 19/64 and 13/128 filters of the blocks' first convolutions, whose second
    # convolutions then read 13, 45 and 115 channels. Multiply-adds (C_in * C_out * width * length):
    #   stem 1*32*5*20 = 3200; block 1 (length 20): 32*32*3*20 = 61440 twice; block 2 (length 10):
    #   32*64*3*10 = 61440, 64*64*3*10 = 122880; block 3 (length 5): 64*128*3*5 = 122880,
    #   128*128*3*5 = 245760; head 1280. Dense: 680320.
    #   Pruned: 3200 + 13*32*3*20 * 2 + 32*45*3*10 + 45*64*3*10 + 64*115*3*5 + 115*128*3*5 + 1280
    #         = 3200 + 49920 + 43200 + 86400 + 110400 + 220800 + 1280 = 515200.
    net, example = resnet1d(), torch.randn(1, 1, 40)
    event = li_filter_prune(net, "resnet1d-b", 1)
    report = sparsity_report(net, example, structured=True)
    assert flops(net, example, structured=True) == (680320, pytest.approx(515200))
    assert report["theoretical_speedup"] == pytest.approx(680320 / 515200)
    # removed weights: 19*32*3 + 19*32*3 + 13*64*3 = 6144 of the prunable ones
    prunable = sum(m.weight.numel() for m in [*li_layers(net), net.fc])
    assert event.sparsity == pytest.approx(report["sparsity"]) == pytest.approx(6144 / prunable)
    assert event.fraction == pytest.approx(6144 / prunable)


def test_a_variant_on_another_model_is_refused_naming_both():
    with pytest.raises(ConfigError, match=r"'resnet56-b' are Li et al.'s for resnet56.* 55 .*CifarResNet has 19"):
        li_filter_prune(build_model("resnet20", 10, 3), "resnet56-b", 1)
    with pytest.raises(ConfigError, match="did you mean 'resnet56-b'"):
        li_filter_prune(resnet1d(), "resnet56b", 1)
    with pytest.raises(ValueError, match="positive integer"):
        li_filter_prune(resnet1d(), "resnet1d-b", 0)
