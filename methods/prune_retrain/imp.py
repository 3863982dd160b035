"""Iterative magnitude pruning with a choice of retraining schedule (Back to Basics, section 2).

Starting from the trained dense model, J prune-retrain cycles each remove the fraction
p = 1 - (1 - s)^(1/J) of the remaining weights by magnitude, so cycle j ends at sparsity
1 - (1 - s)^(j/J), and retrain for T_rt epochs under FT, LRW, SLR, CLR, LLR or ALLR
(``methods.core.schedules``). ALLR's ||W|| is the norm of all prunable weights (conv and linear, pruned ones included
as zeros) just before the pruning step.
"""

from methods import register
from schema import Param

from methods.core.base import Method, Phase
from methods.core.masks import SELECTIONS
from methods.core.schedules import RETRAINING_KINDS, retraining_schedule


@register
class IMP(Method):
    """IMP: train, then J cycles of magnitude pruning and retraining.

    Choices: the retraining starts with a fresh optimizer (no momentum from the dense
    training), which the cycles then share, so the momentum carries from one cycle into
    the next, as in the authors' runners/pretrainedRunner.py (run and
    define_optimizer_scheduler make one optimizer; baseRunner.fine_tuning, called once per
    cycle, only resets the learning-rate schedule). The paper does not say.
    """

    name = "imp"
    paper = "Han et al. (2015); retraining schedules as in Back to Basics (Zimmer et al., 2023), section 2"
    prunes_after_training = True
    revision = 1
    params = {
        "cycles": Param(1, "prune-retrain cycles", "J", above=0, at_most=1000),
        "retrain_epochs": Param(help="epochs of retraining per cycle", symbol="T_rt", type=int, above=0),
        "schedule": Param("slr", "learning-rate schedule of the retraining", choices=RETRAINING_KINDS),
        "selection": Param("global", "how the pruned weights are spread over the layers", choices=SELECTIONS),
    }

    def cycle_sparsity(self, cycle: int) -> float:
        return 1 - (1 - self.goal_sparsity) ** (cycle / self.hp["cycles"])

    def phases(self) -> list[Phase]:
        epochs, retrain = self.training["epochs"], self.hp["retrain_epochs"]

        def schedule(event):
            return retraining_schedule(self.hp["schedule"], self.training_lr(), epochs, retrain,
                                       d1=event.relative_change)

        return [Phase(f"retrain {j}", retrain, schedule, prunes=True, sparsity=self.cycle_sparsity(j),
                      keeps_optimizer=j > 1)
                for j in range(1, self.hp["cycles"] + 1)]
