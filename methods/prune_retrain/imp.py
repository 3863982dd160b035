"""Iterative magnitude pruning with a choice of retraining schedule (Back to Basics, section 2).

Starting from the trained dense model, J prune-retrain cycles each remove the fraction
p = 1 - (1 - s)^(1/J) of the remaining weights by magnitude, so cycle j ends at sparsity
1 - (1 - s)^(j/J), and retrain for T_rt epochs under FT, LRW, SLR, CLR, LLR or ALLR
(``methods.core.schedules``, set per iteration). The retraining starts with a fresh
optimizer (no momentum from the dense training), which the cycles then share.

Love Retraining adds the tuned schedules constant, stepped, cosine and linear (appendix
B.1), given an ``initial_lr`` and a ``warmup``, the same in every cycle, which the authors'
code demands of them and refuses for the fixed ones (``define_retrain_schedule``'s
asserts); and the ablations of appendix C.1: ALLR with d = d1 or d = d2 alone
(``discount``) and AccALLR, whose d1 = (Acc(dense) - Acc(sparse)) / Acc(dense), clipped
to [0, 1], is the drop in train accuracy that the pruning step causes, measured by an
evaluation pass over the training split after every pruning step, its time counted in the
run's training time, as is the paper's point (``Phase.measures_train_accuracy``). In the iterative case "dense" is the
trained dense model, before the first pruning step, as the text says ("the relative drop
in accuracy compared to the dense model"), not the model before the cycle's step; the
authors' AccALLR branch is not in their published code, but it keeps the dense run's
train accuracy once per run for it (runners/pretrainedRunner.py, ``get_missing_config``,
``trained_train_accuracy``). Both accuracies come from the same evaluation pass (eval mode,
no augmentation), one more over the dense model at the first pruning step, so the ratio
compares like with like; their dense accuracy is the running one of the last training
epoch, and they evaluate the train split with BatchNorm in training mode
(runners/baseRunner.py, ``train_epoch``).

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

import math

from methods import register
from schema import ConfigError, Param

from methods.core.base import Method, Phase
from methods.core.filters import STRUCTURE, filter_prune
from methods.core.masks import D1_VECTORS, SELECTION, PruneEvent, magnitude_prune
from methods.core.schedules import DISCOUNTS, RETRAINING_KINDS, TUNED_KINDS, accuracy_drop, retraining_schedule

D1_OVER = Param("all", "the vector W of ALLR's d1: all parameters (the authors' code) or the prunable weights "
                "(Love Retraining's text)", choices=D1_VECTORS)


class PruneRetrainCycles(Method):
    """What IMP and BIMP share: J cycles pruning the fraction p of the remaining weights each,
    with ALLR's d1 measured as the module docstring says."""

    def setup(self, model, steps_per_epoch: int) -> None:
        self.steps_per_epoch = steps_per_epoch

    def n_cycles(self) -> int:
        """J; with a ``prune_fraction`` p, as many cycles as pruning p of the remaining weights
        each takes to reach the goal s: ceil(log(1 - s) / log(1 - p))."""
        fraction = self.hp.get("prune_fraction")
        if fraction is None:
            return self.hp.get("cycles", 1)
        return max(1, math.ceil(math.log(1 - self.goal_sparsity) / math.log(1 - fraction) - 1e-9))

    def cycle_sparsity(self, cycle: int) -> float:
        """The sparsity after cycle j: 1 - (1 - s)^(j/J), or 1 - (1 - p)^j up to the goal."""
        fraction = self.hp.get("prune_fraction")
        if fraction is None:
            return 1 - (1 - self.goal_sparsity) ** (cycle / self.n_cycles())
        return self.goal_sparsity if cycle >= self.n_cycles() else min(self.goal_sparsity, 1 - (1 - fraction) ** cycle)

    def prune(self, model, sparsity: float) -> PruneEvent:
        if self.hp.get("structure") == "filters":
            return filter_prune(model, sparsity, over=self.hp["d1_over"], nominal_fraction=self.cycle_sparsity(1))
        return magnitude_prune(model, sparsity, self.hp["selection"], self.hp["d1_over"], self.cycle_sparsity(1))


@register
class IMP(PruneRetrainCycles):
    """IMP: train, then J cycles of magnitude pruning and retraining.

    Choices: the retraining starts with a fresh optimizer (no momentum from the dense
    training), which the cycles then share, so the momentum carries from one cycle into
    the next, as in the authors' runners/pretrainedRunner.py (run and
    define_optimizer_scheduler make one optimizer; baseRunner.fine_tuning, called once per
    cycle, only resets the learning-rate schedule). The paper does not say.

    ``prune_fraction = 0.2`` is the baseline of Renda et al. (2020, Algorithm 1) that Love
    Retraining compares with (section 3.2): prune 20% of the remaining weights per cycle, the
    last cycle only up to the goal, so 11, 14 and 18 cycles reach 90, 95 and 98%. (The paper
    counts 2000, 2800 and 3600 retraining epochs of 200 for them, 10 cycles at 90%: 0.8^10
    leaves 89.3%, short of the goal, so we prune an 11th time.)

    ``structure = "filters"`` prunes whole convolutional filters instead of weights, uniformly
    by their L2 norm (``methods.core.filters``): cycle j leaves every convolution with
    round(s_j * filters) filters pruned, and ALLR's d1 is measured on that step as above. It
    asks for ``selection = "uniform"``, the only selection the paper uses for filters.
    """

    name = "imp"
    paper = ("Han et al. (2015); retraining schedules as in Back to Basics (Zimmer et al., 2023), section 2, "
             "and Love Retraining (Zimmer et al., 2023), section 2.1, appendices B.1 and C.1")
    prunes_after_training = True
    revision = 1
    params = {
        "cycles": Param(1, "prune-retrain cycles", "J", above=0, at_most=1000),
        "retrain_epochs": Param(help="epochs of retraining per cycle", symbol="T_rt", type=int, above=0,
                                of_budget=True),
        "schedule": Param("slr", "learning-rate schedule of the retraining: fixed (FT, LRW, SLR, CLR; Love "
                          "Retraining's LLR, ALLR, AccALLR) or tuned (constant, stepped, cosine, linear)",
                          choices=RETRAINING_KINDS),
        "selection": SELECTION,
        "d1_over": D1_OVER,
        "structure": STRUCTURE,
        "initial_lr": Param(None, "initial LR of a tuned schedule, after its warm-up, in every cycle (appendix B.1: "
                            "0.001 to 0.5)", type=float, above=0),
        "warmup": Param(None, "warm-up of a tuned schedule, a fraction of each cycle's iterations (appendix B.1: "
                        "0 or 0.1)", type=float, at_least=0, below=1),
        "discount": Param(None, "ALLR's d from d1 alone (ALLRd1) or d2 alone (ALLRd2), appendix C.1; unset: "
                          "max(d1, d2)", "d", type=str, choices=DISCOUNTS),
        "prune_fraction": Param(None, "prune this share of the remaining weights per cycle until the goal, J "
                                "following from it (Renda et al.: 0.2); unset: J equal cycles", "p", type=float,
                                above=0, below=1),
    }

    def check_schedule_keys(self) -> None:
        """Tuned schedules need ``initial_lr`` and ``warmup``, fixed ones take neither; only
        ALLR takes a ``discount``."""
        kind, tuned = self.hp["schedule"], self.hp["schedule"] in TUNED_KINDS
        for key in ("initial_lr", "warmup"):
            if tuned and self.hp[key] is None:
                raise ConfigError(f"the tuned schedule {kind} needs it", key=key)
            if not tuned and self.hp[key] is not None:
                raise ConfigError(f"the fixed schedule {kind} takes none", key=key)
        if kind != "allr" and self.hp["discount"] is not None:
            raise ConfigError(f"only ALLR chooses its d, not {kind}", key="discount")

    def d1(self, event) -> float:
        """ALLR's d1 (the relative norm change) or AccALLR's (the drop in train accuracy)."""
        if self.hp["schedule"] == "accallr":
            return accuracy_drop(event.dense_train_accuracy, event.train_accuracy)
        return event.relative_change

    def phases(self) -> list[Phase]:
        self.check_schedule_keys()
        if self.hp["prune_fraction"] is not None and self.hp["cycles"] != 1:
            raise ConfigError("the cycles follow from prune_fraction: leave cycles unset", key="cycles")
        if self.hp["structure"] == "filters" and self.hp["selection"] != "uniform":
            raise ConfigError("filter pruning selects filters uniformly per layer (Love Retraining, appendix B.1): "
                              'set selection = "uniform"', key="selection")
        epochs, retrain, hp = self.training["epochs"], self.hp["retrain_epochs"], self.hp

        def schedule(event):
            return retraining_schedule(hp["schedule"], self.training_lr(), epochs, retrain, d1=self.d1(event),
                                       steps_per_epoch=self.steps_per_epoch, initial_lr=hp["initial_lr"],
                                       warmup=hp["warmup"], discount=hp["discount"])

        return [Phase(f"retrain {j}", retrain, schedule, prunes=True, sparsity=self.cycle_sparsity(j),
                      keeps_optimizer=j > 1, measures_train_accuracy=hp["schedule"] == "accallr")
                for j in range(1, self.n_cycles() + 1)]
