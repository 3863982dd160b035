"""The networks of SNIP-it (Verdenius, Stol & Forré 2020, appendix L): LeNet5, MLP5, Conv6,
ResNet18, VGG16 and AlexNet as the paper alters them, registered as ``snipit-<network>``.

Every network uses LeakyReLU with slope 0.05, BatchNorm after every convolution and hidden
linear layer, and dropout 0.3 before every linear layer but MLP5's first. Convolutional
features end in an adaptive average pooling to a fixed grid (3x3 for LeNet5 and Conv6, 2x2
for the others), so the classifier's size does not depend on the input's. Weights are
orthogonal (section 4, after Lee et al. 2020), scaled by the gain of the LeakyReLU,
sqrt(2 / (1 + 0.05^2)); the output layer has gain 1. Biases keep PyTorch's default
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and BatchNorm its ones and zeros.

The appendix lists the layers; where it is silent the authors' code decides
(StijnVerdenius/SNIP-it, models/networks/{LeNet5,MLP5,Conv6,ResNet18,VGG16,AlexNet}.py,
assisting_layers/ResNetLayers.py BasicBlock and ContainerLayers.py reset_parameters):
the output layer's gain of 1, the bias initialisation, the biases of the ResNet18 blocks'
3x3 convolutions (the stem and the 1x1 shortcuts have none), and MLP5's width of 512
(utils/autoconfig.json).

Input sizes (square images, any number of channels): LeNet5 takes sides from 28 (its third
5x5 convolution needs a 5x5 map), VGG16 from 16 (four 2x2 max-pools), AlexNet from 7,
Conv6 from 4, ResNet18 any; so 8x8 digits suit all but LeNet5 and VGG16. MLP5 flattens its
input, so its first layer fixes the size: it is registered once per dataset resolution
(``snipit-mlp5-8x8`` digits, ``-28x28`` MNIST, ``-32x32`` CIFAR, ``-128x128`` Imagenette).
"""

from functools import partial

from torch import Tensor, nn

from . import register

LEAK = 0.05
GAIN = nn.init.calculate_gain("leaky_relu", LEAK)
DROPOUT = 0.3
MLP5_WIDTH = 512
MLP5_SIDES = (8, 28, 32, 128)


def orthogonal(layer: nn.Module, gain: float = GAIN) -> nn.Module:
    """``layer`` with an orthogonal weight scaled by ``gain``."""
    nn.init.orthogonal_(layer.weight, gain)
    return layer


def conv_block(in_channels: int, out_channels: int, kernel: int, padding: int = 0, stride: int = 1,
               bias: bool = True) -> list[nn.Module]:
    """Convolution, BatchNorm, LeakyReLU."""
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=bias)
    return [orthogonal(conv), nn.BatchNorm2d(out_channels), nn.LeakyReLU(LEAK)]


def classifier(in_features: int, hidden: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Dropout, linear, BatchNorm and LeakyReLU for each width in ``hidden``, then dropout and
    the output layer."""
    layers, features = [], in_features
    for width in hidden:
        layers += [nn.Dropout(DROPOUT), orthogonal(nn.Linear(features, width)), nn.BatchNorm1d(width),
                   nn.LeakyReLU(LEAK)]
        features = width
    return nn.Sequential(*layers, nn.Dropout(DROPOUT), orthogonal(nn.Linear(features, num_classes), gain=1.0))


class ConvNet(nn.Module):
    """``features``, an adaptive average pooling to ``grid`` x ``grid``, flattened into ``head``."""

    def __init__(self, features: list[nn.Module], grid: int, head: nn.Sequential):
        super().__init__()
        self.features = nn.Sequential(*features, nn.AdaptiveAvgPool2d(grid))
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


def conv_stack(in_channels: int, layers: tuple) -> list[nn.Module]:
    """3x3 convolution blocks with ``layers`` output channels; "M" is a 2x2 max-pool."""
    modules, channels = [], in_channels
    for layer in layers:
        if layer == "M":
            modules.append(nn.MaxPool2d(2))
        else:
            modules += conv_block(channels, layer, 3, padding=1)
            channels = layer
    return modules


CONV6_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256)
# VGG-16's thirteen convolutions without the last max-pool, the last one widened to 1024.
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 1024)


@register("snipit-lenet5")
def lenet5(num_classes: int, in_channels: int) -> nn.Module:
    features = [*conv_block(in_channels, 6, 5, padding=2), nn.MaxPool2d(2),
                *conv_block(6, 16, 5), nn.MaxPool2d(2),
                *conv_block(16, 120, 5)]
    return ConvNet(features, 3, classifier(120 * 3 * 3, (84,), num_classes))


@register("snipit-conv6")
def conv6(num_classes: int, in_channels: int) -> nn.Module:
    return ConvNet(conv_stack(in_channels, CONV6_LAYERS), 3, classifier(256 * 3 * 3, (256, 256), num_classes))


@register("snipit-vgg16")
def vgg16(num_classes: int, in_channels: int) -> nn.Module:
    return ConvNet(conv_stack(in_channels, VGG16_LAYERS), 2, classifier(1024 * 2 * 2, (4096, 4096), num_classes))


@register("snipit-alexnet")
def alexnet(num_classes: int, in_channels: int) -> nn.Module:
    features = [*conv_block(in_channels, 64, 5, padding=2), nn.MaxPool2d(3, 2),
                *conv_block(64, 192, 5, padding=2), nn.MaxPool2d(3, 2),
                *conv_block(192, 384, 3, padding=1),
                *conv_block(384, 256, 3, padding=1),
                *conv_block(256, 512, 3, padding=1)]
    return ConvNet(features, 2, classifier(512 * 2 * 2, (4096, 4096), num_classes))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm added to the input, or, where the block halves the
    resolution and changes the width, to a strided 1x1 convolution of it with BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool):
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = orthogonal(nn.Conv2d(in_channels, out_channels, 3, stride, padding=1))
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = orthogonal(nn.Conv2d(out_channels, out_channels, 3, 1, padding=1))
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.activation = nn.LeakyReLU(LEAK)
        self.shortcut = nn.Identity()
        if downsample:
            self.shortcut = nn.Sequential(orthogonal(nn.Conv2d(in_channels, out_channels, 1, 2, bias=False)),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        out = self.activation(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.activation(out + self.shortcut(x))


@register("snipit-resnet18")
def resnet18(num_classes: int, in_channels: int) -> nn.Module:
    """ImageNet's ResNet-18 stem (7x7 stride-2 convolution, 3x3 stride-2 max-pool) and four
    stages of two blocks, 64 to 512 channels."""
    features = [*conv_block(in_channels, 64, 7, padding=3, stride=2, bias=False), nn.MaxPool2d(3, 2, padding=1)]
    channels = 64
    for width in (64, 128, 256, 512):
        features += [BasicBlock(channels, width, downsample=width != channels), BasicBlock(width, width, False)]
        channels = width
    return ConvNet(features, 2, classifier(512 * 2 * 2, (256,), num_classes))


class MLP5(nn.Module):
    """Five linear layers, four hidden ones of 512 units, on images of ``in_channels`` x
    ``side`` x ``side`` flattened."""

    def __init__(self, side: int, num_classes: int, in_channels: int):
        super().__init__()
        self.input_shape = (in_channels, side, side)
        inputs = in_channels * side * side
        self.layers = nn.Sequential(orthogonal(nn.Linear(inputs, MLP5_WIDTH)), nn.BatchNorm1d(MLP5_WIDTH),
                                    nn.LeakyReLU(LEAK), *classifier(MLP5_WIDTH, (MLP5_WIDTH,) * 3, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            side = self.input_shape[1]
            raise ValueError(f"snipit-mlp5-{side}x{side} takes inputs of shape {self.input_shape}, "
                             f"got {tuple(x.shape[1:])}; MLP5 is registered for sides {MLP5_SIDES}")
        return self.layers(x.flatten(1))


for side in MLP5_SIDES:
    register(f"snipit-mlp5-{side}x{side}")(partial(MLP5, side))
