"""Iterative magnitude pruning with a choice of retraining schedule (Back to Basics, section 2).

Starting from the trained dense model, J prune-retrain cycles each remove the fraction
p = 1 - (1 - s)^(1/J) of the remaining weights by magnitude, so cycle j ends at sparsity
1 - (1 - s)^(j/J), and retrain for T_rt epochs under FT, LRW, SLR, CLR, LLR or ALLR
(``methods.core.schedules``, set per iteration). The retraining starts with a fresh
optimizer (no momentum from the dense training), which the cycles then share.

Where the papers are silent or ambiguous, the authors' code decides, since it produced
the published numbers; where it contradicts the text, its behaviour is the default and the
paper's reading a named hyperparameter. ALLR's d1 = ||W - W_p|| / (||W|| sqrt(s)) takes s
as the nominal p, as the code does (ZIB-IOL/BIMP, runners/baseRunner.py,
``define_retrain_schedule``: ``pruning_sparsity``). Its W is, by default, every parameter
of the model, BatchNorm and biases included, as in the code (``after_pruning_callback``
with ``Utilities.get_model_norm_square``); Love Retraining (section 2.1) normalises by
sqrt(s) so that d1 "can actually attain the full range of values in [0, 1]", which holds
for the prunable weights only: ``d1_over = "prunable"`` is that reading.
"""

from methods import register
from schema import ConfigError, Param

from methods.core.base import Method, Phase
from methods.core.filters import STRUCTURE, filter_prune
from methods.core.masks import D1_VECTORS, SELECTION, PruneEvent, prune_measuring_d1
from methods.core.schedules import RETRAINING_KINDS, retraining_schedule

D1_OVER = Param("all", "the vector W of ALLR's d1: all parameters (the authors' code) or the prunable weights "
                "(Love Retraining's text)", choices=D1_VECTORS)


class PruneRetrainCycles(Method):
    """What IMP and BIMP share: J cycles pruning the fraction p of the remaining weights each,
    with ALLR's d1 measured as the module docstring says."""

    def setup(self, model, steps_per_epoch: int) -> None:
        self.steps_per_epoch = steps_per_epoch

    def cycle_sparsity(self, cycle: int) -> float:
        return 1 - (1 - self.goal_sparsity) ** (cycle / self.hp["cycles"])

    def prune(self, model, sparsity: float) -> PruneEvent:
        if self.hp.get("structure") == "filters":
            return filter_prune(model, sparsity, over=self.hp["d1_over"], nominal_fraction=self.cycle_sparsity(1))
        return prune_measuring_d1(model, sparsity, self.hp["selection"], self.cycle_sparsity(1), self.hp["d1_over"])


@register
class IMP(PruneRetrainCycles):
    """IMP: train, then J cycles of magnitude pruning and retraining.

    Choices: the retraining starts with a fresh optimizer (no momentum from the dense
    training), which the cycles then share, so the momentum carries from one cycle into
    the next, as in the authors' runners/pretrainedRunner.py (run and
    define_optimizer_scheduler make one optimizer; baseRunner.fine_tuning, called once per
    cycle, only resets the learning-rate schedule). The paper does not say.

    ``structure = "filters"`` prunes whole convolutional filters instead of weights, uniformly
    by their L2 norm (``methods.core.filters``): cycle j leaves every convolution with
    round(s_j * filters) filters pruned, and ALLR's d1 is measured on that step as above. It
    asks for ``selection = "uniform"``, the only selection the paper uses for filters.
    """

    name = "imp"
    paper = "Han et al. (2015); retraining schedules as in Back to Basics (Zimmer et al., 2023), section 2"
    prunes_after_training = True
    revision = 1
    params = {
        "cycles": Param(1, "prune-retrain cycles", "J", above=0, at_most=1000),
        "retrain_epochs": Param(help="epochs of retraining per cycle", symbol="T_rt", type=int, above=0,
                                of_budget=True),
        "schedule": Param("slr", "learning-rate schedule of the retraining", choices=RETRAINING_KINDS),
        "selection": SELECTION,
        "d1_over": D1_OVER,
        "structure": STRUCTURE,
    }

    def phases(self) -> list[Phase]:
        if self.hp["structure"] == "filters" and self.hp["selection"] != "uniform":
            raise ConfigError("filter pruning selects filters uniformly per layer (Love Retraining, appendix B.1): "
                              'set selection = "uniform"', key="selection")
        epochs, retrain = self.training["epochs"], self.hp["retrain_epochs"]

        def schedule(event):
            return retraining_schedule(self.hp["schedule"], self.training_lr(), epochs, retrain,
                                       d1=event.relative_change, steps_per_epoch=self.steps_per_epoch)

        return [Phase(f"retrain {j}", retrain, schedule, prunes=True, sparsity=self.cycle_sparsity(j),
                      keeps_optimizer=j > 1)
                for j in range(1, self.hp["cycles"] + 1)]
