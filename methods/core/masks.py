"""Prunable weights, their masks, and magnitude selection.

Prunable are the weights of convolutional and linear layers; biases and BatchNorm
parameters never are. A mask is a buffer ``weight_mask`` registered on the module next
to the weight it covers, so it travels with the state dict.

A selection spreads the pruned weights over the layers (Back to Basics, appendix A.1):
``global`` ranks all prunable weights together, ``uniform`` (Zhu & Gupta, 2017) prunes
every layer to the sparsity, ``uniform+`` (Gale et al., 2019) is uniform with the first
convolution dense and the last layer pruned by at most 80% (``uniform_plus_counts``),
``erk`` (Evci et al., 2020) sets the layers' densities by their dimensions (``erk_counts``),
``lamp`` (Lee et al., 2021) ranks all weights together by a score normalised within each
layer (``lamp_scores``), and ``random`` prunes a uniformly random subset (``random_scores``).
Back to Basics follows Lee et al.'s implementation for all but ``random``
(jaeho-lee/layer-adaptive-sparsity, tools/pruners.py), as do we where the papers are silent.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from schema import Param

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
PRUNABLE_TYPES = (*CONVOLUTIONS, nn.Linear)
SELECTIONS = ("global", "uniform", "uniform+", "erk", "lamp", "random")
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


def clip_gradient_norm(model: nn.Module, max_norm: float, masked: bool = False) -> None:
    """Scale all the model's gradients by min(1, max_norm / (||g|| + 1e-6)), ||g|| their
    global L2 norm (torch's ``clip_grad_norm_``); ``masked``: the pruned weights' entries
    are zeroed first, so that only the gradient that trains counts in the norm."""
    if masked:
        for module in prunable_modules(model):
            mask = getattr(module, "weight_mask", None)
            if mask is not None and module.weight.grad is not None:
                module.weight.grad.mul_(mask)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)


@dataclass(frozen=True)
class PruneEvent:
    """What one pruning step did.

    ``fraction`` is the share of the previously remaining weights that was removed;
    ``relative_change`` is ALLR's d1 = ||W - W_p|| / (||W|| * sqrt(s)), clipped to [0, 1], as
    ``measured`` takes it: by default W the prunable weights just before the step and s =
    ``fraction``. ``dense_train_accuracy`` and ``train_accuracy`` are the train accuracies
    of the dense model and of the model just pruned, which the training loop measures for a
    phase that ``measures_train_accuracy`` (AccALLR); None otherwise.
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


def apportion(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to the ``weights``, rounded so that the parts add up to
    it exactly: part l (of cumulative weight C_l, W in all) is round(total C_l / W) -
    round(total C_{l-1} / W). A part whose exact share is below an integer m gets at most m."""
    whole, cumulative, counts = sum(weights), 0, []
    for weight in weights:
        before = round(total * cumulative / whole)
        cumulative += weight
        counts.append(round(total * cumulative / whole) - before)
    return counts


def uniform_plus_counts(modules: list[nn.Module], sparsity: float) -> list[int]:
    """UNIFORM+'s pruned weights per layer: round(sparsity * n) in all, n the prunable weights.

    The first layer stays dense when it is a convolution; the last layer keeps at least
    round(0.2 n_L) of its n_L weights; the layers left share the rest at one fraction, as
    ``apportion`` rounds it. As in the implementation Back to Basics follows (Lee et al.,
    2020: jaeho-lee/layer-adaptive-sparsity, tools/pruners.py, ``_compute_unifplus_amounts``), "first" and "last" are in registration order, the last
    layer is capped only when the uniform fraction would leave it fewer weights, and the
    layers between take up the difference at a common fraction; that code rounds each
    layer's share apart (its total misses by a few weights) and keeps the first layer dense
    only for a 2-d convolution, here any convolution (the 1-d ResNet's stem too).
    """
    sizes = [m.weight.numel() for m in modules]
    total = round(sparsity * sum(sizes))
    counts = [0] * len(sizes)
    shared = list(range(len(sizes)))
    if isinstance(modules[0], CONVOLUTIONS):
        shared.remove(0)
    last = len(sizes) - 1
    if last in shared:
        cap = sizes[last] - round(0.2 * sizes[last])
        if total * sizes[last] > cap * sum(sizes[i] for i in shared):  # the uniform fraction prunes beyond the cap
            counts[last] = cap
            shared.remove(last)
    rest = total - sum(counts)
    capacity = sum(sizes[i] for i in shared)
    if rest > capacity:
        raise ValueError(f"uniform+ cannot prune {total} of {sum(sizes)} weights: the first convolution stays "
                         f"dense and the last layer keeps {sizes[last] - counts[last]}")
    for i, count in zip(shared, apportion(rest, [sizes[i] for i in shared])):
        counts[i] = count
    return counts


def erk_counts(modules: list[nn.Module], remaining: list[int], sparsity: float) -> list[int]:
    """ERK's pruned weights per layer: round(sparsity * n) in all, n the prunable weights.

    Layer l's density is proportional to the sum of its weight's dimensions over their
    product (c_out + c_in + k_h + k_w over c_out c_in k_h k_w for a 2-d convolution, n_out +
    n_in over n_out n_in for a linear layer), so its kept weights to that sum, E_l: the n -
    round(sparsity * n) kept weights are shared in proportion to E_l (``apportion``). A layer
    whose share reaches its ``remaining`` (unpruned) weights keeps them all and the others
    share the rest anew, until every share fits. As in Lee et al.'s implementation that Back
    to Basics follows (tools/pruners.py, ``_compute_erks`` and ``_amounts_from_eps``): every
    convolution and linear layer takes part, the first and last too; the cap is a layer's
    unpruned weights, so pruned weights stay pruned; that code marks one layer dense per
    round, the one that exceeds most, which ends with the same dense layers, since a layer
    that exceeds keeps exceeding as the others' shares grow; it tests the rounded share (> the
    cap), here the exact share reaching the cap makes a layer dense, so that no rounded share
    exceeds its cap; and it rounds each layer apart (its total misses by a few weights). The sum runs over all of the weight's dimensions, Evci et
    al.'s formula for any kernel: c_out + c_in + k for a 1-d convolution, c_out + c_in + k_d +
    k_h + k_w for a 3-d one (Lee et al.'s code knows only 2-d convolutions and linear layers;
    its branch for other shapes would add c_out + c_in alone).
    """
    sizes = [m.weight.numel() for m in modules]
    erks = [sum(m.weight.shape) for m in modules]
    kept = sum(sizes) - round(sparsity * sum(sizes))
    if kept > sum(remaining):
        raise ValueError(f"erk cannot keep {kept} weights: {sum(remaining)} are left unpruned")
    dense: set[int] = set()
    while True:
        shared = [i for i in range(len(sizes)) if i not in dense]
        rest = kept - sum(remaining[i] for i in dense)
        scale = rest / sum(erks[i] for i in shared) if shared else 0.0
        saturated = {i for i in shared if scale * erks[i] >= remaining[i]}
        if not saturated:
            break
        dense |= saturated
    survivors = list(remaining)
    for i, count in zip(shared, apportion(rest, [erks[i] for i in shared])):
        survivors[i] = count
    return [size - survivor for size, survivor in zip(sizes, survivors)]


def lamp_scores(scores: torch.Tensor) -> torch.Tensor:
    """LAMP's score of each weight of one layer (Lee et al., 2021, eq. 2): its squared
    magnitude over the sum of the squared magnitudes of the weights that sort at or after it
    in ascending order of magnitude, 1 for the largest.

    ``scores`` are magnitudes, a negative one marking a pruned weight: it scores -1 and
    adds nothing to the sums. Tied magnitudes get the scores of their sorted positions, as
    in Lee et al.'s code (tools/pruners.py, ``_normalize_scores``, a sort and a cumulative
    sum): of equal weights, the one first in the layer's flat order (a stable sort) sorts
    first and, its sum holding the other, scores lower. Computed in float64.
    """
    squares = scores.double().clamp(min=0) ** 2
    ordered, order = torch.sort(squares, stable=True)
    at_least = ordered.flip(0).cumsum(0).flip(0)
    normalised = torch.empty_like(squares)
    normalised[order] = ordered / at_least.clamp(min=torch.finfo(torch.float64).tiny)
    return torch.where(scores < 0, -1.0, normalised)


def random_scores(scores: torch.Tensor) -> torch.Tensor:
    """A uniformly random ranking of the weights, -1 for the pruned (negative ``scores``).

    The ranking is a permutation drawn on the CPU from torch's global generator, which the
    training loop seeds with the run's seed (bench/train.py, ``build_run``) and saves and
    restores with every checkpoint, so a resumed run draws the same mask; the other
    selections draw nothing, so their runs' random streams are unchanged.
    """
    ranks = torch.randperm(scores.numel()).to(scores.device)
    return torch.where(scores < 0, -1, ranks)


def keep_masks(modules: list[nn.Module], scores: list[torch.Tensor], sparsity: float,
               selection: str) -> list[torch.Tensor]:
    """For each module, the flat keep-mask of its ``scores``, their lowest pruned: ``global``
    round(sparsity * n) over all layers, ``uniform`` round(sparsity * n_l) in each layer,
    ``uniform+`` and ``erk`` as ``uniform_plus_counts`` and ``erk_counts`` say, ``lamp`` and
    ``random`` round(sparsity * n) over all layers by ``lamp_scores`` or ``random_scores``.
    A negative score marks a pruned weight: it ranks below every other."""
    if selection in ("global", "lamp", "random"):
        if selection == "lamp":
            scores = [lamp_scores(s) for s in scores]
        flat = torch.cat(scores)
        if selection == "random":
            flat = random_scores(flat)
        return list(keep_largest(flat, round(sparsity * flat.numel())).split([s.numel() for s in scores]))
    if selection == "uniform":
        counts = [round(sparsity * s.numel()) for s in scores]
    elif selection == "uniform+":
        counts = uniform_plus_counts(modules, sparsity)
    elif selection == "erk":
        counts = erk_counts(modules, [int((s >= 0).sum()) for s in scores], sparsity)
    else:
        raise ValueError(f"unknown selection {selection!r}; known: {', '.join(SELECTIONS)}")
    return [keep_largest(s, count) for s, count in zip(scores, counts)]


@torch.no_grad()
def magnitude_prune(model: nn.Module, sparsity: float, selection: str = "global", over: str = "prunable",
                    nominal_fraction: float | None = None) -> PruneEvent:
    """Prune by weight magnitude to round(sparsity * n) zero prunable weights, spread over
    the layers by the ``selection`` (each layer to round(sparsity * n_l) for ``uniform``);
    d1 as ``measured`` says.

    Pruned weights stay pruned: they rank below every remaining weight.
    """
    modules = prunable_modules(model)
    masks = [mask_of(m) for m in modules]

    def step():
        scores = [torch.where(mask, m.weight.abs(), torch.full_like(m.weight, -1.0)).flatten()
                  for m, mask in zip(modules, masks)]
        for mask, keep in zip(masks, keep_masks(modules, scores, sparsity, selection)):
            mask.copy_(keep.view_as(mask))

    return measured(model, sparsity, step, over, nominal_fraction)


def remaining_weights(model: nn.Module) -> int:
    return int(sum(mask_of(m).sum() for m in prunable_modules(model)))


@torch.no_grad()
def measured(model: nn.Module, sparsity: float | None, step: Callable[[], None], over: str = "prunable",
             nominal_fraction: float | None = None) -> PruneEvent:
    """The PruneEvent of a pruning ``step()`` (which sets masks) followed by ``apply_masks``:
    ``sparsity`` is the one asked for, or where None, the prunable weights' that the step left;
    ``fraction`` is the share of the remaining prunable weights it removed; d1 is taken over
    the ``parameter_vector`` ``over`` with s = ``nominal_fraction``, or that share where none
    is given."""
    before, remaining_before = parameter_vector(model, over), remaining_weights(model)
    step()
    apply_masks(model)
    if sparsity is None:
        sparsity = 1 - remaining_weights(model) / prunable_count(model)
    fraction = 1 - remaining_weights(model) / remaining_before if remaining_before else 0.0
    s = fraction if nominal_fraction is None else nominal_fraction
    return PruneEvent(sparsity, fraction, relative_change(before, parameter_vector(model, over), s))


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
