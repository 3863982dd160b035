"""Prunable weights, their masks, and magnitude selection.

Prunable are the weights of convolutional and linear layers; biases and BatchNorm
parameters never are. A mask is a buffer ``weight_mask`` registered on the module next
to the weight it covers, so it travels with the state dict.
"""

from dataclasses import dataclass, replace

import torch
from torch import nn

from schema import Param

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
SELECTIONS = ("global", "uniform")
SELECTION = Param("global", "how the pruned weights are spread over the layers", choices=SELECTIONS)
D1_VECTORS = ("all", "prunable")


def prunable_modules(model: nn.Module) -> list[nn.Module]:
    """The convolutional and linear layers, in registration order."""
    return [m for m in model.modules() if isinstance(m, PRUNABLE_TYPES)]


def prunable_count(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in prunable_modules(model))


def mask_of(module: nn.Module) -> torch.Tensor:
    """The module's mask, created all-ones on first use."""
    if not hasattr(module, "weight_mask"):
        module.register_buffer("weight_mask", torch.ones_like(module.weight, dtype=torch.bool))
    return module.weight_mask


def has_masks(model: nn.Module) -> bool:
    return any(hasattr(m, "weight_mask") for m in prunable_modules(model))


@torch.no_grad()
def apply_masks(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Zero every pruned weight and, when an optimizer is given, its momentum."""
    for module in prunable_modules(model):
        mask = getattr(module, "weight_mask", None)
        if mask is None:
            continue
        module.weight.mul_(mask)
        if optimizer is not None:
            buffer = optimizer.state.get(module.weight, {}).get("momentum_buffer")
            if buffer is not None:
                buffer.mul_(mask)


@dataclass(frozen=True)
class PruneEvent:
    """What one pruning step did.

    ``fraction`` is the share of the previously remaining weights that was removed;
    ``relative_change`` is ALLR's d1 = ||W - W_p|| / (||W|| * sqrt(s)), clipped to [0, 1]:
    by ``magnitude_prune`` with W the prunable weights just before the step and s =
    ``fraction``, by ``prune_measuring_d1`` as its arguments say. ``dense_train_accuracy``
    and ``train_accuracy`` are the train accuracies of the dense model and of the model just
    pruned, which the training loop measures for a phase that ``measures_train_accuracy``
    (AccALLR); None otherwise.
    """

    sparsity: float
    fraction: float
    relative_change: float
    dense_train_accuracy: float | None = None
    train_accuracy: float | None = None


def keep_largest(scores: torch.Tensor, n_pruned: int) -> torch.Tensor:
    """Boolean keep-mask that drops exactly the n_pruned smallest scores."""
    keep = torch.ones_like(scores, dtype=torch.bool)
    if n_pruned > 0:
        keep[torch.topk(scores, n_pruned, largest=False, sorted=False).indices] = False
    return keep


@torch.no_grad()
def magnitude_prune(model: nn.Module, sparsity: float, selection: str = "global") -> PruneEvent:
    """Prune by weight magnitude until exactly round(sparsity * n) prunable weights are zero.

    Pruned weights stay pruned: they rank below every remaining weight. ``global`` uses one
    threshold over all prunable weights, ``uniform`` prunes every layer to ``sparsity``.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; known: {', '.join(SELECTIONS)}")
    modules = prunable_modules(model)
    before = torch.cat([m.weight.detach().flatten() for m in modules])
    masks = [mask_of(m) for m in modules]
    remaining_before = int(sum(mask.sum() for mask in masks))

    def scores(module, mask):
        return torch.where(mask, module.weight.abs(), torch.full_like(module.weight, -1.0)).flatten()

    if selection == "global":
        flat = torch.cat([scores(m, mask) for m, mask in zip(modules, masks)])
        keep = keep_largest(flat, round(sparsity * flat.numel()))
        for mask, part in zip(masks, keep.split([mask.numel() for mask in masks])):
            mask.copy_(part.view_as(mask))
    else:
        for module, mask in zip(modules, masks):
            keep = keep_largest(scores(module, mask), round(sparsity * mask.numel()))
            mask.copy_(keep.view_as(mask))
    apply_masks(model)

    after = torch.cat([m.weight.detach().flatten() for m in modules])
    remaining_after = int(sum(mask.sum() for mask in masks))
    fraction = 1 - remaining_after / remaining_before if remaining_before else 0.0
    return PruneEvent(sparsity, fraction, relative_change(before, after, fraction))


def relative_change(before: torch.Tensor, after: torch.Tensor, fraction: float) -> float:
    """ALLR's d1: ||W - W_p||_2 / (||W||_2 * sqrt(s)), clipped to [0, 1]."""
    norm = before.norm().item()
    if fraction <= 0 or norm == 0:
        return 0.0
    d1 = (before - after).norm().item() / (norm * fraction**0.5)
    return min(max(d1, 0.0), 1.0)


def parameter_vector(model: nn.Module, over: str = "all") -> torch.Tensor:
    """The model's parameters as one vector: ``all`` of them (BatchNorm and biases
    included) or the ``prunable`` weights."""
    tensors = model.parameters() if over == "all" else (m.weight for m in prunable_modules(model))
    return torch.cat([t.detach().flatten() for t in tensors])


@torch.no_grad()
def prune_measuring_d1(model: nn.Module, sparsity: float, selection: str, fraction: float,
                       over: str = "all") -> PruneEvent:
    """``magnitude_prune``, with d1 taken over the ``parameter_vector`` ``over`` and s the
    nominal ``fraction`` of the remaining weights that the step prunes."""
    before = parameter_vector(model, over)
    event = magnitude_prune(model, sparsity, selection)
    return replace(event, relative_change=relative_change(before, parameter_vector(model, over), fraction))
