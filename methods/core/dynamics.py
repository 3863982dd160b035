"""Indicators of how settled training is, epoch by epoch (AIMP, section V-F).

The *potential* mask at an epoch is the mask the next pruning step would make there: the
global magnitude mask keeping the largest (1 - p) of the weights that remain. With P the
weights that remain and P0 all prunable weights, the indicators after an epoch are

- D = (entries of the potential mask that differ from the previous epoch's) / P,
- D~ = the same count / P0 (equal to D before the first pruning step),
- the L-infinity norm of the weights, and
- L1^TOP(k): the sum of the k largest weight magnitudes (k = 1000 in the paper).

Where the paper is silent (the AIMP authors published no code): the weights are the
prunable ones that remain (convolutions and linear layers, masked weights left out), and
the first epoch of a phase compares with the potential mask at the phase's start, after its
pruning step.
"""

import math

import torch
from torch import nn

from methods.core.masks import keep_largest, prunable_modules

TOP_K = 1000


def remaining_magnitudes(model: nn.Module) -> torch.Tensor:
    """|w| of every prunable weight, -1 where a mask has pruned it (no mask: none pruned)."""
    parts = []
    for module in prunable_modules(model):
        magnitude = module.weight.detach().abs().flatten()
        mask = getattr(module, "weight_mask", None)
        parts.append(magnitude if mask is None else torch.where(mask.flatten(), magnitude, -1.0))
    return torch.cat(parts)


def potential_mask(magnitudes: torch.Tensor, fraction: float) -> torch.Tensor:
    """The global mask keeping round((1 - fraction) * remaining) of the remaining weights."""
    remaining = int((magnitudes >= 0).sum())
    return keep_largest(magnitudes, magnitudes.numel() - round((1 - fraction) * remaining))


class MaskDynamics:
    """D, D~, L-inf and L1^TOP(k) of a model after every epoch, for pruning fraction p."""

    def __init__(self, fraction: float, top_k: int = TOP_K):
        self.fraction, self.top_k = fraction, top_k
        self.previous: torch.Tensor | None = None

    @torch.no_grad()
    def start(self, model: nn.Module) -> None:
        """Take the potential mask now as the one the next epoch is compared with."""
        self.previous = potential_mask(remaining_magnitudes(model), self.fraction)

    @torch.no_grad()
    def measure(self, model: nn.Module) -> dict[str, float]:
        magnitudes = remaining_magnitudes(model)
        mask = potential_mask(magnitudes, self.fraction)
        remaining = magnitudes[magnitudes >= 0]
        changed = math.nan if self.previous is None else float((mask != self.previous).sum())
        self.previous = mask
        return {"mask_change": changed / max(len(remaining), 1), "mask_change_of_all": changed / magnitudes.numel(),
                "weight_linf": float(remaining.max()) if len(remaining) else 0.0,
                "weight_l1_top": float(remaining.topk(min(self.top_k, len(remaining))).values.sum())}

    def state_dict(self) -> dict:
        return {"previous": self.previous}

    def load_state_dict(self, state: dict) -> None:
        self.previous = state["previous"]
