"""Soft Threshold Weight Reparameterization (Kusupati et al., 2020; Back to Basics, section 2.3).

Every layer l gets one learnable threshold s_l, and the network computes with the weights
sign(w) * relu(|w| - g(s_l)) instead of w, with g the sigmoid. Weights whose magnitude falls
below g(s_l) are exactly zero in the forward pass; the thresholds are trained with the
weights, and the sparsity follows from their initial value s_init and the weight decay.
At the end of training the model keeps the weights with |w| > g(s_l), at their
reparametrised values.
"""

import torch
from torch import nn

from schema import Param

from methods import register
from .learned import LearnedSparsity
from methods.core.masks import prunable_modules


def soft_threshold(weight: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """STR's reparametrisation sign(w) * relu(|w| - sigmoid(s))."""
    return torch.sign(weight) * torch.relu(weight.abs() - torch.sigmoid(s))


@register
class STR(LearnedSparsity):
    """STR: a learnable soft threshold sigmoid(s_l) per layer.

    Choices, as in the authors' code and Back to Basics' setup: g is the sigmoid, s_l is a
    scalar per conv and linear layer (every one, first and last included) initialised to
    ``s_init``, trained with the same learning rate and momentum as the weights, and the
    ordinary weight decay acts on it too (the STR code's default for its threshold decay
    is the training's weight decay). The final weights are the reparametrised values.
    """

    name = "str"
    paper = "Kusupati et al. (2020)"
    extra = "weight_threshold"
    sparsity_control = ("s_init", "linear")
    params = {**LearnedSparsity.params,
              "s_init": Param(-5.0, "initial value of every layer's threshold parameter", "s_init")}

    def setup(self, model: nn.Module, steps_per_epoch: int) -> None:
        for module in prunable_modules(model):
            s = torch.tensor(float(self.hp["s_init"]), device=module.weight.device)
            module.register_parameter(self.extra, nn.Parameter(s))

    def effective_weight(self, module: nn.Module) -> torch.Tensor:
        return soft_threshold(module.weight, module.weight_threshold)

    def learned_mask(self, module: nn.Module) -> torch.Tensor:
        return module.weight.abs() > torch.sigmoid(module.weight_threshold)
