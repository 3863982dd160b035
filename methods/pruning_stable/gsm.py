"""Global Sparse Momentum SGD (Ding et al., 2019; Back to Basics, section 2.3).

At every iteration the prunable weights (conv and linear, all layers together) are ranked
by the first-order Taylor score |w * dL/dw|; only the top (1 - s) of them receive the loss
gradient. The others have their gradient removed, so momentum and weight decay alone act
on them and drive them towards zero. At the end of training the model is pruned to the
goal by global magnitude.
"""

import torch
from torch import nn

from methods import register
from methods.core.masks import keep_largest, prunable_modules
from .stable import PruningStable


@register
class GSM(PruningStable):
    """GSM: the loss gradient reaches only the top (1 - s) prunable weights by |w * g|.

    Choices: the number of weights that keep their gradient is n - round(s * n), the number
    the final prune keeps; biases and BatchNorm parameters always keep their gradient, as
    does everything in fine-tuning. Weight decay and momentum are the training's own (the
    momentum is tuned in the manifest grid); GSM has no hyperparameters of its own.
    """

    name = "gsm"
    paper = "Ding et al. (2019)"
    params = {**PruningStable.params}

    @torch.no_grad()
    def after_backward(self, model: nn.Module) -> None:
        if not self.in_regular_training:
            return
        weights = [m.weight for m in prunable_modules(model)]
        scores = torch.cat([(w * w.grad).abs().flatten() for w in weights])
        keep = keep_largest(scores, round(self.goal_sparsity * scores.numel()))
        for w, part in zip(weights, keep.split([w.numel() for w in weights])):
            w.grad.mul_(part.view_as(w))
