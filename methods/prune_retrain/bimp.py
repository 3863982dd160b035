"""Budgeted IMP (Love Retraining, section 2.2).

Given a budget of T epochs, train from scratch for T_0 < T epochs with a learning rate
decaying linearly from eta_1 to zero, then spend the remaining T - T_0 epochs on J
prune-retrain cycles of equal length (as equal as whole epochs allow: the first cycles
take the extra epoch), each pruning by global magnitude a fraction
p = 1 - (1 - s)^(1/J) of the remaining weights and retraining with ALLR. ALLR's d2 is
T_rt / T with T the whole budget. Pruned weights stay pruned; the optimizer (momentum)
starts afresh at every cycle.
"""

from methods import register
from schema import ConfigError, Param

from methods.core.base import Method, Phase
from methods.core.masks import SELECTIONS
from methods.core.schedules import retraining_schedule, training_schedule


@register
class BIMP(Method):
    """IMP inside the training budget: T_0 epochs of linear-decay training, then J ALLR cycles."""

    name = "bimp"
    paper = "Love Retraining (Zimmer et al., 2023), section 2.2"
    params = {
        "initial_epochs": Param(help="epochs of regular training before the first prune", symbol="T_0", type=int,
                                above=0),
        "cycles": Param(1, "prune-retrain cycles in the remaining T - T_0 epochs", "J", above=0, at_most=1000),
        "schedule": Param("allr", "learning-rate schedule of the retraining", choices=("allr", "llr", "clr")),
        "selection": Param("global", "how the pruned weights are spread over the layers", choices=SELECTIONS),
    }

    def cycle_lengths(self) -> list[int]:
        remaining, cycles = self.training["epochs"] - self.hp["initial_epochs"], self.hp["cycles"]
        if remaining < cycles:
            raise ConfigError(f"{self.hp['initial_epochs']} leaves {remaining} epochs of the "
                              f"{self.training['epochs']}-epoch budget for {cycles} cycles", key="initial_epochs")
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
