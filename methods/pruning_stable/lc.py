"""Learning-Compression (Carreira-Perpiñán & Idelbayev, 2018) as Back to Basics runs it
(section 2.3 and appendix A.2).

Weight decay acts only on the prunable weights that will be pruned: at every iteration
those outside the k largest by magnitude, k the number of weights that remain at the goal
sparsity. Its strength grows over training as lambda_0 * 1.1^j, lambda_0 the training's
weight decay and j increasing over time. At the end of training the model is pruned to
the goal by global magnitude and retrained without any weight decay; the retraining
counts towards the training time.
"""

import torch
from torch import nn

from schema import Param

from methods import register
from methods.core.masks import keep_largest, prunable_modules
from .stable import PruningStable


@register
class LC(PruningStable):
    """LC: a growing weight decay on the prunable weights outside the top-k by magnitude.

    Choices: regular training is split into ``decay_steps`` equal stages by iteration, and
    j is the stage index, so lambda_j = lambda_0 * decay_growth^j with j = 0 .. decay_steps - 1.
    k = n - round(s * n), the number the final prune keeps; the top-k are recomputed every
    iteration and get no weight decay. Biases and BatchNorm parameters keep the constant
    weight decay lambda_0 of the optimizer. Fine-tuning uses weight decay 0 for every
    parameter.
    """

    name = "lc"
    paper = "Carreira-Perpiñán & Idelbayev (2018)"
    retraining_is_timed = True
    params = {
        **PruningStable.params,
        "decay_steps": Param(20, "stages of regular training over which the decay grows", above=0),
        "decay_growth": Param(1.1, "growth of the decay per stage: lambda_0 * growth^j", above=0),
    }

    def setup(self, model: nn.Module, steps_per_epoch: int) -> None:
        self.total_iterations = self.training["epochs"] * steps_per_epoch
        self.iteration = 0

    def state_dict(self) -> dict:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.iteration = state["iteration"]

    def decay(self, iteration: int) -> float:
        """lambda_j for the stage j of regular training that contains ``iteration``."""
        stages = self.hp["decay_steps"]
        j = min(iteration * stages // self.total_iterations, stages - 1)
        return self.training["weight_decay"] * self.hp["decay_growth"] ** j

    def optimizer_groups(self, model: nn.Module) -> list[dict]:
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not self.in_regular_training:
            return [{"params": trainable, "weight_decay": 0.0}]
        weights = [m.weight for m in prunable_modules(model)]
        prunable = {id(w) for w in weights}
        return [{"params": weights, "weight_decay": 0.0},
                {"params": [p for p in trainable if id(p) not in prunable]}]

    @torch.no_grad()
    def after_backward(self, model: nn.Module) -> None:
        if not self.in_regular_training:
            return
        weights = [m.weight for m in prunable_modules(model)]
        magnitudes = torch.cat([w.abs().flatten() for w in weights])
        keep = keep_largest(magnitudes, round(self.goal_sparsity * magnitudes.numel()))
        strength = self.decay(self.iteration)
        self.iteration += 1
        for w, part in zip(weights, keep.split([w.numel() for w in weights])):
            w.grad.add_(torch.where(part.view_as(w), 0.0, w), alpha=strength)
