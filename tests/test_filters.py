"""Filter pruning by Lp norm and the FLOPs of a filter-pruned model, against hand counts."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.metrics import flops, sparsity_report
from methods.core.filters import filter_layers, filter_prune, prune_units
from methods.core.masks import apply_masks, mask_of
from models import build_model

from conftest import make_method


def two_convs() -> nn.Sequential:
    """conv1: 4 filters of width 2; conv2: 2 filters of width 1 over 4 channels; a linear head.

    conv1 filters   L1    L2                 conv2 filters     L1   L2
    f0 = [3, 0]     3     3                  r0 = [1, 1, 1, 1]  4    2
    f1 = [2, 2]     4     sqrt(8) = 2.83     r1 = [0, 0, 0, 3]  3    3
    f2 = [1.6, 1.6] 3.2   sqrt(5.12) = 2.26
    f3 = [.5, .5]   1     sqrt(.5) = 0.71
    """
    net = nn.Sequential(nn.Conv1d(1, 4, 2, bias=False), nn.ReLU(), nn.Conv1d(4, 2, 1, bias=False), nn.Flatten(),
                        nn.Linear(8, 3, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[3.0, 0.0], [2.0, 2.0], [1.6, 1.6], [0.5, 0.5]]).view(4, 1, 2))
        net[2].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 3.0]]).view(2, 4, 1))
        net[4].weight.fill_(1.0)
    return net


def pruned_filters(module) -> list[int]:
    """The filters whose mask slice is all False (their weights then all zero)."""
    mask = mask_of(module).flatten(1)
    assert not module.weight.flatten(1)[~mask.any(dim=1)].any()
    return [k for k in range(mask.shape[0]) if not mask[k].any()]


def test_half_of_every_conv_goes_by_l2_norm_and_the_linear_head_keeps_every_weight():
    net = two_convs()
    filter_prune(net, 0.5)
    # conv1: round(0.5 * 4) = 2 smallest L2 -> f3 (0.71), f2 (2.26); conv2: round(0.5 * 2) = 1 -> r0 (2 < 3)
    assert pruned_filters(net[0]) == [2, 3] and pruned_filters(net[2]) == [0]
    assert filter_layers(net) == [net[0], net[2]] and mask_of(net[4]).all()


def test_l1_norm_ranks_the_filters_otherwise():
    net = two_convs()
    prune_units(filter_layers(net), [2, 1], norm=1)
    apply_masks(net)
    # conv1: smallest L1 are f3 (1) and f0 (3); conv2: r1 (3 < 4)
    assert pruned_filters(net[0]) == [0, 3] and pruned_filters(net[2]) == [1]


def test_each_layer_takes_its_own_count():
    net = two_convs()
    prune_units(filter_layers(net), [3, 0], norm=2)
    apply_masks(net)
    # conv1: 3 -> f3, f2, f1 (2.83 < 3); conv2: none
    assert pruned_filters(net[0]) == [1, 2, 3] and pruned_filters(net[2]) == []


def test_filters_pruned_in_an_earlier_cycle_stay_pruned():
    net = two_convs()
    filter_prune(net, 0.25)  # round(0.25 * 4) = 1 -> f3; conv2: round(0.5) = 0
    assert pruned_filters(net[0]) == [3]
    with torch.no_grad():  # as if f3 had regrown to the largest norm and f0 shrunk to the smallest
        net[0].weight[3] = 10.0
        net[0].weight[0] = 0.1
    filter_prune(net, 0.5)  # 2 in all: f3 stays pruned, f0 (L2 0.14) joins it
    assert pruned_filters(net[0]) == [0, 3]


def test_imp_measures_d1_on_a_filter_prune():
    # One cycle to 0.5 over the prunable weights: removed f2, f3, r0, so
    # ||W - W_p||^2 = 5.12 + 0.5 + 4 = 9.62, ||W||^2 = 9 + 8 + 5.12 + 0.5 + 4 + 9 + 24 (head) = 59.62,
    # d1 = sqrt(9.62 / 59.62) / sqrt(0.5) = sqrt(19.24 / 59.62) = 0.56807.
    method = make_method("imp", {"retrain_epochs": 1, "structure": "filters", "selection": "uniform",
                                 "d1_over": "prunable"}, 0.5)
    event = method.prune(two_convs(), 0.5)
    assert event.relative_change == pytest.approx((19.24 / 59.62) ** 0.5)
    # removed 2 + 2 + 4 of 8 + 8 + 24 = 40 prunable weights
    assert event.fraction == pytest.approx(8 / 40)


def test_filter_pruning_asks_for_the_uniform_selection():
    from schema import ConfigError

    with pytest.raises(ConfigError) as error:
        make_method("imp", {"retrain_epochs": 1, "structure": "filters"}, 0.5).phases()
    assert error.value.key == "selection"


def chain() -> nn.Sequential:
    """conv1 (1 -> 4, width 2), BatchNorm with a nonzero shift, ReLU, conv2 (4 -> 2, width 1),
    flatten, linear (8 -> 3); conv1's filters 2 and 3 pruned."""
    net = nn.Sequential(nn.Conv1d(1, 4, 2, bias=False), nn.BatchNorm1d(4), nn.ReLU(), nn.Conv1d(4, 2, 1, bias=False),
                        nn.Flatten(), nn.Linear(8, 3, bias=False))
    with torch.no_grad():
        for module in (net[0], net[3], net[5]):
            module.weight.fill_(1.0)
        net[1].bias.fill_(1.0)  # the pruned channels carry the constant relu(1) = 1, not zero
        net[0].weight[2:] = 0
    return net


def test_flops_drop_the_next_layers_inputs_from_pruned_filters():
    # Input length 5: conv1 has 4 output positions, conv2 too, the linear layer 2 * 4 = 8 inputs.
    # Dense: conv1 1 * 4 * 2 * 4 = 32, conv2 4 * 2 * 1 * 4 = 32, linear 8 * 3 = 24; 88 in all.
    net, example = chain(), torch.randn(1, 1, 5)
    # conv1 keeps 2 of 4 filters: 16. conv2 reads 2 of its 4 channels: 2 * 2 * 4 = 16. Linear: 24.
    assert flops(net, example, structured=True) == (88, pytest.approx(56.0))
    # Each layer by its own density (the unstructured count): 16 + 32 + 24 = 72.
    assert flops(net, example) == (88, pytest.approx(72.0))
    with torch.no_grad():
        net[3].weight[1] = 0
    # conv2 keeps filter 0 on 2 live channels: 1 * 2 * 4 = 8; the linear layer loses the 4 inputs
    # of conv2's channel 1: 4 * 3 = 12. 16 + 8 + 12 = 36.
    assert flops(net, example, structured=True)[1] == pytest.approx(36.0)
    assert sparsity_report(net, example, structured=True)["theoretical_speedup"] == pytest.approx(88 / 36)


def test_a_filter_reading_only_dead_channels_goes_too():
    net, example = chain(), torch.randn(1, 1, 5)
    with torch.no_grad():
        net[3].weight[1] = 0
        net[3].weight[1, 2:] = 1.0  # conv2's filter 1 reads only conv1's pruned channels 2 and 3
    # conv1 16, conv2 filter 0 on channels 0, 1: 8, filter 1 on none: 0; linear 12. 36 as above.
    assert flops(net, example, structured=True)[1] == pytest.approx(36.0)


class Residual(nn.Module):
    """stem (1 -> 3), branch (3 -> 3) added to the stem's output, head (3 -> 2); width-1 convs."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv1d(1, 3, 1, bias=False)
        self.bn_stem = nn.BatchNorm1d(3)
        self.branch = nn.Conv1d(3, 3, 1, bias=False)
        self.bn_branch = nn.BatchNorm1d(3)
        self.head = nn.Conv1d(3, 2, 1, bias=False)

    def forward(self, x):
        stem = F.relu(self.bn_stem(self.stem(x)))
        return self.head(F.relu(self.bn_branch(self.branch(stem)) + stem))


def test_a_channel_summed_over_branches_is_dead_only_when_dead_in_every_branch():
    net, example = Residual(), torch.randn(1, 1, 4)
    with torch.no_grad():
        for conv in (net.stem, net.branch, net.head):
            conv.weight.fill_(1.0)
        net.stem.weight[0] = 0  # channel 0 dead in the stem ...
        net.branch.weight[:2] = 0  # ... and in the branch; channel 1 dead in the branch only
    # 4 positions. Dense: stem 1 * 3 * 4 = 12, branch 3 * 3 * 4 = 36, head 3 * 2 * 4 = 24; 72.
    # stem: 2 filters, 8. branch: filter 2 on the stem's live channels 1, 2: 2 * 4 = 8.
    # head: channel 0 dead in both summands, channel 1 alive through the stem: 2 * 2 * 4 = 16.
    assert flops(net, example, structured=True) == (72, pytest.approx(32.0))
    # Each by its own density: 8 + 36 / 3 + 24 = 44.
    assert flops(net, example)[1] == pytest.approx(44.0)


def test_resnet1d_zero_padded_shortcut_channels_count_as_dead():
    # The first block to widen (32 -> 64) pads 32 zero channels onto its shortcut; with conv2
    # of that block fully pruned, those 32 channels of its output are dead and the next
    # block's conv1 reads only the 32 of the shortcut.
    net, example = build_model("resnet1d", 10, 1), torch.randn(1, 1, 40)
    block, after = net.stages[1], net.stages[2]
    dense, _ = flops(net, example)
    with torch.no_grad():
        block.conv2.weight.zero_()
    _, unstructured = flops(net, example)
    _, structured = flops(net, example, structured=True)
    # block 2's conv1 (64 -> 128, width 3, stride 2, 5 outputs) loses half its inputs: 32 * 128 * 3 * 5
    assert unstructured - structured == pytest.approx(32 * 128 * 3 * 5)
    assert after.conv1.in_channels == 64 and dense > unstructured


def test_imp_prunes_whole_filters_through_the_loop(train_tiny):
    goal = 0.5
    result = train_tiny("imp", {"retrain_epochs": 1, "cycles": 2, "schedule": "allr", "structure": "filters",
                                "selection": "uniform"}, goal=goal, epochs=2)
    state, record = result.state_dict, result.record
    net = build_model("resnet1d", 10, 1)
    net.load_state_dict(state, strict=False)
    for name, module in net.named_modules():
        if module in filter_layers(net):
            mask = state[f"{name}.weight_mask"].flatten(1)
            pruned = ~mask.any(dim=1)
            # whole filters: each filter's mask all True or all False, round(0.5 * filters) of them False
            assert (mask.all(dim=1) | pruned).all() and int(pruned.sum()) == round(goal * mask.shape[0]), name
            assert not state[f"{name}.weight"].flatten(1)[pruned].any()
    assert state["fc.weight_mask"].all()
    weights = [m.weight for m in filter_layers(net)] + [net.fc.weight]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert record["status"] == "ok" and record["sparsity"] == pytest.approx(zeros / sum(w.numel() for w in weights))
    example = torch.randn(1, 1, 40)
    dense, structured = flops(net, example, structured=True)
    assert record["theoretical_speedup"] == pytest.approx(dense / structured)
    assert record["theoretical_speedup"] > dense / flops(net, example)[1]
