"""VGG-16 with BatchNorm for 32x32 inputs (Simonyan & Zisserman 2015, configuration D).

The 13 3x3 convs (each followed by BN and ReLU) and 5 max-pools of VGG-16 reduce a 32x32
image to 512 x 1 x 1. The classifier is a single linear layer 512 -> classes, the usual
CIFAR adaptation (as in Frankle & Carbin 2019 and Liu et al. 2019) in place of ImageNet's
three 4096-wide layers, which would hold most of the weights at this input size.
"""

from torch import Tensor, nn

from . import init_conv_weights, register

# Output channels per conv; "M" is a 2x2 max-pool.
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    def __init__(self, layers: tuple, num_classes: int, in_channels: int):
        super().__init__()
        modules, channels = [], in_channels
        for layer in layers:
            if layer == "M":
                modules.append(nn.MaxPool2d(2))
            else:
                modules += [nn.Conv2d(channels, layer, 3, padding=1, bias=False), nn.BatchNorm2d(layer),
                            nn.ReLU(inplace=True)]
                channels = layer
        self.features = nn.Sequential(*modules)
        self.classifier = nn.Linear(channels, num_classes)
        init_conv_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


@register("vgg16")
def vgg16(num_classes: int, in_channels: int) -> nn.Module:
    return VGG(VGG16_LAYERS, num_classes, in_channels)
