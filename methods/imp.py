"""Iterative magnitude pruning with a choice of retraining schedule (Back to Basics, section 2).

Starting from the trained dense model, J prune-retrain cycles each remove the fraction
p = 1 - (1 - s)^(1/J) of the remaining weights by magnitude, so cycle j ends at sparsity
1 - (1 - s)^(j/J), and retrain for T_rt epochs under FT, LRW, SLR, CLR, LLR or ALLR
(``methods.schedules``). The optimizer, and so its momentum, starts afresh at every cycle.
ALLR's ||W|| is the norm of all prunable weights (conv and linear, pruned ones included
as zeros) just before the pruning step.
"""

from . import register
from .base import Method, Param, Phase
from .masks import SELECTIONS
from .schedules import RETRAINING_KINDS, retraining_schedule


@register
class IMP(Method):
    """IMP: train, then J cycles of magnitude pruning and retraining."""

    name = "imp"
    prunes_after_training = True
    params = {
        "cycles": Param(1, positive=True),
        "retrain_epochs": Param(kind=int, positive=True),
        "schedule": Param("slr", RETRAINING_KINDS),
        "selection": Param("global", SELECTIONS),
    }

    def cycle_sparsity(self, cycle: int) -> float:
        return 1 - (1 - self.goal_sparsity) ** (cycle / self.hp["cycles"])

    def phases(self) -> list[Phase]:
        epochs, retrain = self.training["epochs"], self.hp["retrain_epochs"]

        def schedule(event):
            return retraining_schedule(self.hp["schedule"], self.training_lr(), epochs, retrain,
                                       d1=event.relative_change)

        return [Phase(f"retrain {j}", retrain, schedule, prunes=True, sparsity=self.cycle_sparsity(j))
                for j in range(1, self.hp["cycles"] + 1)]
