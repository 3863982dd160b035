"""Theoretical speedup, sparsity and compression of tiny networks against hand counts."""

import math

import pytest
import torch
from torch import nn

from bench.metrics import flops, pruning_stability, sparsity_report


def hand_net():
    net = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(16, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
        net[0].weight.view(-1)[:3] = 0  # conv: 3 of 6 weights zero -> density 1/2
        net[2].weight.view(-1)[:48] = 0  # linear: 48 of 64 zero -> density 1/4
    return net


def test_speedup_sparsity_and_compression_by_hand():
    # conv: C_in * C_out * k * positions = 1 * 2 * 3 * 8 = 48 FLOPs; linear: 16 * 4 = 64 FLOPs.
    # nonzero: 48 / 2 + 64 / 4 = 40; speedup 112 / 40 = 2.8.
    report = sparsity_report(hand_net(), torch.randn(5, 1, 10))
    assert report["theoretical_speedup"] == pytest.approx(2.8)
    assert report["sparsity"] == pytest.approx(51 / 70)
    assert report["sparsity_overall"] == pytest.approx(51 / 76)  # 6 biases, all nonzero
    assert report["compression_ratio"] == pytest.approx(70 / 19)


def test_conv_flops_count_groups_stride_and_padding():
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
    # C_in / groups * C_out * 3 * 3 * (4 * 4 output positions) = 2 * 8 * 9 * 16
    assert flops(conv, torch.randn(3, 4, 8, 8)) == (2304, 2304.0)


def test_dense_network_has_speedup_one():
    report = sparsity_report(nn.Sequential(nn.Conv1d(1, 4, 3), nn.Flatten(), nn.Linear(32, 2)), torch.randn(1, 1, 10))
    assert report["theoretical_speedup"] == pytest.approx(1.0)
    assert report["compression_ratio"] == pytest.approx(1.0)


def test_pruning_stability_definition_a1():
    assert pruning_stability(0.9, 0.9) == 1.0
    assert pruning_stability(0.8, 0.6) == pytest.approx(0.75)
    assert math.isnan(pruning_stability(math.nan, math.nan))
