"""Budgeted IMP (Love Retraining, section 2.2).

Given a budget of T epochs, train from scratch for T_0 < T epochs with a learning rate
decaying linearly from eta_1 to zero, then spend the remaining T - T_0 epochs on J
prune-retrain cycles of equal length (as equal as whole epochs allow: the first cycles
take the extra epoch), each pruning by global magnitude a fraction
p = 1 - (1 - s)^(1/J) of the remaining weights and retraining with ALLR. ALLR's d2 is
T_rt / T with T the whole budget. Pruned weights stay pruned; the optimizer (momentum)
starts afresh at every cycle.
"""

from . import register
from .base import Method, Param, Phase
from .masks import SELECTIONS
from .schedules import retraining_schedule, training_schedule


@register
class BIMP(Method):
    """IMP inside the training budget: T_0 epochs of linear-decay training, then J ALLR cycles."""

    name = "bimp"
    params = {
        "initial_epochs": Param(kind=int, positive=True),
        "cycles": Param(1, positive=True),
        "schedule": Param("allr", ("allr", "llr", "clr")),
        "selection": Param("global", SELECTIONS),
    }

    def cycle_lengths(self) -> list[int]:
        remaining, cycles = self.training["epochs"] - self.hp["initial_epochs"], self.hp["cycles"]
        if remaining < cycles:
            raise ValueError(f"initial_epochs={self.hp['initial_epochs']} leaves {remaining} epochs for "
                             f"{cycles} cycles of a {self.training['epochs']}-epoch budget")
        return [remaining // cycles + (j < remaining % cycles) for j in range(cycles)]

    def phases(self) -> list[Phase]:
        budget, initial, lr = self.training["epochs"], self.hp["initial_epochs"], self.training["lr"]
        phases = [Phase("train", initial, lambda event: training_schedule(lr, initial, "linear"))]
        for j, length in enumerate(self.cycle_lengths(), start=1):
            sparsity = 1 - (1 - self.goal_sparsity) ** (j / self.hp["cycles"])

            def schedule(event, length=length):
                return retraining_schedule(self.hp["schedule"], lambda t: lr, budget, length,
                                           d1=event.relative_change)

            phases.append(Phase(f"retrain {j}", length, schedule, prunes=True, sparsity=sparsity))
        return phases
