"""Forward passes through weights other than the stored ones.

Methods that reparametrise (DNW, DPF, STR, CS, DST) compute an effective weight for some
layers from the stored weight and their own tensors, and run the model with it; autograd
carries the gradient back to whatever the effective weight depends on.
"""

import torch
from torch import nn
from torch.func import functional_call


def forward_with_weights(model: nn.Module, inputs: torch.Tensor, weights: dict[nn.Module, torch.Tensor]) -> torch.Tensor:
    """``model(inputs)`` with each module's ``weight`` replaced by ``weights[module]``."""
    names = {module: name for name, module in model.named_modules()}
    return functional_call(model, {f"{names[m]}.weight": w for m, w in weights.items()}, (inputs,), strict=False)


def straight_through(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``weight * mask`` in the forward pass; the gradient reaches every entry of
    ``weight`` unmasked (straight-through)."""
    return weight + (weight * mask - weight).detach()
