"""A small 1D ResNet for MNIST-1D, the project's CPU default.

A stride-2 stem conv (width 5) halves the 40-sample signal, then three stages of one basic
block each (widths 32/64/128 at lengths 20/10/5), global average pooling and a linear head:
about 100k prunable weights, so 0.5% of them (99.5% sparsity) still leave about 500.
Shortcuts are parameter-free (He et al. 2016, option A: strided identity, zero-padded
channels), so pruning a block away entirely never disconnects the network.
"""

import torch.nn.functional as F
from torch import Tensor, nn

from . import init_conv_weights, register
from .layers1d import BatchNorm1d, Conv1d

WIDTHS = (32, 64, 128)


class BasicBlock1d(nn.Module):
    """Two width-3 convs with BatchNorm, added to a strided, zero-padded identity."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = Conv1d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = BatchNorm1d(out_channels)
        self.conv2 = Conv1d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = BatchNorm1d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def shortcut(self, x: Tensor) -> Tensor:
        """Padded on the (length, channels) view, so that the sum keeps layers1d's layout."""
        return F.pad(x.transpose(1, 2)[:, ::self.stride], (0, self.extra_channels)).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet1d(nn.Module):
    def __init__(self, num_classes: int, in_channels: int):
        super().__init__()
        widths = WIDTHS
        self.stem = nn.Sequential(
            Conv1d(in_channels, widths[0], 5, stride=2, padding=2, bias=False),
            BatchNorm1d(widths[0]),
            nn.ReLU(inplace=True),
        )
        strides = [1] + [2] * (len(widths) - 1)
        inputs = (widths[0],) + widths[:-1]
        self.stages = nn.Sequential(*(BasicBlock1d(i, o, s) for i, o, s in zip(inputs, widths, strides)))
        self.fc = nn.Linear(widths[-1], num_classes)
        init_conv_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.stages(self.stem(x))
        return self.fc(out.mean(dim=-1))


@register("resnet1d")
def resnet1d(num_classes: int, in_channels: int) -> nn.Module:
    return ResNet1d(num_classes, in_channels)
