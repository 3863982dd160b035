"""Budgeted IMP (Love Retraining, section 2.2).

Given a budget of T epochs, train from scratch for T_0 < T epochs with a learning rate
decaying linearly from eta_1 to zero, then spend the remaining T - T_0 epochs on J
prune-retrain cycles, each pruning by global magnitude a fraction p = 1 - (1 - s)^(1/J) of
the remaining weights and retraining with ALLR (or LLR, CLR) after that T_0-epoch training.
Pruned weights stay pruned. As in IMP, the retraining starts with a fresh optimizer, which
the cycles then share (momentum carries from one cycle into the next).

Where the paper is silent or ambiguous, the authors' code decides, since it produced the
published numbers (ZIB-IOL/BIMP, where BIMP is their IMP run after a T_0-epoch training).
The J cycles are "of equal length" as whole epochs allow: J - 1 cycles of (T - T_0) // J
epochs, the rest in the last (strategies/pretrainedStrategies.py, ``IMP.__init__``,
``n_epochs_to_split``). ALLR's d2 = T_rt / T_0: the paper's d2 compares T_rt with "the
original training length", here the dense phase's (runners/baseRunner.py,
``define_retrain_schedule``, ``config.n_epochs``); CLR ends at that phase's last LR. d1 is
measured as for IMP (``methods.prune_retrain.imp``), with the same ``d1_over``.
"""

from methods import register
from schema import ConfigError, Param

from methods.core.base import Phase
from methods.core.masks import SELECTION
from methods.core.schedules import retraining_schedule, training_schedule
from methods.prune_retrain.imp import D1_OVER, PruneRetrainCycles


@register
class BIMP(PruneRetrainCycles):
    """IMP inside the training budget: T_0 epochs of linear-decay training, then J ALLR cycles."""

    name = "bimp"
    paper = "Love Retraining (Zimmer et al., 2023), section 2.2"
    revision = 1
    params = {
        "initial_epochs": Param(help="epochs of regular training before the first prune", symbol="T_0", type=int,
                                above=0, of_budget=True),
        "cycles": Param(1, "prune-retrain cycles in the remaining T - T_0 epochs", "J", above=0, at_most=1000),
        "schedule": Param("allr", "learning-rate schedule of the retraining", choices=("allr", "llr", "clr")),
        "selection": SELECTION,
        "d1_over": D1_OVER,
    }

    def cycle_lengths(self) -> list[int]:
        remaining, cycles = self.training["epochs"] - self.hp["initial_epochs"], self.hp["cycles"]
        if remaining < cycles:
            raise ConfigError(f"{self.hp['initial_epochs']} leaves {remaining} epochs of the "
                              f"{self.training['epochs']}-epoch budget for {cycles} cycles", key="initial_epochs")
        length = remaining // cycles
        return [length] * (cycles - 1) + [remaining - length * (cycles - 1)]

    def phases(self) -> list[Phase]:
        initial = self.hp["initial_epochs"]
        training = training_schedule(self.training["lr"], initial, "linear")
        phases = [Phase("train", initial, lambda event: training)]
        for j, length in enumerate(self.cycle_lengths(), start=1):
            def schedule(event, length=length):
                return retraining_schedule(self.hp["schedule"], training, initial, length,
                                           d1=event.relative_change, steps_per_epoch=self.steps_per_epoch)

            phases.append(Phase(f"retrain {j}", length, schedule, prunes=True, sparsity=self.cycle_sparsity(j),
                                keeps_optimizer=j > 1))
        return phases
