import pytest
import torch

from schema import ConfigError
from models import MODELS, build_model


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, num_classes, in_channels, input_shape", [
    ("resnet1d", 10, 1, (2, 1, 40)),
    ("resnet20", 10, 3, (2, 3, 32, 32)),
    ("resnet32", 100, 3, (2, 3, 32, 32)),
    ("resnet44", 10, 3, (2, 3, 32, 32)),
    ("resnet56", 10, 3, (2, 3, 32, 32)),
    ("resnet110", 10, 3, (2, 3, 32, 32)),
    ("resnet18", 10, 3, (2, 3, 32, 32)),
    ("vgg16", 100, 3, (2, 3, 32, 32)),
    ("vgg19", 10, 3, (2, 3, 32, 32)),
    ("vgg1d", 10, 1, (2, 1, 40)),
    ("wrn28x10", 100, 3, (1, 3, 32, 32)),
])
def test_forward_shape(name, num_classes, in_channels, input_shape):
    model = build_model(name, num_classes, in_channels).eval()
    with torch.no_grad():
        assert model(torch.randn(input_shape)).shape == (input_shape[0], num_classes)


@pytest.mark.parametrize("name", ["resnet34", "resnet50"])
def test_imagenet_resnets_build_offline_and_take_other_channel_counts(name):
    model = build_model(name, 10, 1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 10)


@pytest.mark.parametrize("name, num_classes, millions", [
    ("resnet20", 10, 0.27),
    ("resnet56", 10, 0.85),
    ("resnet110", 10, 1.7),
    ("resnet18", 10, 11.17),  # the CIFAR ResNet-18: 11,173,962
    ("resnet34", 1000, 21.8),
    ("resnet50", 1000, 25.6),
    ("wrn28x10", 10, 36.5),
    ("vgg19", 10, 20.0),  # Frankle & Carbin's VGG-19 for CIFAR-10: 20M weights
])
def test_parameter_counts_match_the_papers(name, num_classes, millions):
    count = parameter_count(build_model(name, num_classes, 3))
    assert count == pytest.approx(millions * 1e6, rel=0.03)


def test_resnet1d_has_enough_weights_to_survive_extreme_sparsity():
    model = build_model("resnet1d", 10, 1)
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear)))
    assert 50_000 <= weights <= 110_000


def test_every_model_is_registered():
    assert set(MODELS) == {"resnet1d", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                           "resnet18", "wrn28x10", "vgg16", "vgg19", "vgg1d", "resnet34", "resnet50",
                           "snipit-lenet5", "snipit-conv6", "snipit-resnet18", "snipit-vgg16", "snipit-alexnet",
                           "snipit-mlp5-8x8", "snipit-mlp5-28x28", "snipit-mlp5-32x32", "snipit-mlp5-128x128"}


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(ConfigError, match="unknown model 'resnet5'.*did you mean 'resnet5[06]'"):
        build_model("resnet5", 10, 3)
    with pytest.raises(ConfigError, match="did you mean 'wrn28x10'"):
        build_model("wrn", 10, 3)


@pytest.mark.parametrize("kernel, stride, padding, bias", [(3, 1, 1, False), (3, 2, 1, False), (5, 2, 2, True),
                                                           (1, 1, 0, True)])
def test_1d_layers_as_matrix_products_match_the_builtin_ones(kernel, stride, padding, bias):
    from models import layers1d

    torch.manual_seed(0)
    conv = layers1d.Conv1d(6, 4, kernel, stride, padding=padding, bias=bias)
    norm = layers1d.BatchNorm1d(4)
    builtin_conv = torch.nn.Conv1d(6, 4, kernel, stride, padding=padding, bias=bias)
    builtin_conv.load_state_dict(conv.state_dict())
    builtin_norm = torch.nn.BatchNorm1d(4)
    x = torch.randn(5, 6, 11)
    ours, theirs = norm(conv(x)), builtin_norm(builtin_conv(x))
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    ours.square().sum().backward()
    theirs.square().sum().backward()
    torch.testing.assert_close(conv.weight.grad, builtin_conv.weight.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(norm.running_var, builtin_norm.running_var)
    assert int(norm.num_batches_tracked) == 1
    norm.eval(), builtin_norm.eval()
    torch.testing.assert_close(norm(conv(x)), builtin_norm(builtin_conv(x)), atol=1e-5, rtol=1e-5)


def test_1d_conv_as_a_matrix_product_refuses_what_it_does_not_compute():
    from models import layers1d

    with pytest.raises(ValueError, match="groups"):
        layers1d.Conv1d(4, 4, 3, groups=2)
