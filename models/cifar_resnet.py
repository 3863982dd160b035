"""ResNets for CIFAR (He et al. 2016, section 4.2): ResNet-20/32/44/56/110, and ResNet-18.

A 3x3 stem conv, stages of basic blocks (stride 2 at the first block of every stage but
the first), global average pooling and a linear layer. Where a block changes the shape, the
shortcut is a 1x1 conv + BN (option B). Convolutions have no bias. ResNet-20 to 110: three
stages of n = (depth - 2) / 6 blocks with 16/32/64 channels. ResNet-18, the CIFAR variant
Love Retraining uses (github.com/charlieokonomiyaki/pytorch-resnet18-cifar10): ImageNet's
ResNet-18 with a 3x3 stride-1 stem and no max-pooling, four stages of two blocks with
64/128/256/512 channels (11.2M parameters).
"""

from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from . import init_conv_weights, register

WIDTHS = (16, 32, 64)
DEPTHS = (20, 32, 44, 56, 110)
RESNET18 = ((64, 128, 256, 512), (2, 2, 2, 2))


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
    """``stage_blocks[i]`` basic blocks of ``widths[i]`` channels per stage."""

    def __init__(self, widths: tuple[int, ...], stage_blocks: tuple[int, ...], num_classes: int, in_channels: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks, channels = [], widths[0]
        for stage, (width, count) in enumerate(zip(widths, stage_blocks)):
            for index in range(count):
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
    register(f"resnet{depth}")(partial(CifarResNet, WIDTHS, ((depth - 2) // 6,) * len(WIDTHS)))
register("resnet18")(partial(CifarResNet, *RESNET18))
