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

The SNIP-it paper's measures (its appendix H; ``sparsity_report`` and ``bench.train``): node
sparsity, the disk size in CSR format, cumulative training FLOPs, RAM during training and
inference time, each where it is computed saying how the authors' code decides it.
"""

import math
import os
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from methods.core.masks import PRUNABLE_TYPES, prunable_modules
from methods.core.nodes import channels, forward_with_hooks, live_inputs, node_layers, without_dead_inputs

VALUE_BITS = 32  # a nonzero's value in the SNIP-it paper's CSR estimate (appendix H)
INDEX_BITS = 2  # an index, "stored in a lower precision"


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


def node_sparsity(model: nn.Module) -> float:
    """The share of the nodes that are removed: output units of every prunable layer but the
    last (``methods.core.nodes``; input channels and classes are no nodes) whose mask row has
    no True entry or whose weight row no nonzero entry. The SNIP-it paper's node sparsity, as
    the authors count it (models/Pruneable.py, ``structural_sparsity`` through
    ``get_num_nodes``: 1 - nodes now / nodes at the start, the last layer's units left out);
    their structured methods remove a node's row from the tensor, here it is masked or zero.
    NaN for a network without nodes (a single layer)."""
    layers = node_layers(model)
    total = sum(m.weight.shape[0] for m in layers)
    return sum(int((~kept_units(m)).sum()) for m in layers) / total if total else math.nan


def kept_units(module: nn.Module) -> torch.Tensor:
    """Which output units of a layer still hold a nonzero, unmasked weight (no mask is made)."""
    kept = module.weight.flatten(1).any(dim=1)
    mask = getattr(module, "weight_mask", None)
    return kept if mask is None else kept & mask.flatten(1).any(dim=1)


def csr_bits(nonzero: int, rows: int, columns: int) -> int:
    """Bits of a ``rows`` x ``columns`` matrix with ``nonzero`` entries stored in CSR format
    as the SNIP-it paper estimates it (appendix H): a 32-bit value and a 2-bit column index
    per nonzero, and a 2-bit pointer per row plus one. The authors' code
    (models/Pruneable.py, ``compressed_size``) takes the smaller side for the rows (CSC
    where the matrix has fewer columns), as here."""
    return nonzero * (VALUE_BITS + INDEX_BITS) + INDEX_BITS * (min(rows, columns) + 1)


def norm_live_channels(model: nn.Module, example: torch.Tensor) -> dict[nn.Module, torch.Tensor]:
    """``live_inputs``, and for every BatchNorm which of its channels depend on a remaining
    unit, read in the same probe pass (a NaN channel there is live)."""
    live: dict[nn.Module, torch.Tensor] = {}

    def record(module, inputs, output):
        live[module] = channels(inputs[0], module).isnan().any(dim=1)

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, _BatchNorm)]
    try:
        live.update(live_inputs(model, example))
    finally:
        for handle in handles:
            handle.remove()
    return live


@torch.no_grad()
def disk_bits(model: nn.Module, example: torch.Tensor, structured: bool = False) -> tuple[int, int]:
    """(dense, pruned) size in bits of the model's weights stored in CSR format (``csr_bits``,
    each tensor a matrix of its first dimension by the rest, a vector a column). As the
    authors' ``compressed_size`` (models/Pruneable.py), the weights are every parameter named
    ``weight`` (those of BatchNorms too), biases left out, the dense size every entry stored.
    ``structured``: the weights reading dead input channels and the BatchNorm weights of dead
    channels go too, as the authors' structured methods cut them out of the tensors (their
    smaller tensors' pointers are counted here at the full shape: at most a few bytes a layer)."""
    live = norm_live_channels(model, example) if structured else {}
    dense = pruned = 0
    for module in model.modules():
        weight = dict(module.named_parameters(recurse=False)).get("weight")
        if weight is None:
            continue
        if module in live:
            weight = (without_dead_inputs(module, live[module]) if isinstance(module, PRUNABLE_TYPES)
                      else weight * live[module])
        rows = weight.shape[0]
        columns = weight.numel() // rows
        dense += csr_bits(weight.numel(), rows, columns)
        pruned += csr_bits(int(torch.count_nonzero(weight)), rows, columns)
    return dense, pruned


def sparsity_report(model: nn.Module, example: torch.Tensor, structured: bool = False) -> dict[str, float]:
    """Sparsity (zeros among prunable weights), overall sparsity (zeros among all
    parameters), compression ratio and theoretical speedup of ``model`` (``structured``:
    pruned by whole units, see ``flops``), its node sparsity, and its disk size in CSR format
    in bytes and as a reduction (the dense size over it, the SNIP-it paper's "Disk")."""
    weights = [m.weight for m in prunable_modules(model)]
    prunable = sum(w.numel() for w in weights)
    nonzero = sum(int(torch.count_nonzero(w)) for w in weights)
    parameters = list(model.parameters())
    total = sum(p.numel() for p in parameters)
    zeros = total - sum(int(torch.count_nonzero(p)) for p in parameters)
    dense_flops, nonzero_flops = flops(model, example, structured)
    dense_bits, pruned_bits = disk_bits(model, example, structured)
    return {
        "sparsity": 1 - nonzero / prunable,
        "sparsity_overall": zeros / total,
        "compression_ratio": prunable / nonzero if nonzero else math.inf,
        "theoretical_speedup": dense_flops / nonzero_flops if nonzero_flops else math.inf,
        "node_sparsity": node_sparsity(model),
        "disk_bytes": pruned_bits / 8,
        "disk_reduction": dense_bits / pruned_bits,
    }


def training_flops_per_sample(model: nn.Module, example: torch.Tensor, structured: bool = False) -> float:
    """Nonzero FLOPs (``flops``) of one forward pass at the model's current weights. The SNIP-it
    paper's training FLOPs (its Figure 16: cumulative over training, against the unpruned
    baseline's) add this times the epoch's samples up once per epoch, as the authors' FLOPCounter
    (models/statistics/Flops.py, ``count_flops``, called by models/trainers/DefaultTrainer.py,
    ``_add_metrics``) multiplies the model's per-sample forward FLOPs at each evaluation by
    the samples seen since the last: forward passes only, no factor for the backward pass
    (a ratio to the baseline's would cancel it). Their counter takes each layer's shape, so a
    mask changes nothing and only a node their structured methods cut out of the tensors
    counts; here every zero weight does, as for the theoretical speedup."""
    return flops(model, example, structured)[1]


def resident_bytes() -> float:
    """This process's resident set size now, from /proc/self/statm (Linux); NaN elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            return float(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except OSError:
        return math.nan


def training_memory(device: torch.device) -> float:
    """Bytes of memory the training takes: on CUDA the peak the tensors took since the last
    ``torch.cuda.reset_peak_memory_stats`` (``max_memory_allocated``), else the process's
    resident set size now (the peak of an epoch is not to be had without sampling every step).
    The SNIP-it paper's RAM footprint (appendix H: GPU memory through PyTorch's CUDA tool,
    reported as the median during training, Table 1); the authors' trainer logs
    ``torch.cuda.memory_allocated`` at every evaluation (models/trainers/DefaultTrainer.py,
    ``_add_metrics``)."""
    return float(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else resident_bytes()


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
