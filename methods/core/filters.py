"""Structured pruning: whole output units of a layer, ranked within the layer by their Lp norm.

A unit is one row of a weight, weight[k]: the filter that computes output channel k of a
convolution (or, for a linear layer, output node k). Pruning it sets the unit's whole
slice of the existing ``weight_mask`` to False, so ``apply_masks``, checkpoints and the
metrics see an ordinary mask. A unit is pruned when its mask slice holds no True entry;
pruned units rank below every remaining one, so they stay pruned over iterative cycles.

``prune_units`` takes a count per layer and a norm p in {1, 2} (Li et al. 2017 use L1 and
per-layer rates: ``methods.core.li_rates``); ``filter_prune`` is Love Retraining's filter
pruning (appendix B.1: "a uniform selection of filters by their L2-norm", after Li et al.
2016): every convolution, shortcut convolutions included, ends a step with round(s * its
filters) filters pruned.

Where the paper is silent: the authors' published code (ZIB-IOL/BIMP) has no filter
pruning, only ``prune.global_unstructured`` (strategies/scratchStrategies.py,
``Dense.pruning_step``); its "uniform" selection, in their follow-up code (ZIB-IOL/SMS,
strategies/strategies.py, ``Dense.pruning_step``), applies the cycle's fraction to every
layer alike through torch's per-layer pruning, whose structured form (``ln_structured``,
dim 0) takes that fraction of a layer's filters. So the goal s is a fraction of filters in
every convolution, hence of each convolution's weights; linear layers keep all their units
(an output node of the classifier is a class), so the model's weight ``sparsity`` stays
below s. Cycle j prunes every layer to round(s_j * filters) filters in all, s_j the cycle's
cumulative sparsity, as ``magnitude_prune``'s ``uniform`` does for weights; torch's
pruning would instead prune round(p * remaining filters) each cycle, which can differ by a
filter through rounding. The BatchNorm after a pruned filter keeps its parameters (masks
cover weights only, in the authors' code as here): its shift still feeds a constant channel
into the next layer, which ``bench.metrics`` counts as removed.
"""

from collections.abc import Sequence

import torch
from torch import nn

from schema import Param

from methods.core.masks import CONVOLUTIONS, PruneEvent, keep_largest, mask_of, measured, prunable_modules

STRUCTURES = ("filters",)
STRUCTURE = Param(None, "what a pruning step removes: None for single weights, filters for whole convolutional "
                  "filters ranked by their L2 norm (Love Retraining, appendix B.1)", type=str, choices=STRUCTURES)
NORMS = (1, 2)


def filter_layers(model: nn.Module) -> list[nn.Module]:
    """The layers whose filters are pruned: every convolution, in registration order."""
    return [m for m in prunable_modules(model) if isinstance(m, CONVOLUTIONS)]


def remaining_units(module: nn.Module) -> int:
    """How many output units still hold a True mask entry."""
    return int(mask_of(module).flatten(1).any(dim=1).sum())


def unit_norms(module: nn.Module, norm: int) -> torch.Tensor:
    """The Lp norm of each output unit's remaining weights; -1 for a pruned unit."""
    mask = mask_of(module).flatten(1)
    norms = (module.weight.flatten(1) * mask).norm(p=norm, dim=1)
    return torch.where(mask.any(dim=1), norms, torch.full_like(norms, -1.0))


@torch.no_grad()
def prune_units(layers: Sequence[nn.Module], counts: Sequence[int], norm: int) -> None:
    """Mask output units in each layer until its own count of them is pruned in all: those of
    the smallest Lp norm, the units pruned before first."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; known: {', '.join(map(str, NORMS))}")
    for module, count in zip(layers, counts, strict=True):
        keep = keep_largest(unit_norms(module, norm), count)
        mask = mask_of(module)
        mask.logical_and_(keep.view(-1, *[1] * (mask.dim() - 1)))


def filter_prune(model: nn.Module, sparsity: float, norm: int = 2, over: str = "prunable",
                 nominal_fraction: float | None = None) -> PruneEvent:
    """Uniform filter pruning: every convolution ends with round(sparsity * filters) filters
    pruned, those of the smallest Lp norm; d1 as ``measured`` says."""
    layers = filter_layers(model)
    counts = [round(sparsity * m.weight.shape[0]) for m in layers]
    return measured(model, sparsity, lambda: prune_units(layers, counts, norm), over, nominal_fraction)

