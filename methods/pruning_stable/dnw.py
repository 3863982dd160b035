"""Discovering Neural Wirings (Wortsman et al., 2019; Back to Basics, section 2.3).

The forward pass uses only the k weights of largest magnitude over all prunable weights
(conv and linear, all layers together), chosen afresh at every forward pass; the others
count as zero. The gradient is dense: it reaches every weight straight through, so a
weight outside the top k can grow back into it. The hard prune at the end applies the
last choice, so DNW is pruning stable by construction.
"""

import torch
from torch import nn

from methods import register
from methods.core.masks import keep_largest, prunable_modules
from methods.core.reparam import forward_with_weights, straight_through
from .stable import PruningStable


@register
class DNW(PruningStable):
    """DNW: forward with the top-k weights by magnitude, dense straight-through gradient.

    Choices: k = n - round(s n), the number of weights the final global magnitude prune
    keeps (the same as round((1 - s) n) but for rounding ties), with ties broken as that
    prune breaks them, so the accuracies before and after it coincide. DNW has no
    hyperparameters of its own; in fine-tuning it is plain masked retraining.
    """

    name = "dnw"
    paper = "Wortsman et al. (2019)"
    params = {**PruningStable.params}

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        if not self.in_regular_training:
            return model(inputs)
        modules = prunable_modules(model)
        scores = torch.cat([m.weight.detach().abs().flatten() for m in modules])
        keep = keep_largest(scores, round(self.goal_sparsity * scores.numel()))
        parts = keep.split([m.weight.numel() for m in modules])
        weights = {m: straight_through(m.weight, part.view_as(m.weight)) for m, part in zip(modules, parts)}
        return forward_with_weights(model, inputs, weights)
