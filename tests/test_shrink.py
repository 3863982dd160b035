"""Node-pruned models physically shrunk (bench.shrink): same outputs, the smaller network's
parameters and FLOPs; and the dense FLOP count against ptflops'."""

import math

import pytest
import torch
from ptflops import get_model_complexity_info
from ptflops.flops_counter import FLOPS_BACKEND
from torch import nn

import bench.shrink
from bench.metrics import flops
from bench.shrink import shrink
from methods.core.masks import PRUNABLE_TYPES, mask_of, prunable_modules
from methods.core.nodes import forward_with_hooks, keep_nodes, live_inputs, node_layers
from models import build_model
from models.snipit import ConvNet, classifier, conv_stack

# model: its input (channels, height, width), and for a residual network the ends of the names of
# the layers that write its residual sums and of those that read them
MODELS = {
    "snipit-lenet5": ((1, 28, 28), None),
    "snipit-mlp5-8x8": ((1, 8, 8), None),
    "snipit-conv6": ((1, 8, 8), None),
    "snipit-vgg16": ((3, 16, 16), None),
    "snipit-alexnet": ((3, 8, 8), None),
    "snipit-resnet18": ((3, 8, 8), (("features.0", "conv2", "shortcut.0"), ("conv1", "shortcut.0", "head.1"))),
    "resnet20": ((3, 8, 8), (("stem.0", "conv2", "shortcut.0"), ("conv1", "shortcut.0", "fc"))),
    "resnet1d": ((1, 40), (("stem.0", "conv2"), ("conv1", "fc"))),
}
# the model's name as a test parameter, VGG-16's (tens of seconds) marked slow
NAMES = [pytest.param(name, marks=pytest.mark.slow) if name == "snipit-vgg16" else name for name in MODELS]


@pytest.fixture
def unscaled(monkeypatch):
    """Skip the SNIP-it models' orthogonal initialisation (seconds for a 4096 x 4096 layer):
    the weights keep torch's default random ones."""
    monkeypatch.setattr(nn.init, "orthogonal_", lambda tensor, gain=1: tensor)


@torch.no_grad()
def node_masked(name: str, shape: tuple[int, ...], keep: float = 0.4):
    """Model ``name`` with random BatchNorm statistics and affine parameters, each node kept with
    probability ``keep`` (a layer's best-scored one at least) as the structured methods prune:
    ``keep_nodes``, which also cuts the weights reading removed nodes; and an input batch."""
    torch.manual_seed(0)
    model, example = build_model(name, 10, shape[0]), torch.randn(4, *shape)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2)
            module.weight.normal_()
            module.bias.normal_()
    layers = node_layers(model)
    keep_nodes(model, [torch.rand(m.weight.shape[0]) < keep for m in layers], example,
               [torch.rand(m.weight.shape[0]) for m in layers])
    return model.eval(), example


def nonzero_weights(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(m.weight)) for m in prunable_modules(model))


def zero_rows(module: nn.Module) -> int:
    return int((~module.weight.flatten(1).any(dim=1)).sum())


def zero_columns(module: nn.Module) -> int:
    return int((~module.weight.transpose(0, 1).flatten(1).any(dim=1)).sum())


def surviving_parameters(masked: nn.Module, example: torch.Tensor) -> list[int]:
    """Per prunable layer, the parameters of its surviving units: its remaining nodes (every
    unit of the last layer) times its live inputs, their biases, and the BatchNorm after it."""
    live, nodes = live_inputs(masked, example), node_layers(masked)
    counts, kept = [], 0
    for module in masked.modules():
        if isinstance(module, PRUNABLE_TYPES):
            kept = int(mask_of(module).flatten(1).any(dim=1).sum()) if module in nodes else module.weight.shape[0]
            per_input = math.prod(module.weight.shape[2:])
            counts.append(kept * int(live[module].sum()) * per_input + (kept if module.bias is not None else 0))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            counts[-1] += 2 * kept
    return counts


def layer_parameters(model: nn.Module) -> list[int]:
    """Per prunable layer, its parameters and those of the BatchNorm after it."""
    counts = []
    for module in model.modules():
        if isinstance(module, PRUNABLE_TYPES):
            counts.append(sum(p.numel() for p in module.parameters()))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            counts[-1] += sum(p.numel() for p in module.parameters())
    return counts


def bias_additions(model: nn.Module, example: torch.Tensor) -> int:
    """One addition per output entry of each convolution or linear layer with a bias."""
    counts = []
    forward_with_hooks(model, lambda m, inputs, output: counts.append(output.numel() if m.bias is not None else 0),
                       example)
    return sum(counts)


def ptflops_count(model: nn.Module, shape: tuple[int, ...]) -> int:
    """ptflops' count with its aten backend, which counts the convolutions and matrix products
    only (not BatchNorm, activations or pooling), layers1d's products included, and adds one
    per biased output."""
    macs, _ = get_model_complexity_info(model, shape, as_strings=False, print_per_layer_stat=False,
                                        backend=FLOPS_BACKEND.ATEN)
    return macs


@pytest.mark.parametrize("name", NAMES)
def test_a_shrunk_model_computes_as_the_masked_one_with_the_smaller_networks_weights_and_flops(unscaled, name):
    shape, sums = MODELS[name]
    masked, example = node_masked(name, shape)
    shrunk = shrink(masked, example)
    with torch.no_grad():
        assert torch.allclose(shrunk(example), masked(example), rtol=1e-4, atol=1e-5)
    assert not any(hasattr(m, "weight_mask") for m in shrunk.modules()) and not shrunk.training
    assert [type(m) for m in shrunk.modules()] == [type(m) for m in masked.modules()]
    assert sum(layer_parameters(shrunk)) == sum(p.numel() for p in shrunk.parameters())
    assert nonzero_weights(shrunk) == nonzero_weights(masked)
    structured = flops(masked, example, structured=True)[1]
    assert flops(shrunk, example, structured=True)[1] == pytest.approx(structured)
    assert flops(shrunk, example)[0] + bias_additions(shrunk, example[:1]) == ptflops_count(shrunk, shape)
    if sums is None:
        assert layer_parameters(shrunk) == surviving_parameters(masked, example)
        assert flops(shrunk, example)[0] == pytest.approx(structured)
    else:  # the sums keep pruned nodes and dead inputs as zero rows and columns, and lose the channels no summand writes
        writers, readers = sums
        layers = dict(zip(prunable_modules(shrunk), prunable_modules(masked)))
        named = [(n, m) for n, m in shrunk.named_modules() if m in layers]
        assert any(zero_rows(m) for _, m in named) and all(n.endswith(writers) for n, m in named if zero_rows(m))
        assert any(zero_columns(m) for _, m in named) and all(n.endswith(readers) for n, m in named if zero_columns(m))
        assert any(m.weight.shape[0] < layers[m].weight.shape[0] for n, m in named if n.endswith(writers))
        assert sum(layer_parameters(shrunk)) > sum(surviving_parameters(masked, example))


@pytest.mark.parametrize("name", NAMES)
def test_the_dense_flops_are_ptflops_multiply_adds_of_the_convolutions_and_matrix_products(unscaled, name):
    shape = MODELS[name][0]
    model, example = build_model(name, 10, shape[0]), torch.randn(1, *shape)
    assert flops(model, example)[0] + bias_additions(model, example) == ptflops_count(model, shape)


def test_a_copy_that_computes_otherwise_than_the_masked_model_is_refused(monkeypatch):
    torch.manual_seed(0)
    model = ConvNet(conv_stack(1, (8, 8, "M", 16)), 3, classifier(16 * 9, (12,), 10))
    monkeypatch.setattr(bench.shrink, "dead_channels", lambda graph, group, pruned: [0])  # live channels too
    with pytest.raises(ValueError, match="does not compute what the node-masked model does"):
        shrink(model, torch.randn(4, 1, 8, 8))
