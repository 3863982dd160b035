"""Learning-Compression (Carreira-Perpiñán & Idelbayev, 2018) as Back to Basics runs it
(section 2.3 and appendix A.2).

Weight decay acts only on the parameters that will be pruned: at every iteration those
outside the k largest by magnitude, k the number of weights that remain at the goal
sparsity. At the end of training the model is pruned to the goal by global magnitude and
retrained without any weight decay; the retraining counts towards the training time.
"""

import torch
from torch import nn

from schema import Param

from methods import register
from methods.core.masks import prunable_modules
from .stable import RANK_OVER, PruningStable, keep_top, ranked_parameters


@register
class LC(PruningStable):
    """LC: weight decay on the parameters outside the top k by magnitude.

    Choices: k = n - round(s * n), n the prunable weights, the number the final prune keeps;
    the top k are recomputed every iteration and get no weight decay. As in the authors'
    strategies/scratchStrategies.py, LC.during_training, the ranking is over every parameter
    the optimizer holds, BatchNorm parameters and biases included (``rank_over =
    "prunable"``: only the prunable weights are ranked and the others keep the optimizer's
    decay), and the decay is the constant lambda_0 of the training: appendix A.2.1 grows it
    as lambda_0 * 1.1^j, which ``decay_growth = 1.1`` gives, with regular training split
    into ``decay_steps`` equal stages by iteration and j the stage index. Fine-tuning keeps
    the training's weight decay, as the authors' FT after LC does (a retraining run of
    runners/pretrainedRunner.py with the configuration's weight_decay, the value that also
    names the trained model it loads); appendix A.2.1 deactivates it (``finetune_decay =
    "none"``).
    """

    name = "lc"
    paper = "Carreira-Perpiñán & Idelbayev (2018)"
    revision = 1
    retraining_is_timed = True
    params = {
        **PruningStable.params,
        "rank_over": RANK_OVER,
        "decay_steps": Param(20, "stages of regular training over which the decay grows", above=0),
        "decay_growth": Param(1.0, "growth of the decay per stage, lambda_0 * growth^j: 1 keeps it constant "
                                   "(the authors' code), 1.1 is appendix A.2.1's", above=0),
        "finetune_decay": Param("training", "weight decay of the FT after the hard prune: the training's "
                                            "(the authors' code) or none (appendix A.2.1)",
                                choices=("training", "none")),
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
        """Weight decay 0 in the optimizer for what ``after_backward`` decays, the training's for the
        rest; in fine-tuning, the training's or none (``finetune_decay``)."""
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not self.in_regular_training:
            return [{"params": trainable, "weight_decay": 0.0}] if self.hp["finetune_decay"] == "none" \
                else [{"params": trainable}]
        if self.hp["rank_over"] == "all":
            return [{"params": trainable, "weight_decay": 0.0}]
        weights = [m.weight for m in prunable_modules(model)]
        prunable = {id(w) for w in weights}
        return [{"params": weights, "weight_decay": 0.0},
                {"params": [p for p in trainable if id(p) not in prunable]}]

    @torch.no_grad()
    def after_backward(self, model: nn.Module) -> None:
        if not self.in_regular_training:
            return
        ranked = ranked_parameters(model, self.hp["rank_over"])
        strength = self.decay(self.iteration)
        self.iteration += 1
        for p, keep in zip(ranked, keep_top([p.abs() for p in ranked], self.kept_count(model))):
            p.grad.add_(torch.where(keep, 0.0, p), alpha=strength)
