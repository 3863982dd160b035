"""The SNIP-it networks (models/snipit.py): shapes, sizes, activation, initialisation, pruning."""

import math

import pytest
import torch
from torch import nn

from methods.core.masks import magnitude_prune, prunable_count, prunable_modules
from models import build_model, snipit

# Inputs (channels, height, width) of the datasets the networks are trained on.
DIGITS, MNIST, CIFAR, IMAGENETTE = (1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 128, 128)
SUPPORTED = {
    "snipit-lenet5": (MNIST, CIFAR, IMAGENETTE),
    "snipit-conv6": (DIGITS, MNIST, CIFAR, IMAGENETTE),
    "snipit-resnet18": (DIGITS, MNIST, CIFAR, IMAGENETTE),
    "snipit-vgg16": (MNIST, CIFAR, IMAGENETTE),
    "snipit-alexnet": (DIGITS, MNIST, CIFAR, IMAGENETTE),
    "snipit-mlp5-8x8": (DIGITS,),
    "snipit-mlp5-28x28": (MNIST,),
    "snipit-mlp5-32x32": (CIFAR,),
    "snipit-mlp5-128x128": (IMAGENETTE,),
}
GAIN_SQUARED = 2 / (1 + 0.05 ** 2)  # calculate_gain("leaky_relu", 0.05) = sqrt(2 / (1 + slope^2))


@pytest.fixture
def unscaled(monkeypatch):
    """Skip the orthogonal initialisation, which takes seconds for a 4096x4096 layer (QR of
    the matrix), in tests of what does not depend on the weights' values."""
    monkeypatch.setattr(nn.init, "orthogonal_", lambda tensor, gain=1: tensor)


@pytest.mark.parametrize("name", SUPPORTED)
def test_forward_shape_on_every_supported_input(unscaled, name):
    for channels in sorted({shape[0] for shape in SUPPORTED[name]}):
        model = build_model(name, 10, channels).eval()
        for shape in (s for s in SUPPORTED[name] if s[0] == channels):
            with torch.no_grad():
                assert model(torch.randn(2, *shape)).shape == (2, 10), shape


@pytest.mark.parametrize("name", ["snipit-lenet5", "snipit-vgg16"])
def test_networks_that_need_larger_images_refuse_the_8x8_digits(unscaled, name):
    with pytest.raises(RuntimeError), torch.no_grad():
        build_model(name, 10, 1).eval()(torch.randn(2, *DIGITS))


def test_mlp5_names_its_input_shape_when_given_another():
    with pytest.raises(ValueError, match=r"snipit-mlp5-8x8 takes inputs of shape \(1, 8, 8\), got \(1, 28, 28\)"):
        build_model("snipit-mlp5-8x8", 10, 1)(torch.randn(2, *MNIST))


# Parameter counts by hand from the layer sizes (the paper states none), 10 classes.
def conv(i, o, k, bias=True):
    return i * o * k * k + (o if bias else 0)


def bn(n):  # weight and bias
    return 2 * n


def linear(i, o):
    return i * o + o


def block(i, o):  # ResNet18 basic block; a 1x1 shortcut without bias where the width changes
    return conv(i, o, 3) + bn(o) + conv(o, o, 3) + bn(o) + (conv(i, o, 1, bias=False) + bn(o) if i != o else 0)


def vgg16_convs(c):
    widths = (c, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 1024)
    return sum(conv(i, o, 3) + bn(o) for i, o in zip(widths, widths[1:]))


@pytest.mark.parametrize("name, channels, count", [
    # conv 5x5 to 6, 16, 120; 120 x 3 x 3 -> 84 -> 10: 142,798
    ("snipit-lenet5", 1, conv(1, 6, 5) + bn(6) + conv(6, 16, 5) + bn(16) + conv(16, 120, 5) + bn(120)
     + linear(1080, 84) + bn(84) + linear(84, 10)),
    # 784 -> 512 -> 512 -> 512 -> 512 -> 10: 1,199,114
    ("snipit-mlp5-28x28", 1, linear(784, 512) + bn(512) + 3 * (linear(512, 512) + bn(512)) + linear(512, 10)),
    # 3072 -> 512 ...: 2,370,570
    ("snipit-mlp5-32x32", 3, linear(3072, 512) + bn(512) + 3 * (linear(512, 512) + bn(512)) + linear(512, 10)),
    # conv 3x3 to 64, 64, 128, 128, 256, 256; 256 x 3 x 3 -> 256 -> 256 -> 10: 1,806,666
    ("snipit-conv6", 3, conv(3, 64, 3) + bn(64) + conv(64, 64, 3) + bn(64) + conv(64, 128, 3) + bn(128)
     + conv(128, 128, 3) + bn(128) + conv(128, 256, 3) + bn(256) + conv(256, 256, 3) + bn(256)
     + linear(2304, 256) + bn(256) + linear(256, 256) + bn(256) + linear(256, 10)),
    # 7x7 stem without bias, 2 blocks each of 64, 128, 256, 512; 512 x 2 x 2 -> 256 -> 10: 11,707,978
    ("snipit-resnet18", 3, conv(3, 64, 7, bias=False) + bn(64) + block(64, 64) + block(64, 64)
     + block(64, 128) + block(128, 128) + block(128, 256) + block(256, 256) + block(256, 512) + block(512, 512)
     + linear(2048, 256) + bn(256) + linear(256, 10)),
    # 13 convs 3x3 (the last to 1024); 1024 x 2 x 2 -> 4096 -> 4096 -> 10: 50,703,946
    ("snipit-vgg16", 3, vgg16_convs(3) + linear(4096, 4096) + bn(4096) + linear(4096, 4096) + bn(4096)
     + linear(4096, 10)),
    # conv 5x5 to 64, 192, 3x3 to 384, 256, 512; 512 x 2 x 2 -> 4096 -> 4096 -> 10: 28,272,330
    ("snipit-alexnet", 1, conv(1, 64, 5) + bn(64) + conv(64, 192, 5) + bn(192) + conv(192, 384, 3) + bn(384)
     + conv(384, 256, 3) + bn(256) + conv(256, 512, 3) + bn(512)
     + linear(2048, 4096) + bn(4096) + linear(4096, 4096) + bn(4096) + linear(4096, 10)),
])
def test_parameter_counts(unscaled, name, channels, count):
    assert sum(p.numel() for p in build_model(name, 10, channels).parameters()) == count


@pytest.mark.parametrize("name, linears", [("snipit-lenet5", 2), ("snipit-mlp5-8x8", 5), ("snipit-conv6", 3),
                                           ("snipit-resnet18", 2), ("snipit-vgg16", 3), ("snipit-alexnet", 3)])
def test_activations_are_leaky_relu_with_slope_5_percent_and_dropout_30_percent(unscaled, name, linears):
    model = build_model(name, 10, 1)
    activations = [m for m in model.modules() if type(m).__module__ == "torch.nn.modules.activation"]
    assert activations and {(type(m), m.negative_slope) for m in activations} == {(nn.LeakyReLU, 0.05)}
    dropouts = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    # Dropout before every linear layer but MLP5's first.
    assert dropouts == [0.3] * (linears - (name == "snipit-mlp5-8x8"))
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == linears


def assert_orthogonal(weight, gain_squared):
    """Rows (or, for a tall matrix, columns) of the flattened weight orthogonal with squared norm gain^2."""
    w = weight.detach().flatten(1)
    product = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    torch.testing.assert_close(product, gain_squared * torch.eye(len(product)), atol=1e-4, rtol=0)


def test_weights_are_orthogonal_scaled_for_the_leaky_relu_and_the_output_layer_unscaled():
    mlp = build_model("snipit-mlp5-8x8", 10, 1)
    first, *hidden, output = prunable_modules(mlp)
    assert first.weight.shape == (512, 64) and output.weight.shape == (10, 512)
    assert_orthogonal(first.weight, GAIN_SQUARED)  # tall: W^T W = gain^2 I_64
    for layer in hidden:
        assert_orthogonal(layer.weight, GAIN_SQUARED)
    assert_orthogonal(output.weight, 1.0)
    lenet = build_model("snipit-lenet5", 10, 1)
    for layer in prunable_modules(lenet)[:-1]:  # (6, 25), (16, 150), (120, 400), (84, 1080)
        assert_orthogonal(layer.weight, GAIN_SQUARED)
    block = snipit.BasicBlock(64, 128, downsample=True)
    for layer in (block.conv1, block.conv2, block.shortcut[0]):  # (128, 576), (128, 1152), tall (128, 64)
        assert_orthogonal(layer.weight, GAIN_SQUARED)


def test_biases_keep_the_default_uniform_draw_and_batch_norm_starts_at_identity():
    torch.manual_seed(0)
    model = build_model("snipit-lenet5", 10, 1)
    for layer in prunable_modules(model):
        bound = 1 / math.sqrt(layer.weight[0].numel())  # 1 / sqrt(fan_in)
        assert layer.bias.abs().max() <= bound and layer.bias.abs().max() > bound / 4
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert len(norms) == 4 and all((m.weight == 1).all() and (m.bias == 0).all() for m in norms)


def test_prunable_layers_are_the_convolutions_and_linear_layers():
    model = build_model("snipit-lenet5", 10, 1)
    modules = prunable_modules(model)
    assert [tuple(m.weight.shape) for m in modules] == [(6, 1, 5, 5), (16, 6, 5, 5), (120, 16, 5, 5), (84, 1080),
                                                        (10, 84)]
    # 150 + 2,400 + 48,000 + 90,720 + 840 weights; biases and BatchNorm are not prunable.
    assert prunable_count(model) == 142_110
    magnitude_prune(model, 0.9)
    assert sum(int((m.weight == 0).sum()) for m in modules) == round(0.9 * 142_110)
    with torch.no_grad():
        assert model.eval()(torch.randn(2, *MNIST)).shape == (2, 10)


def test_resnet18_has_its_22_prunable_layers(unscaled):
    # Stem, 16 block convolutions, 3 shortcuts, 2 linear layers.
    kinds = [type(m) for m in prunable_modules(build_model("snipit-resnet18", 10, 3))]
    assert kinds == [nn.Conv2d] * 20 + [nn.Linear] * 2
