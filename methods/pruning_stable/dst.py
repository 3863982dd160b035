"""Dynamic Sparse Training (Liu et al., 2020; Back to Basics, section 2.3 and A.2.1).

Every output unit of a layer (a row of a linear weight, an output channel of a conv weight)
gets a learnable threshold t, and the network computes with w * step(|w| - t). The step's
gradient is replaced by a surrogate, so both the weights and the thresholds learn through
the mask. A penalty alpha * sum exp(-t) pushes the thresholds up and so the sparsity; a
layer that keeps at most 1% of its weights has its thresholds reset to 0. At the end of
training the weights with |w| > t are kept.
"""

import torch
from torch import nn

from schema import Param

from methods import register
from methods.core.masks import prunable_modules
from .learned import LearnedSparsity

COLLAPSED_DENSITY = 0.01


class BinaryStep(torch.autograd.Function):
    """step(x) = [x > 0], with DST's surrogate derivative 2 - 4|x| for |x| <= 0.4,
    0.4 for 0.4 < |x| <= 1 and 0 beyond."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        a = x.abs()
        slope = torch.where(a <= 0.4, 2 - 4 * a, torch.where(a <= 1, 0.4, 0.0))
        return grad * slope


def _rows(weight: torch.Tensor) -> torch.Tensor:
    return weight.reshape(weight.shape[0], -1)


@register
class DST(LearnedSparsity):
    """DST: a trainable threshold per output unit and a step mask with a surrogate gradient.

    Choices, as in the authors' code: every conv and linear layer is masked, the thresholds
    start at 0 and share the weights' learning rate and momentum; the weight gets gradient
    through both w and the mask; the collapse check (at most 1% of the layer's weights above
    their thresholds, counted over the whole layer) runs at every forward pass of regular
    training, evaluation included, and resets all of that layer's thresholds to 0. The
    training's weight decay acts on the thresholds too, as in the authors' code and Back to
    Basics' code; as in the latter, the loss has the term 0.5 * lambda * ||w||^2, so the
    weights are decayed twice (``LearnedSparsity.weight_decay_term``).
    """

    name = "dst"
    paper = "Liu et al. (2020)"
    revision = 1
    extra = "weight_threshold"
    sparsity_control = ("alpha", "log")
    params = {**LearnedSparsity.params,
              "alpha": Param(1e-5, "strength of the penalty alpha * sum exp(-t) on the thresholds", "alpha", above=0)}

    def setup(self, model: nn.Module, steps_per_epoch: int) -> None:
        for module in prunable_modules(model):
            t = torch.zeros(module.weight.shape[0], device=module.weight.device)
            module.register_parameter(self.extra, nn.Parameter(t))

    def margin(self, module: nn.Module) -> torch.Tensor:
        """|w| - t, one row per output unit."""
        return _rows(module.weight).abs() - module.weight_threshold[:, None]

    def effective_weight(self, module: nn.Module) -> torch.Tensor:
        return module.weight * BinaryStep.apply(self.margin(module)).view_as(module.weight)

    def learned_mask(self, module: nn.Module) -> torch.Tensor:
        return (self.margin(module) > 0).view_as(module.weight)

    @torch.no_grad()
    def reset_collapsed(self, model: nn.Module) -> None:
        for module in prunable_modules(model):
            if self.learned_mask(module).float().mean() <= COLLAPSED_DENSITY:
                module.weight_threshold.zero_()

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        if self.in_regular_training:
            self.reset_collapsed(model)
        return super().forward(model, inputs)

    def regularizer(self, model: nn.Module) -> torch.Tensor | None:
        if not self.in_regular_training:
            return None
        penalty = self.hp["alpha"] * sum(torch.exp(-m.weight_threshold).sum() for m in prunable_modules(model))
        return penalty + self.weight_decay_term(model)
