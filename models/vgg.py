"""VGG-16 and VGG-19 with BatchNorm for 32x32 inputs (Simonyan & Zisserman 2015,
configurations D and E).

The 13 3x3 convs (each followed by BN and ReLU) and 5 max-pools of VGG-16 reduce a 32x32
image to 512 x 1 x 1. The classifier is a single linear layer 512 -> classes, the usual
CIFAR adaptation (as in Frankle & Carbin 2019 and Liu et al. 2019) in place of ImageNet's
three 4096-wide layers, which would hold most of the weights at this input size. VGG-19
(16 convs) is AIMP's network (Zullich et al. 2021, section V): the same, with no hidden
fully-connected layer and BatchNorm before every ReLU.

``vgg1d`` is the same plain (shortcut-free) stack of 13 convs and 5 max-pools for MNIST-1D's
40-sample signals, a quarter as wide (16 to 128 channels, width-3 kernels, 0.3M weights): a
deep narrow network in which layer collapse shows on a CPU (Back to Basics, Figure 8), since
a layer emptied by pruning cuts every path from input to output. Trained 24 epochs, global
one-shot pruning to 99.8% empties its last five convolutions, pruning in five cycles none.
"""

from torch import Tensor, nn

from . import init_conv_weights, register, layers1d

# Output channels per conv; "M" is a 2x2 max-pool.
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG19_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
LAYERS_2D = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
LAYERS_1D = (layers1d.Conv1d, layers1d.BatchNorm1d, nn.MaxPool1d)


class VGG(nn.Module):
    def __init__(self, layers: tuple, num_classes: int, in_channels: int, kinds: tuple = LAYERS_2D):
        super().__init__()
        conv, norm, pool = kinds
        modules, channels = [], in_channels
        for layer in layers:
            if layer == "M":
                modules.append(pool(2))
            else:
                modules += [conv(channels, layer, 3, padding=1, bias=False), norm(layer), nn.ReLU(inplace=True)]
                channels = layer
        self.features = nn.Sequential(*modules)
        self.classifier = nn.Linear(channels, num_classes)
        init_conv_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


@register("vgg16")
def vgg16(num_classes: int, in_channels: int) -> nn.Module:
    return VGG(VGG16_LAYERS, num_classes, in_channels)


@register("vgg19")
def vgg19(num_classes: int, in_channels: int) -> nn.Module:
    return VGG(VGG19_LAYERS, num_classes, in_channels)


@register("vgg1d")
def vgg1d(num_classes: int, in_channels: int) -> nn.Module:
    return VGG(tuple(layer if layer == "M" else layer // 4 for layer in VGG16_LAYERS), num_classes, in_channels,
               LAYERS_1D)
