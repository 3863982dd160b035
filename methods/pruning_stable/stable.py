"""What the pruning-stable methods share (Back to Basics, section 3.3 and appendix B.3).

A pruning-stable method sparsifies during its T epochs of regular training; at the end it
is hard-pruned to its goal (or to its own learned mask), the accuracy right before and
after that step giving its pruning stability. It is then fine-tuned with FT for
``finetune_fraction`` of T (30 of 200 epochs in the paper), and the better of the two
models by validation accuracy is reported. Only the regular training counts towards the
Time column, except for methods whose paper counts the retraining (LC, CS).
"""

from typing import ClassVar

import torch
from torch import nn

from schema import Param

from methods.core.base import Method, Phase
from methods.core.masks import keep_largest, prunable_count, prunable_modules
from methods.core.schedules import retraining_schedule

REGULAR, FINETUNE = "train", "finetune"

# GSM and LC rank the parameters by a score and treat the top k apart, k the number of weights
# the final prune keeps; the authors' code ranks every parameter its optimizer holds.
RANK_OVER = Param("all", "what is ranked: every parameter the optimizer holds, BatchNorm and biases included "
                         "(the authors' code), or the prunable weights only (the paper's text)",
                  choices=("all", "prunable"))


def ranked_parameters(model: nn.Module, over: str) -> list[torch.Tensor]:
    """The prunable weights, or ("all") every parameter that has a gradient."""
    if over == "prunable":
        return [m.weight for m in prunable_modules(model)]
    return [p for p in model.parameters() if p.grad is not None]


def keep_top(scores: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """For each tensor of ``scores``, the mask of its entries among the k largest of them all."""
    flat = torch.cat([s.flatten() for s in scores])
    keep = keep_largest(flat, flat.numel() - k)
    return [part.view_as(s) for s, part in zip(scores, keep.split([s.numel() for s in scores]))]


class PruningStable(Method):
    """Regular training with the method's hooks, a hard prune, then FT with masks only."""

    params: ClassVar[dict[str, Param]] = {
        "finetune_fraction": Param(0.15, "share of the budget T spent on FT after the hard prune (30 of 200 epochs)",
                                   at_least=0, at_most=1),
    }
    pruning_stable = True
    better_of_pruned_and_retrained = True
    retraining_is_timed: ClassVar[bool] = False

    def kept_count(self, model: nn.Module) -> int:
        """n - round(s * n), n the prunable weights: how many the final prune keeps."""
        n = prunable_count(model)
        return n - round(self.goal_sparsity * n)

    @property
    def in_regular_training(self) -> bool:
        """True during the method's own training; the hooks fall silent in fine-tuning."""
        return self.phase is not None and self.phase.name == REGULAR

    def phases(self) -> list[Phase]:
        epochs = self.training["epochs"]
        finetune = round(self.hp["finetune_fraction"] * epochs)

        def ft(event):
            return retraining_schedule("ft", self.training_lr(), epochs, finetune)

        return [Phase(REGULAR, epochs, lambda event: self.training_lr()),
                Phase(FINETUNE, finetune, ft, prunes=True, sparsity=self.goal_sparsity,
                      timed=self.retraining_is_timed)]
