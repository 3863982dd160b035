"""Retraining by fine-tuning, weight rewinding or learning-rate rewinding (Renda, Frankle &
Carbin, 2020, section 2.3 and appendix E), and Accelerated IMP (Zullich et al., 2021).

With S the dense training's schedule, T its length, W_g its weights after epoch g and
TRAIN^t(W, m, g) the training of W * m for t epochs under S from epoch g (S[g > T] = S[T],
``methods.core.schedules.train_from``), retraining for t epochs is

- ``ft``, fine-tuning: TRAIN^t(W_T, m, T);
- ``wr``, weight rewinding: TRAIN^t(W_{T-t}, m, T - t);
- ``lrr``, learning-rate rewinding: TRAIN^t(W_T, m, T - t);
- ``lowlr_wr``, low-LR weight rewinding: TRAIN^t(W_{T-t}, m, T);
- ``reinit``, reinitialisation (Liu et al., 2019): TRAIN^(T+t)(W'_0, m, 0), W'_0 fresh.

The dense parent stores W_{T-t} (the manifest's ``[dense] rewind_points``). One-shot
pruning prunes once to the goal; iterative pruning (``prune_fraction`` p = 0.2, Frankle &
Carbin) prunes p of the remaining weights per iteration, retraining after each, and weight
rewinding rewinds every iteration to the same W_{T-t}. Renda et al.'s Algorithm 1 is
iterative ``lrr`` with t = T; its search cost is the k T retraining epochs of its k
iterations (the record's ``own_epochs``).

AIMP_tau (``partial_epochs`` tau, AIMP section IV) ends every intermediate iteration at
epoch tau of the schedule, so it trains tau - g epochs from its start g (IMP+WR rewound to
the late-resetting epoch 1: tau - 1; IMP+LRR with t = T: tau), and only the last
iteration for its full t; AIMP clips the gradient norm at 1 in every step
(``clip_grad_norm``).

Where the paper is silent, the authors' code decides (lottery-ticket/rewinding-iclr20-public,
vision/lottery/lottery/lottery.py, ``PruningHook.after_create_session``; prune_functions.py,
``prune_all_to_global_x``): unstructured pruning ranks the remaining weights of every masked
layer globally by magnitude, and a rewind restores the whole checkpoint of epoch T - t
(BatchNorm statistics included) before the new masks apply, as ``bench.train.rewind`` does.
Their restore also brings back the optimizer's momentum of that checkpoint; every
retraining here starts a fresh optimizer (no momentum), as IMP does: the dense run does not
store optimizer states.
"""

from dataclasses import replace

from methods import register
from schema import REQUIRED, ConfigError, Param

from methods.core.base import Phase
from methods.core.li_rates import FILTER_RATES, VARIANTS, li_filter_prune
from methods.core.masks import clip_gradient_norm, magnitude_prune
from methods.core.schedules import train_from
from methods.prune_retrain.imp import PruneRetrainCycles

TECHNIQUES = ("ft", "wr", "lrr", "lowlr_wr", "reinit")
REWOUND = ("wr", "lowlr_wr")  # start from the dense run's W_{T-t}


def retraining_start(technique: str, epochs: int, retrain_epochs: int) -> int:
    """g of TRAIN^t(., m, g): the epoch of S the retraining starts from."""
    return {"ft": epochs, "lowlr_wr": epochs, "wr": epochs - retrain_epochs, "lrr": epochs - retrain_epochs,
            "reinit": 0}[technique]


class RetrainingTechnique(PruneRetrainCycles):
    """What both granularities share: the technique, t, and the phases they make."""

    params = {
        "technique": Param(help="how the pruned network is retrained: ft, wr (weight rewinding), lrr (learning-rate "
                           "rewinding), lowlr_wr (rewound weights at fine-tuning's LR), reinit (fresh weights)",
                           type=str, choices=TECHNIQUES),
        "retrain_epochs": Param(help="retraining time per iteration", symbol="t", type=int, above=0,
                                of_budget=True),
        "clip_grad_norm": Param(None, "clip the gradient's norm at this value in every step (AIMP: 1)", type=float,
                                above=0),
    }

    def check_technique(self) -> None:
        epochs, t, technique = self.training["epochs"], self.hp["retrain_epochs"], self.hp["technique"]
        if technique in ("wr", "lrr", "lowlr_wr") and t > epochs:
            raise ConfigError(f"{technique} for t epochs starts from epoch T - t of the {epochs}-epoch training: t "
                              f"must be at most T, got {t}", key="retrain_epochs")

    def iteration_epochs(self, iteration: int) -> int:
        t = self.hp["retrain_epochs"]
        return self.training["epochs"] + t if self.hp["technique"] == "reinit" else t

    def phases(self) -> list[Phase]:
        self.check_technique()
        technique, epochs, t = self.hp["technique"], self.training["epochs"], self.hp["retrain_epochs"]
        start = retraining_start(technique, epochs, t)

        def schedule(event):
            return train_from(self.training_lr(), start, epochs, self.steps_per_epoch)

        return [Phase(f"retrain {j}", self.iteration_epochs(j), schedule, prunes=True,
                      sparsity=self.cycle_sparsity(j), rewinds_to=epochs - t if technique in REWOUND else None,
                      reinitialises=technique == "reinit")
                for j in range(1, self.n_cycles() + 1)]

    def after_backward(self, model) -> None:
        """AIMP's clipping of the gradient's norm, taken over the gradient that trains: the
        pruned weights' entries zeroed first, since in AIMP "the gradient is not propagated
        back to parameters having a corresponding 0 entry in the mask" (section III). (Our
        masks apply after the step, so a pruned weight's gradient is there, and at high
        sparsity it would dominate the norm and scale the rest down to nothing.)"""
        if self.hp["clip_grad_norm"] is not None:
            clip_gradient_norm(model, self.hp["clip_grad_norm"], masked=True)


@register
class Rewinding(RetrainingTechnique):
    """Unstructured global magnitude pruning, one-shot or iterative, retrained by a technique
    of Renda et al. (module docstring); AIMP with ``partial_epochs``."""

    name = "rewinding"
    paper = ("Renda, Frankle & Carbin (2020), sections 2.2-2.4, 5 and appendix E; AIMP: Zullich et al. (2021), "
             "sections III-IV")
    prunes_after_training = True
    params = {
        **RetrainingTechnique.params,
        "prune_fraction": Param(None, "iterative pruning: this share of the remaining weights per iteration (0.2) "
                                "until the goal; unset: one-shot", "p", type=float, above=0, below=1),
        "partial_epochs": Param(None, "AIMP: intermediate iterations end at this epoch of the schedule", "tau",
                                type=int, above=0, of_budget=True),
        "mask_dynamics": Param(None, "record AIMP's mask dynamics (section V-F) of the next pruning step in the "
                               "history", type=bool),
    }

    def iteration_epochs(self, iteration: int) -> int:
        tau = self.hp["partial_epochs"]
        if tau is None or iteration == self.n_cycles():
            return super().iteration_epochs(iteration)
        return tau - retraining_start(self.hp["technique"], self.training["epochs"], self.hp["retrain_epochs"])

    def check_technique(self) -> None:
        super().check_technique()
        hp, fraction = self.hp, self.hp["prune_fraction"]
        if hp["technique"] == "reinit" and fraction is not None:
            raise ConfigError("reinitialisation retrains the structure one-shot pruning found: leave prune_fraction "
                              "unset", key="prune_fraction")
        if fraction is None and (hp["partial_epochs"] is not None or hp["mask_dynamics"]):
            key = "partial_epochs" if hp["partial_epochs"] is not None else "mask_dynamics"
            raise ConfigError("AIMP's partial iterations and mask dynamics need iterative pruning: set prune_fraction",
                              key=key)
        if hp["partial_epochs"] is not None:
            start = retraining_start(hp["technique"], self.training["epochs"], hp["retrain_epochs"])
            if not start < hp["partial_epochs"] < start + hp["retrain_epochs"]:
                raise ConfigError(f"an intermediate iteration starts at epoch {start} and would end at "
                                  f"{start + hp['retrain_epochs']}: tau must lie strictly between, got "
                                  f"{hp['partial_epochs']}", key="partial_epochs")

    def prune(self, model, sparsity: float):
        return magnitude_prune(model, sparsity, "global")

    def mask_dynamics(self) -> float | None:
        return self.hp["prune_fraction"] if self.hp["mask_dynamics"] else None


@register
class RewindingFilters(RetrainingTechnique):
    """One-shot structured pruning of convolutional filters by their L1 norm with Li et al.'s
    (2017) per-layer rates at level k (``methods.core.li_rates``), retrained by a technique of
    Renda et al. (module docstring, section 2.2); its sparsity follows from the rates."""

    name = "rewinding-filters"
    paper = "Renda, Frankle & Carbin (2020), section 2.2 and appendix E; rates of Li et al. (2017)"
    prunes_after_training = True
    takes_goal = False
    params = {
        **RetrainingTechnique.params,
        "filter_rates": replace(FILTER_RATES, default=REQUIRED),
        "rate_level": Param(1, "k: each layer's density raised to the power k (footnote 6)", "k", type=int,
                            above=0, at_most=9),
    }

    @property
    def structured(self) -> bool:
        return True

    def n_cycles(self) -> int:
        return 1

    def check_technique(self) -> None:
        super().check_technique()
        variant = VARIANTS[self.hp["filter_rates"]]
        if variant.model != self.training["model"]:
            raise ConfigError(f"the rates {self.hp['filter_rates']!r} are for {variant.model}, not for "
                              f"{self.training['model']}", key="filter_rates")

    def cycle_sparsity(self, cycle: int) -> None:
        return None

    def prune(self, model, sparsity: None):
        return li_filter_prune(model, self.hp["filter_rates"], self.hp["rate_level"])
