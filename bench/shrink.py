"""A node-pruned model physically shrunk: its removed nodes gone from the layers.

Torch-Pruning (Fang et al., 2023, ``torch_pruning``) does the surgery. Its DependencyGraph
traces one forward pass through autograd and groups the channels that must go together: a
layer's output channel with the BatchNorm after it and the input channels (or flattened
features) of the layers that read it, and the summands of a residual addition with each other
and with every reader of the sum; pruning a group cuts all of their parameters consistently.

We choose which channels go, as ``methods.core.nodes`` counts dead ones: a group's channel
goes when every node layer writing it has pruned that node (no True entry in its row of
``weight_mask``). A residual stream is one group through a stage, so the shrunk model keeps
what its coupling forces: a pruned node whose channel another summand keeps alive (a second
convolution's filter beside a kept shortcut filter or identity) stays as a zero row, and a
layer reading the stream where that channel is still dead (before the block that writes it)
keeps a zero column for it. It computes what the masked model does with the same nonzero
weights, but a residual network holds more weights and dense FLOPs than the structured count
of ``bench.metrics`` (which removes those rows and columns); a plain one exactly that count.
resnet1d's zero-padded shortcut reads to the tracer as an element-wise op, which couples
channel i of consecutive stages as the shortcut does; the padded channels join no group and
stay.
"""

import copy

import torch
import torch_pruning as tp
from torch import nn

from methods.core.masks import PRUNABLE_TYPES, mask_of, prunable_modules
from methods.core.nodes import node_layers
from models import layers1d

# layers1d's matrix-product forward would read as concatenations and slices to the tracer:
# the graph is traced with the built-in layers they stand for (same parameters and outputs).
TRACED_AS = {layers1d.Conv1d: nn.Conv1d, layers1d.BatchNorm1d: nn.BatchNorm1d}


def pruned_nodes(model: nn.Module) -> dict[nn.Module, torch.Tensor]:
    """For every node layer, which of its output units are pruned (no True mask entry)."""
    return {m: ~mask_of(m).flatten(1).any(dim=1) for m in node_layers(model)}


def dead_channels(graph: tp.DependencyGraph, group, pruned: dict[nn.Module, torch.Tensor]) -> list[int]:
    """The channels of a dependency group (indices of its root layer's outputs) that every node
    layer writing them has pruned."""
    dead = set(range(len(group[0].idxs)))
    for item in group:
        module = item.dep.target.module
        if module in pruned and graph.is_out_channel_pruning_fn(item.dep.handler):
            dead -= {root for index, root in zip(item.idxs, item.root_idxs) if not pruned[module][index]}
    return sorted(dead)


def shrink(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of the node-masked ``model``, in evaluation mode and without masks, in which the
    channels that no remaining node writes are gone (module docstring); ``example`` is an input
    batch of the model's shape. Raises ValueError where the copy does not compute what the
    model does, a coupling Torch-Pruning's trace missed (resnet1d's zero-padded shortcut)."""
    shrunk = copy.deepcopy(model).eval()
    with torch.no_grad():
        expected = shrunk(example)
    pruned = pruned_nodes(shrunk)
    for module in prunable_modules(shrunk):
        if hasattr(module, "weight_mask"):
            del module.weight_mask
    classes = {m: type(m) for m in shrunk.modules() if type(m) in TRACED_AS}
    for module, cls in classes.items():
        module.__class__ = TRACED_AS[cls]
    graph = tp.DependencyGraph().build_dependency(shrunk, example_inputs=example[:1], verbose=False)
    groups = graph.get_all_groups(ignored_layers=[prunable_modules(shrunk)[-1]], root_module_types=PRUNABLE_TYPES)
    cuts = [(group, dead_channels(graph, group, pruned)) for group in groups]
    for group, dead in cuts:
        if dead:
            group.prune(dead)
    for module, cls in classes.items():
        module.__class__ = cls
    with torch.no_grad():
        if not torch.allclose(shrunk(example), expected, rtol=1e-4, atol=1e-5):
            raise ValueError(f"{type(model).__name__} shrunk by Torch-Pruning does not compute what the "
                             "node-masked model does: its trace misses a coupling of channels")
    return shrunk
