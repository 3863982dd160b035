"""Node pruning: SNAP-it's node elasticities and selection, EfficientConvNets' L1 norms, both
against hand computations, and both through the one loop.

The SNAP-it hand network: three linear layers, no activation,
    h1 = W1 x + b1, h2 = W2 (c1 ⊙ h1) + b2, z = W3 (c2 ⊙ h2),
    W1 = [[1, 0], [0, 2]], b1 = (0, 1), W2 = [[1, 1], [0, 1]], b2 = 0, W3 = [[1, 0], [2, -0.5]],
its nodes the two units of each of the first two layers (the third's are the classes). On
x = (1, 1): h1 = (1, 3), h2 = (4, 3). The authors' loss is minus the target logit, L = -z_y.
For y = 1: dL/d(c2 ⊙ h2) = -W3[1] = (-2, 0.5), so dL/dc2 = (-2 * 4, 0.5 * 3) = (-8, 1.5);
dL/d(c1 ⊙ h1) = W2^T (-2, 0.5) = (-2, -1.5), so dL/dc1 = (-2 * 1, -1.5 * 3) = (-2, -4.5).
For y = 0: dL/d(c2 ⊙ h2) = -W3[0] = (-1, 0), dL/dc2 = (-4, 0); W2^T (-1, 0) = (-1, -1),
dL/dc1 = (-1, -3).
"""

import math

import pytest
import torch
from torch import nn

from bench.metrics import flops, sparsity_report
from bench.train import load_state
from methods.core.masks import mask_of, prunable_modules
from methods.core.nodes import node_layers, node_sparsity
from methods.structured.snap_it import keep_top_nodes, node_elasticity
from methods.structured.structured_random import random_keeps
from models import build_model
from models.snipit import ConvNet, classifier, conv_stack
from schema import ConfigError

from conftest import make_method

X = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
A = (X, torch.tensor([1]))
B = (X, torch.tensor([0]))


def hand_network() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        net[0].bias.copy_(torch.tensor([0.0, 1.0]))
        net[1].weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
        net[1].bias.zero_()
        net[2].weight.copy_(torch.tensor([[1.0, 0.0], [2.0, -0.5]]))
    return net


def masks(net) -> list[list]:
    return [mask_of(m).tolist() for m in prunable_modules(net)]


def with_batches(method, *batches):
    """The method given ``batches`` as the training data, each call a new pass."""
    method.use_training_data(lambda: iter(batches))
    return method


def pruned_rows(module) -> list[int]:
    """The output units whose mask row is all False (their weights then all zero)."""
    rows = mask_of(module).flatten(1).any(dim=1)
    assert not module.weight.flatten(1)[~rows].any()
    return [k for k in range(len(rows)) if not rows[k]]


# --- SNAP-it: node elasticities -----------------------------------------------------------

def test_node_elasticity_is_the_gate_gradient_by_hand():
    scores = node_elasticity(hand_network(), [A])
    assert [s.tolist() for s in scores] == [[2.0, 4.5], [8.0, 1.5]]
    # node 1 of the first layer: |dL/dh1_1| = 1.5 times h1_1 = W1[1] . x + b1_1 = 2 + 1: the
    # gate counts the bias; the weights alone give |g ⊙ w| = 1.5 * 2 = 3


def test_node_elasticity_is_the_absolute_value_of_the_gradient_of_the_mean_over_batches():
    # (dL_A/dc + dL_B/dc) / 2: c1 ((-2 - 1) / 2, (-4.5 - 3) / 2), c2 ((-8 - 4) / 2, (1.5 + 0) / 2)
    assert [s.tolist() for s in node_elasticity(hand_network(), [A, B])] == [[1.5, 3.75], [6.0, 0.75]]


def test_a_filter_gate_sums_g_times_theta_over_the_filter_and_its_bias_before_batchnorm():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.LeakyReLU(0.05), nn.Conv2d(3, 4, 3, padding=1),
                        nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5), nn.Linear(5, 3))
    net = net.double()
    with torch.no_grad():
        for bn in (net[1], net[4]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    batches = [(torch.randn(6, 2, 6, 6, dtype=torch.float64), torch.randint(0, 3, (6,)))]
    layers = [net[0], net[3], net[7]]
    params = [p for m in layers for p in (m.weight, m.bias)]
    net.eval()
    loss = nn.functional.nll_loss(net(batches[0][0]), batches[0][1])
    grads = torch.autograd.grad(loss, params)
    net.train()
    expected = [((gw * m.weight).flatten(1).sum(1) + gb * m.bias).abs()
                for m, gw, gb in zip(layers, grads[0::2], grads[1::2])]
    for score, value in zip(node_elasticity(net, batches), expected, strict=True):
        assert torch.allclose(score, value, rtol=1e-10, atol=1e-12)


# --- SNAP-it: which nodes go ----------------------------------------------------------------

def test_the_lowest_nodes_over_all_layers_go_with_the_weights_reading_them():
    # scores (2, 4.5) and (8, 1.5); half of the 4 nodes go: layer 2's node 1 (1.5), layer 1's node 0 (2)
    net = hand_network()
    keep_top_nodes(net, node_elasticity(net, [A]), 0.5, X)
    assert masks(net) == [[[False, False], [True, True]],  # the network's inputs are never cut
                          [[False, True], [False, False]],  # column 0 reads the pruned node 0
                          [[True, False], [True, False]]]  # the classes stay; column 1 read node 1
    assert net[2].weight.tolist() == [[1.0, 0.0], [2.0, 0.0]] and node_sparsity(net) == 0.5


def test_a_layer_that_would_lose_every_node_keeps_its_best():
    # 3 of 4 would go: 1.5, 2 and 4.5, all of the first layer: its node 1 (4.5) stays
    net = hand_network()
    keep_top_nodes(net, node_elasticity(net, [A]), 0.75, X)
    assert [pruned_rows(m) for m in node_layers(net)] == [[0], [1]] and node_sparsity(net) == 0.5


def test_pruned_nodes_rank_below_every_remaining_one():
    # after the first step, node 0 of layer 1 scores 0 but stays counted: a second step to 0.5
    # prunes nothing more, one to 0.75 the lowest remaining, layer 1's node 1 being its last
    net = hand_network()
    keep_top_nodes(net, node_elasticity(net, [A]), 0.5, X)
    before = masks(net)
    keep_top_nodes(net, node_elasticity(net, [A]), 0.5, X)
    assert masks(net) == before
    keep_top_nodes(net, node_elasticity(net, [A]), 0.75, X)
    assert [pruned_rows(m) for m in node_layers(net)] == [[0], [1]]


def small_conv6_and_batches():
    """Conv6 of the paper's blocks (models.snipit), narrower: convolutions of 8, 8, 16 and 16
    filters, pooled to 3 x 3, a hidden linear layer of 12 units and 10 classes."""
    torch.manual_seed(1)
    net = ConvNet(conv_stack(1, (8, 8, "M", 16, 16)), 3, classifier(16 * 9, (12,), 10))
    return net, [(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))) for _ in range(7)]


def test_snap_it_prunes_along_snip_its_schedule_to_the_goal_and_the_network_computes_as_the_smaller_one():
    net, batches = small_conv6_and_batches()
    method = with_batches(make_method("snap-it", {"score_batches": 1}, goal=0.9), *batches)
    assert method.structured
    event = method.prune(net, 0.9)
    layers = node_layers(net)
    n = sum(m.weight.shape[0] for m in layers)
    assert node_sparsity(net) == pytest.approx(round(0.9 * n) / n, abs=len(layers) / n)
    assert event.sparsity == 0.9 and all(len(pruned_rows(m)) < m.weight.shape[0] for m in layers)
    first, classifier = layers[0], prunable_modules(net)[-1]
    kept = mask_of(first).flatten(1).any(dim=1)
    assert mask_of(first)[kept].all() and not pruned_rows(classifier)
    # the first linear layer reads the last convolution's channels at 3 x 3 pooled positions
    last_conv, linear = layers[3], layers[4]
    read = mask_of(linear).view(linear.weight.shape[0], -1, 9).any(dim=(0, 2))
    assert torch.equal(read, mask_of(last_conv).flatten(1).any(dim=1))
    # nothing reads a pruned node: its bias and BatchNorm shift change no output
    net.eval()
    inputs = batches[0][0]
    out = net(inputs)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Conv2d, nn.Linear)) and module.bias is not None:
                module.bias.add_(torch.randn_like(module.bias) * ~channel_alive(net, module))
    assert torch.allclose(net(inputs), out, atol=1e-6)


def channel_alive(net, module) -> torch.Tensor:
    """For a prunable layer, or the BatchNorm after it, which of its output units remain."""
    modules = list(net.modules())
    layer = module if module in prunable_modules(net) else modules[modules.index(module) - 1]
    if layer is prunable_modules(net)[-1]:
        return torch.ones(layer.weight.shape[0], dtype=torch.bool)
    return mask_of(layer).flatten(1).any(dim=1)


def test_snap_it_during_training_prunes_its_nodes_after_the_pruning_epochs():
    net = hand_network()
    method = with_batches(make_method("snap-it", {"timing": "during", "score_batches": 1, "steps": 0}, goal=0.75,
                                      epochs=20), A)
    assert method.pruning_epochs() == {8: 0.5, 12: 0.75}
    method.end_epoch(net, 7)
    assert node_sparsity(net) == 0
    method.end_epoch(net, 8)
    assert [pruned_rows(m) for m in node_layers(net)] == [[0], [1]]


def test_snap_it_refuses_a_goal_below_its_first_step():
    with pytest.raises(ConfigError, match="snap-it's schedule prunes half first") as error:
        make_method("snap-it", goal=0.4).phases()
    assert error.value.key == "goal_sparsity"


# --- EfficientConvNets ----------------------------------------------------------------------

def efficient_network() -> nn.Sequential:
    """A width-2 convolution over a length-2 input (3 filters, one output position each), a
    hidden linear layer of 3 units and 2 classes.

    filters        L1          hidden rows          L1    without column 1
    f0 = [1, -1]   2           r0 = [0.1, 4, 0.1]   4.2   0.2
    f1 = [.5, .5]  1           r1 = [1, 0.2, 1]     2.2   2
    f2 = [3, 0]    3           r2 = [.5, 1, -2]     3.5   2.5
    """
    net = nn.Sequential(nn.Conv1d(1, 3, 2), nn.BatchNorm1d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3, 3),
                        nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 0.5], [3.0, 0.0]]).view(3, 1, 2))
        net[4].weight.copy_(torch.tensor([[0.1, 4.0, 0.1], [1.0, 0.2, 1.0], [0.5, 1.0, -2.0]]))
        net[7].weight.fill_(1.0)
    return net


def test_efficient_convnets_prunes_every_layer_by_the_l1_norms_of_the_trained_nodes():
    # round(1/3 * 3) = 1 node per layer: f1 (1) and r1 (2.2), ranked on the whole rows; r0 would
    # go (0.2) were the norms taken after the columns reading f1 are cut
    net = efficient_network()
    method = with_batches(make_method("efficient-convnets", {"finetune_epochs": 1}, goal=1 / 3), (torch.ones(4, 1, 2),))
    event = method.prune(net, 1 / 3)
    assert [pruned_rows(m) for m in prunable_modules(net)] == [[1], [1], []]
    assert masks(net)[1] == [[True, False, True], [False, False, False], [True, False, True]]
    assert masks(net)[2] == [[True, False, True], [True, False, True]]
    assert node_sparsity(net) == pytest.approx(1 / 3) and event.sparsity == pytest.approx(1 / 3)


def test_efficient_convnets_keeps_a_node_in_every_layer():
    # round(0.9 * 3) = 3 would empty each layer: 2 go, the largest L1 stays (f2, r0)
    net = efficient_network()
    with_batches(make_method("efficient-convnets", {"finetune_epochs": 1}, goal=0.9), (torch.ones(4, 1, 2),)).prune(
        net, 0.9)
    assert [pruned_rows(m) for m in node_layers(net)] == [[0, 1], [1, 2]]


def test_efficient_convnets_trains_prunes_once_and_fine_tunes_on_the_training_schedule():
    # the authors' 80 epochs: after 71 the step, 9 of fine-tuning with a fresh optimizer
    schedule = {"kind": "stepped", "milestones": [75], "gamma": 0.1}
    method = make_method("efficient-convnets", {"finetune_epochs": 9}, goal=0.9, epochs=80, lr=0.1,
                         lr_schedule=schedule)
    train, finetune = method.phases()
    assert (train.name, train.epochs, train.prunes) == ("train", 71, False)
    assert (finetune.epochs, finetune.prunes, finetune.sparsity, finetune.keeps_optimizer) == (9, True, 0.9, False)
    lr = finetune.schedule(None)
    assert lr(0) == pytest.approx(0.1) and lr(3.99) == pytest.approx(0.1) and lr(4) == pytest.approx(0.01)


def test_efficient_convnets_refuses_a_fine_tuning_as_long_as_the_budget():
    with pytest.raises(ConfigError) as error:
        make_method("efficient-convnets", {"finetune_epochs": 2}, goal=0.9, epochs=2).phases()
    assert error.value.key == "finetune_epochs"


def test_structured_random_drops_ceil_kappa_n_random_nodes_per_layer_and_never_a_whole_layer():
    # ceil(0.5 * 3) = 2 of each layer's 3 nodes; at 0.9, ceil(2.7) = 3 would empty it: one stays
    for goal, kept in ((0.5, 1), (0.9, 1), (0.2, 2)):
        net = efficient_network()
        with_batches(make_method("structured-random", goal=goal), (torch.ones(4, 1, 2),)).prune(net, goal)
        assert [3 - len(pruned_rows(m)) for m in node_layers(net)] == [kept, kept]
        assert not pruned_rows(net[7])
    torch.manual_seed(0)
    draws = {tuple(k.tolist()) for _ in range(40) for k in random_keeps([3], 1 / 3)}
    assert draws == {(False, True, True), (True, False, True), (True, True, False)}


# --- through the loop ------------------------------------------------------------------------

@pytest.mark.parametrize("name, hp", [("snap-it", {"score_batches": 1}), ("efficient-convnets", {"finetune_epochs": 1}),
                                      ("structured-random", {})])
def test_node_pruning_runs_through_the_loop_to_the_goal_counting_the_smaller_network(train_tiny, name, hp):
    result = train_tiny(name, hp, goal=0.5, epochs=2)
    net = build_model("resnet1d", 10, 1)
    load_state(net, result.state_dict)
    record, n = result.record, sum(m.weight.shape[0] for m in node_layers(net))
    assert record["status"] == "ok" and node_sparsity(net) == pytest.approx(0.5, abs=math.ceil(0.5 * 7) / n)
    assert not pruned_rows(net.fc)
    example = torch.randn(1, 1, 40)
    dense, structured = flops(net, example, structured=True)
    assert record["theoretical_speedup"] == pytest.approx(dense / structured)


# --- the smaller network's FLOPs and weights -----------------------------------------------

def conv_linear_network() -> nn.Sequential:
    """A 3x3 convolution (1 -> 3, padding 1) on 4 x 4 inputs, BatchNorm, pooled to 2 x 2 and
    flattened into a hidden linear layer (12 -> 4) with BatchNorm, and 2 classes."""
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.LeakyReLU(0.05), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(12, 4), nn.BatchNorm1d(4), nn.LeakyReLU(0.05), nn.Linear(4, 2))


def test_a_node_pruned_network_counts_the_flops_and_weights_of_the_smaller_network():
    # Dense: conv 1 * 3 * 9 * 16 positions = 432, hidden 12 * 4 = 48, output 4 * 2 = 8; 488.
    # Filter 1 and hidden unit 2 gone, the smaller network is a conv 1 -> 2 (288), a hidden
    # layer 8 -> 3 (24: 2 channels at 4 pooled positions) and an output layer 3 -> 2 (6); 318.
    # Its weights: 18 + 24 + 6 = 48 of 27 + 48 + 8 = 83.
    net, example = conv_linear_network(), torch.randn(1, 1, 4, 4)
    with torch.no_grad():
        net[0].weight[1] = 0
        net[5].weight[2] = 0
    assert flops(net, example, structured=True) == (488, pytest.approx(318.0))
    # each layer by its own density: 288 + 3 * 12 + 8 = 332
    assert flops(net, example) == (488, pytest.approx(332.0))
    keep_top_nodes(net, [torch.tensor([3.0, 1.0, 2.0]), torch.tensor([4.0, 3.0, 1.0, 2.0])], 2 / 7, example)
    assert [pruned_rows(m) for m in node_layers(net)] == [[1], [2]]
    report = sparsity_report(net, example, structured=True)
    assert report["theoretical_speedup"] == pytest.approx(488 / 318) and flops(net, example)[1] == pytest.approx(318)
    assert report["sparsity"] == pytest.approx(35 / 83) and report["compression_ratio"] == pytest.approx(83 / 48)


def test_a_resnet18_channel_is_dead_only_when_the_block_and_its_shortcut_lose_its_filter():
    # 32 x 32 inputs: the second stage's blocks work on 4 x 4. Its first block's conv2 filter 5
    # (128 * 9 * 16 = 18432) and shortcut filter 5 (64 * 16 = 1024) gone, channel 5 of the
    # block's output is a constant, and the next block's conv1 loses the column reading it
    # (128 * 9 * 16 = 18432); with the shortcut's filter kept, only the conv2 filter's own.
    net, example = build_model("snipit-resnet18", 10, 3), torch.randn(1, 3, 32, 32)
    block, after = net.features[6], net.features[7]
    assert (block.conv2.out_channels, after.conv1.in_channels) == (128, 128)
    dense, full = flops(net, example, structured=True)
    with torch.no_grad():
        block.conv2.weight[5] = 0
    assert full - flops(net, example, structured=True)[1] == pytest.approx(18432)
    with torch.no_grad():
        block.shortcut[0].weight[5] = 0
    assert full - flops(net, example, structured=True)[1] == pytest.approx(18432 + 1024 + 18432)
