"""ResNets for CIFAR (He et al. 2016, section 4.2): ResNet-20/32/44/56/110.

A 3x3 stem conv with 16 channels, three stages of n = (depth - 2) / 6 basic blocks with
16/32/64 channels (stride 2 at the first block of stages 2 and 3), global average pooling
and a linear layer. Where a block changes the shape, the shortcut is a 1x1 conv + BN
(option B). Convolutions have no bias.
"""

from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from . import init_conv_weights, register

WIDTHS = (16, 32, 64)
DEPTHS = (20, 32, 44, 56, 110)


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm, plus an identity or 1x1-conv shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int, in_channels: int):
        super().__init__()
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, WIDTHS[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(WIDTHS[0]),
            nn.ReLU(inplace=True),
        )
        blocks, channels = [], WIDTHS[0]
        for stage, width in enumerate(WIDTHS):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(channels, width, stride))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, num_classes)
        init_conv_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.blocks(self.stem(x))
        return self.fc(out.mean(dim=(2, 3)))


for depth in DEPTHS:
    register(f"resnet{depth}")(partial(CifarResNet, depth))
