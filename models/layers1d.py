"""1D convolution and BatchNorm computed as matrix products on the CPU.

The networks for MNIST-1D have few channels and short signals, where PyTorch's CPU
convolution (oneDNN) reaches about 10 GFLOP/s. Written as one matrix product over the
unfolded signal (im2col: the kernel's shifted views of the (batch, length, channels)
signal side by side), with BatchNorm over the (batch x length, channels) rows, an epoch
of ``resnet1d`` takes about 0.7 times as long on one core (``make bench-perf``, section
8). The modules are ``nn.Conv1d`` and ``nn.BatchNorm1d`` with the same parameters, inputs and outputs (batch, channels,
length), so masks, FLOP counts and hooks see no difference; results equal the built-in
layers' up to float rounding. On other devices they are the built-in layers.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` (no groups, no dilation, zero padding) as one matrix product on the CPU."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.groups != 1 or self.dilation != (1,) or self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError("layers1d.Conv1d takes no groups, dilation, padding mode or padding by name")

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu":
            return super().forward(x)
        (kernel,), (stride,), (padding,) = self.kernel_size, self.stride, self.padding
        rows = F.pad(x.transpose(1, 2), (0, 0, padding, padding))  # (batch, length, channels)
        positions = (rows.shape[1] - kernel) // stride + 1
        span = stride * (positions - 1) + 1
        # im2col as the kernel's shifted views side by side: its backward is a split, cheaper than unfold's
        columns = torch.cat([rows[:, tap:tap + span:stride] for tap in range(kernel)], dim=2)
        out = columns @ self.weight.permute(2, 1, 0).reshape(-1, self.out_channels)
        if self.bias is not None:
            out = out + self.bias
        return out.transpose(1, 2)


class BatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` over (batch, channels, length) computed on (batch x length, channels) rows on the CPU."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or x.dim() != 3:
            return super().forward(x)
        rows = x.transpose(1, 2)
        return super().forward(rows.reshape(-1, rows.shape[-1])).view(rows.shape).transpose(1, 2)
