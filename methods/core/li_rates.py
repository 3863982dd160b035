"""Li et al. (2017)'s filter pruning as Renda et al. (2020, section 2.2) use it: the filters of
a convolution ranked by the L1 norm of their remaining weights, pruned at per-layer rates
that Li et al. chose by hand.

Numbering: Li et al. number the convolutions whose kernel is wider than 1, in order: layer 1
the stem, then two per basic block; 1x1 projection shortcuts go unnumbered (the authors' code,
lottery-ticket/rewinding-iclr20-public, vision/gpu-src/official/resnet/resnet_model.py,
``conv2d_fixed_padding``). A variant prunes first convolutions of blocks (even layers) only,
at a pruned fraction d_i per stage, and skips the layers Li et al. found too sensitive
(vision/lottery/lottery/l1_filter_pruning.py); every other layer keeps its filters.

Level k (Renda et al., footnote 6): each rate's density 1 - d_i raised to the k. A step at
level k prunes 1 - (1 - d_i)^k of layer i's remaining filters, as the authors' code does
(vision/lottery/lottery/prune_functions.py, ``prune_structured_generic`` and
``_prune_resnet_generic``): on a dense model that leaves the density (1 - d_i)^k. The count
n * (1 - (1 - d_i)^k), n the remaining filters, is rounded stochastically: its integer part,
plus one with the probability of its fraction. The authors' code seeds Python's ``random``
with 0 at every step and draws once per pruned layer in layer order; we draw the same stream
from a private ``random.Random(0)`` per step, so a step is deterministic, repeats their draws
and leaves the global random state alone.

``resnet1d-b`` is not Li et al.'s: it is our scaled analogue for the CPU profile, ResNet-56-B's
stage rates 0.6/0.3/0.1 on the first convolutions of the 1-d ResNet's three blocks (layers 2,
4 and 6), none skipped.
"""

import random
from dataclasses import dataclass

from torch import nn

from schema import ConfigError, Param, closest

from methods.core.filters import filter_layers, prune_units, remaining_units
from methods.core.masks import PruneEvent, measured


@dataclass(frozen=True)
class LiVariant:
    """One of Li et al.'s pruned ResNets: the ``model`` it applies to, with ``stage_blocks``
    basic blocks per stage; the pruned fraction of the first convolution of every block in
    the stages that have one of ``stage_rates``, save the ``skipped`` layers."""

    model: str
    stage_blocks: tuple[int, ...]
    stage_rates: tuple[float, ...]
    skipped: tuple[int, ...] = ()

    @property
    def layers(self) -> int:
        """How many convolutions Li et al. number in the model."""
        return 1 + 2 * sum(self.stage_blocks)

    @property
    def rates(self) -> dict[int, float]:
        """d_i by Li et al.'s layer number i; block b's first convolution is layer 2b."""
        rates, first = {}, 1
        for blocks, rate in zip(self.stage_blocks, self.stage_rates):
            for block in range(first, first + blocks):
                if 2 * block not in self.skipped:
                    rates[2 * block] = rate
            first += blocks
        return rates


VARIANTS = {  # our CPU analogue first: the default of tests that run every method
    "resnet1d-b": LiVariant("resnet1d", (1, 1, 1), (0.6, 0.3, 0.1)),
    "resnet56-a": LiVariant("resnet56", (9, 9, 9), (0.1, 0.1, 0.1), skipped=(16, 20, 38, 54)),
    "resnet56-b": LiVariant("resnet56", (9, 9, 9), (0.6, 0.3, 0.1), skipped=(16, 18, 20, 34, 38, 54)),
    "resnet110-a": LiVariant("resnet110", (18, 18, 18), (0.5,), skipped=(36,)),
    "resnet110-b": LiVariant("resnet110", (18, 18, 18), (0.5, 0.4, 0.3), skipped=(36, 38, 74)),
    "resnet34-a": LiVariant("resnet34", (3, 4, 6, 3), (0.3, 0.3, 0.3), skipped=(2, 8, 14, 16, 26)),
    "resnet34-b": LiVariant("resnet34", (3, 4, 6, 3), (0.5, 0.6, 0.4), skipped=(2, 8, 14, 16, 26)),
}
FILTER_RATES = Param(None, "Li et al. (2017)'s hand-chosen per-layer rates of L1 filter pruning (Renda et al. "
                     "2020, section 2.2), by variant; resnet1d-b is our analogue of resnet56-b for the 1-d ResNet",
                     type=str, choices=tuple(VARIANTS))


def li_layers(model: nn.Module) -> list[nn.Module]:
    """The convolutions Li et al. number, layer i at index i - 1: those with a kernel wider
    than 1, in registration order."""
    return [m for m in filter_layers(model) if max(m.kernel_size) > 1]


def li_rates(model: nn.Module, variant: str) -> dict[nn.Module, float]:
    """The layers of ``model`` that ``variant`` prunes, with their d_i; a ConfigError unless
    the model has as many numbered convolutions as the variant's."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown filter rates {variant!r}; {closest(variant, VARIANTS)}")
    rule, layers = VARIANTS[variant], li_layers(model)
    if len(layers) != rule.layers:
        raise ConfigError(f"filter rates {variant!r} are Li et al.'s for {rule.model}, which has {rule.layers} "
                          f"numbered convolutions; this {type(model).__name__} has {len(layers)}")
    return {layers[i - 1]: rate for i, rate in rule.rates.items()}


def level_rate(rate: float, level: int) -> float:
    """The pruned fraction at ``level`` k of a layer whose rate is d: 1 - (1 - d)^k."""
    return 1 - (1 - rate) ** level


def stochastic_round(x: float, draws: random.Random) -> int:
    """The integer part of x, plus one with the probability of its fraction."""
    whole = int(x)
    return whole + (draws.random() < x - whole)


def li_filter_prune(model: nn.Module, variant: str, level: int) -> PruneEvent:
    """One step of Li et al.'s filter pruning at ``level`` k: 1 - (1 - d_i)^k of every pruned
    layer's remaining filters, rounded stochastically, those of the smallest L1 norm; the
    event's sparsity is the prunable weights' after the step."""
    if not isinstance(level, int) or level < 1:
        raise ValueError(f"the level of Li et al.'s rates is a positive integer, not {level!r}")
    rates = li_rates(model, variant)

    def step():
        draws, counts = random.Random(0), []
        for module, rate in rates.items():
            remaining = remaining_units(module)
            pruned_before = module.weight.shape[0] - remaining
            counts.append(pruned_before + stochastic_round(remaining * level_rate(rate, level), draws))
        prune_units(list(rates), counts, norm=1)

    return measured(model, None, step)
