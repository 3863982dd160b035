"""Nodes, and the input channels that depend on no remaining node.

The nodes of a network are the output units (convolutional filters, linear units) of its
prunable layers but the last, whose units are the classes; the network's inputs are no
nodes either. This is how the SNIP-it authors count them (StijnVerdenius/SNIP-it,
models/Pruneable.py, ``get_num_nodes`` and ``structural_sparsity``). A node is pruned when
its row of the ``weight_mask`` holds no True entry, as for ``methods.core.filters``.

A pruned node still outputs a constant (its bias, through BatchNorm and the activation).
Removing it from the network, as the authors' code does (models/criterions/SNAP.py,
``handle_output`` and ``handle_input``), also removes what reads it: the input channels of
later layers that carry only such constants. ``cut_dead_inputs`` masks those columns, so the
masked network computes what the smaller one does. Which channels are dead follows from one
probe pass (``live_inputs``) in which every remaining unit outputs NaN and every removed
unit its bias (or zero): a channel reaching a layer's input without a NaN depends on no
remaining unit, whatever BatchNorm, activation, pooling, padding, flattening or additions
lie between; a sum of branches (a residual addition) is dead only where every summand is.
"""

from collections.abc import Callable

import torch
from torch import nn

from methods.core.filters import remaining_units
from methods.core.masks import apply_masks, mask_of, prunable_modules


def node_layers(model: nn.Module) -> list[nn.Module]:
    """The layers whose output units are nodes: every prunable layer but the last."""
    return prunable_modules(model)[:-1]


def node_sparsity(model: nn.Module) -> float:
    """The fraction of the nodes that are pruned."""
    layers = node_layers(model)
    return 1 - sum(map(remaining_units, layers)) / sum(m.weight.shape[0] for m in layers)


def channel_shape(module: nn.Module, output: torch.Tensor) -> list[int]:
    """The shape that broadcasts a vector over the layer's output channels (features)."""
    return [-1] if isinstance(module, nn.Linear) else [-1] + [1] * (output.dim() - 2)


def channels(tensor: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """The tensor with the layer's channel (feature) dimension first, the rest flattened."""
    return tensor.movedim(-1 if isinstance(module, nn.Linear) else 1, 0).flatten(1)


def scale_outputs(module: nn.Module, factor: Callable[[nn.Module], torch.Tensor | None]):
    """Have ``module`` multiply its output channels by ``factor(module)`` in every forward
    pass (a vector over them; None leaves the output as it is); returns the hook's handle."""
    def hook(module, inputs, output):
        vector = factor(module)
        return output if vector is None else output * vector.view(channel_shape(module, output))

    return module.register_forward_hook(hook)


@torch.no_grad()
def forward_with_hooks(model: nn.Module, hook, example: torch.Tensor) -> None:
    """One forward pass in evaluation mode with ``hook`` on every prunable layer."""
    handles = [m.register_forward_hook(hook) for m in prunable_modules(model)]
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()


def columns(live: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The vector over a layer's input channels shaped to broadcast over its weight's columns."""
    return live.view(1, -1, *[1] * (weight.dim() - 2))


def without_dead_inputs(module: nn.Module, live: torch.Tensor) -> torch.Tensor:
    """The weight with the columns reading dead input channels zeroed (grouped convolutions,
    whose columns are per group, keep theirs)."""
    if getattr(module, "groups", 1) != 1:
        return module.weight
    return module.weight * columns(live, module.weight)


def live_inputs(model: nn.Module, example: torch.Tensor) -> dict[nn.Module, torch.Tensor]:
    """For every prunable layer, which of its input channels depend on the model's input
    through remaining units (output rows of a weight with a nonzero entry on a live input)."""
    live: dict[nn.Module, torch.Tensor] = {}

    def probe(module, inputs, output):
        live[module] = channels(inputs[0], module).isnan().any(dim=1)
        remaining = without_dead_inputs(module, live[module]).flatten(1).any(dim=1)
        removed = module.bias if module.bias is not None else torch.zeros_like(remaining, dtype=output.dtype)
        shape = channel_shape(module, output)
        return torch.where(remaining.view(shape), torch.nan, removed.view(shape)).expand_as(output)

    forward_with_hooks(model, probe, torch.full_like(example[:1], torch.nan))
    return live


@torch.no_grad()
def cut_dead_inputs(model: nn.Module, example: torch.Tensor) -> None:
    """Mask, and zero, every weight that reads an input channel depending on no remaining
    unit; ``example`` is an input of the model's shape (its values are not used)."""
    apply_masks(model)
    for module, live in live_inputs(model, example).items():
        if getattr(module, "groups", 1) == 1:
            mask_of(module).logical_and_(columns(live, module.weight))
    apply_masks(model)


@torch.no_grad()
def keep_nodes(model: nn.Module, keeps: list[torch.Tensor], example: torch.Tensor,
               scores: list[torch.Tensor] | None = None) -> None:
    """Prune the nodes whose entry of ``keeps`` (a vector per node layer) is False, then cut the
    weights reading them (``cut_dead_inputs``, on an ``example`` input). With ``scores``, a
    layer that would be left without a remaining node keeps its remaining node of highest score."""
    for module, keep, score in zip(node_layers(model), keeps, scores or [None] * len(keeps), strict=True):
        mask = mask_of(module)
        remaining = mask.flatten(1).any(dim=1)
        if score is not None and not (keep & remaining).any():
            keep = keep.clone()
            keep[torch.where(remaining, score, -torch.inf).argmax()] = True
        mask.logical_and_(keep.view(-1, *[1] * (mask.dim() - 1)))
    cut_dead_inputs(model, example)
