"""Wide ResNet WRN-28-10 for CIFAR (Zagoruyko & Komodakis 2016).

A 3x3 stem conv with 16 channels, three stages of (28 - 4) / 6 = 4 pre-activation wide basic
blocks with 16k/32k/64k channels (k = 10), a final BN-ReLU, global average pooling and a
linear layer: about 36.5M parameters. The paper's dropout between the two convs of a block
is left out, as in its no-dropout setting.
"""

import torch.nn.functional as F
from torch import Tensor, nn

from . import init_conv_weights, register


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3; a 1x1 conv on the activated input when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.projection = None
        if stride != 1 or in_channels != out_channels:
            self.projection = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        activated = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(activated))))
        shortcut = x if self.projection is None else self.projection(activated)
        return out + shortcut


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int):
        super().__init__()
        blocks_per_stage = (depth - 4) // 6
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        blocks, channels = [], 16
        for stage, width in enumerate((16 * widen, 32 * widen, 64 * widen)):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(WideBlock(channels, width, stride))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, num_classes)
        init_conv_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(out.mean(dim=(2, 3)))


@register("wrn28x10")
def wrn28x10(num_classes: int, in_channels: int) -> nn.Module:
    return WideResNet(28, 10, num_classes, in_channels)
