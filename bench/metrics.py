"""Sparsity, compression and theoretical speedup, as ShrinkBench defines them.

FLOPs are the multiply-adds of convolutional and linear layers on one input: a conv layer
costs C_in/groups * C_out * kernel size * output positions, a linear layer in * out; a
layer's nonzero FLOPs scale with the density of its weight. Theoretical speedup is dense
FLOPs over nonzero FLOPs; compression ratio is prunable weights over nonzero prunable weights.

A model pruned by whole units (``structured``: filters of convolutions, nodes of linear
layers) is counted as if they were physically removed: a unit whose weights are all zero
goes, and so does every input channel of a later layer that depends on no remaining unit
(and a unit that reads only such channels), so that layer loses the multiply-adds of the
weights reading it. The channel after a removed filter carries only the BatchNorm shift,
a constant folded into the next layer's bias (exactly so away from zero-padded borders); a
sum of branches (a residual addition) is dead only where every summand is. Which channels
are dead follows from one probe pass (``methods.core.nodes.live_inputs``).
The authors' metrics/flops.py (ZIB-IOL/BIMP, ``flops``) scales each layer by its own
weight density only, counting a removed filter's own multiply-adds but not the next
layer's: that stays the count of every unstructured model, and of ``structured=False``.

A collapsed layer is a prunable layer with no remaining weight: its mask has no True entry
or its weight no nonzero entry.
"""

import math
from contextlib import contextmanager

import torch
from torch import nn

from methods.core.masks import PRUNABLE_TYPES, prunable_modules
from methods.core.nodes import forward_with_hooks, live_inputs, without_dead_inputs


def layer_flops(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-adds of one conv or linear layer for one input, given its output."""
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features * (output[0].numel() // module.out_features)
    kernel = math.prod(module.kernel_size)
    positions = output[0].numel() // module.out_channels
    return module.in_channels // module.groups * module.out_channels * kernel * positions


@torch.no_grad()
def flops(model: nn.Module, example: torch.Tensor, structured: bool = False) -> tuple[int, float]:
    """(dense FLOPs, nonzero FLOPs) of one forward pass of a single example; ``structured``
    also drops the input channels that depend on no remaining unit (module docstring)."""
    live = live_inputs(model, example) if structured else {}
    counts: list[tuple[int, float]] = []

    def hook(module, inputs, output):
        weight = without_dead_inputs(module, live[module]) if structured else module.weight
        density = float(torch.count_nonzero(weight)) / weight.numel()
        dense = layer_flops(module, output)
        counts.append((dense, dense * density))

    forward_with_hooks(model, hook, example[:1])
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def sparsity_report(model: nn.Module, example: torch.Tensor, structured: bool = False) -> dict[str, float]:
    """Sparsity (zeros among prunable weights), overall sparsity (zeros among all
    parameters), compression ratio and theoretical speedup of ``model`` (``structured``:
    pruned by whole units, see ``flops``)."""
    weights = [m.weight for m in prunable_modules(model)]
    prunable = sum(w.numel() for w in weights)
    nonzero = sum(int(torch.count_nonzero(w)) for w in weights)
    parameters = list(model.parameters())
    total = sum(p.numel() for p in parameters)
    zeros = total - sum(int(torch.count_nonzero(p)) for p in parameters)
    dense_flops, nonzero_flops = flops(model, example, structured)
    return {
        "sparsity": 1 - nonzero / prunable,
        "sparsity_overall": zeros / total,
        "compression_ratio": prunable / nonzero if nonzero else math.inf,
        "theoretical_speedup": dense_flops / nonzero_flops if nonzero_flops else math.inf,
    }


@contextmanager
def capture_weights(model: nn.Module):
    """Yield a dict that the forward passes inside the block fill with the weight each
    prunable layer computed with (a reparametrised one where the method substitutes it)."""
    weights: dict[nn.Module, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda module, inputs, output: weights.__setitem__(module, module.weight))
               for m in prunable_modules(model)]
    try:
        yield weights
    finally:
        for handle in handles:
            handle.remove()


def collapsed_layers(model: nn.Module, weights: dict[nn.Module, torch.Tensor] | None = None) -> list[str]:
    """The names of the prunable layers with no remaining weight, in model order: a mask with
    no True entry, or no nonzero entry in the weight (``weights[module]`` where given, else
    the stored one)."""
    weights = weights or {}

    def collapsed(module) -> bool:
        mask = getattr(module, "weight_mask", None)
        return not weights.get(module, module.weight).any() or (mask is not None and not mask.any())

    return [name for name, module in model.named_modules() if isinstance(module, PRUNABLE_TYPES) and collapsed(module)]


def pruning_stability(before: float, after: float) -> float:
    """Definition A.1 of Back to Basics: 1 - (t_pre - t_post) / t_pre."""
    return 1 - (before - after) / before if before > 0 else math.nan
