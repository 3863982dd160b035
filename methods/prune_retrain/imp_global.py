"""IMP-global, the SNIP-it paper's reference for pruning during training (Verdenius, Stol &
Forré, 2020, section 4 and appendix F): iterative global magnitude pruning with weight
rewinding (Frankle et al., 2019, 2020), on SNIP-it's schedule of sparsities.

Where the paper is silent, the authors' code decides (StijnVerdenius/SNIP-it:
models/criterions/IMP.py, ``prune``; models/trainers/DefaultTrainer.py, ``_handle_pruning``,
``_is_pruning_time``, ``_is_checkpoint_time``; models/Pruneable.py, ``do_rewind``; README:
--prune_delay 4 --prune_freq 4 --enable_rewinding --rewind_to 6).
"""

import torch
from torch import nn

from methods import register
from schema import ConfigError, Param

from methods.at_init.snip import STEPS, check_schedule_goal, snip_it_sparsities
from methods.core.base import Method, Phase
from methods.core.masks import apply_masks, magnitude_prune, prunable_modules


@register
class IMPGlobal(Method):
    """IMP-global: global magnitude steps on SNIP-it's schedule while training, each followed
    by a rewind of the weights.

    The network trains for its whole budget in one phase, with one optimizer; after the
    training epoch e (counted from 0) for which e - d is a positive multiple of tau
    (``prune_delay`` d, ``prune_interval`` tau: 4 and 4, appendix F), a step prunes the
    weights of every convolutional and linear layer, ranked by magnitude all together, to the
    next of SNIP-it's s + 2 sparsities (``methods.at_init.snip.snip_it_sparsities``, the
    paper's "same rule of thumb as SNIP-it"), so after epochs 8, 12, ..., 32 for s = 5; then
    the prunable weights rewind to those of the end of epoch e_k (``rewind_epoch``, counted
    from 0 as the authors' --rewind_to: 6, appendix F), times the mask. As in the authors'
    code, biases, BatchNorm and the optimizer's state are not rewound and the optimizer
    goes on. Their criterion prunes the weights at or below the int(kappa n)-th smallest
    magnitude; here exactly round(kappa n), the pruned ones (zero) ranked lowest.

    After the last step, their trainer goes on rewinding at every later pruning time until
    training ends: its test of the goal (``_is_not_finished_pruning``) compares the share of
    zeros among all weight tensors, BatchNorm's included, over their count + 1e-6, with the
    goal, a share that stays below it, so it calls the criterion, which prunes nothing more,
    and rewinds again (after epochs 36, 40, ..., 76 of their 80): ``rewind_after_goal =
    True``, the default. The paper's reading (appendix F: "the desire to have the final
    sparsity as early as possible to allow for fine-tuning"), and Frankle et al.'s IMP,
    rewind only with a pruning step: ``rewind_after_goal = False``.
    """

    name = "imp-global"
    paper = "Frankle et al. (2019, 2020); as implemented by Verdenius, Stol & Forré (2020), appendix F"
    params = {
        "steps": STEPS,
        "prune_delay": Param(4, "epochs d before the pruning epochs start (--prune_delay)", "d", at_least=0),
        "prune_interval": Param(4, "epochs tau between pruning steps (--prune_freq)", "tau", above=0),
        "rewind_epoch": Param(6, "the epoch (counted from 0) at whose end the weights are kept to rewind to "
                                 "(--rewind_to)", "e_k", at_least=0),
        "rewind_after_goal": Param(True, "rewind at every pruning time until training ends, as the authors' trainer "
                                         "does; false: only with a pruning step (the paper's reading)"),
    }

    def __init__(self, hp: dict, training: dict, goal_sparsity: float | None):
        super().__init__(hp, training, goal_sparsity)
        self.rewind_weights: list[torch.Tensor] | None = None

    def sparsities(self) -> list[float]:
        return snip_it_sparsities(self.goal_sparsity, self.hp["steps"])

    def pruning_times(self) -> list[int]:
        """The epochs e < T (counted from 0) after which the trainer prunes or rewinds: e - d
        a positive multiple of tau."""
        delay, interval = self.hp["prune_delay"], self.hp["prune_interval"]
        return list(range(delay + interval, self.training["epochs"], interval))

    def phases(self) -> list[Phase]:
        check_schedule_goal(self.goal_sparsity, self.name)
        times, steps = self.pruning_times(), len(self.sparsities())
        if len(times) < steps:
            raise ConfigError(f"the {steps} pruning steps, after epochs d + k tau (counted from 0), do not fit in a "
                              f"{self.training['epochs']}-epoch training", key="prune_interval")
        if self.hp["rewind_epoch"] >= times[0]:
            raise ConfigError(f"the weights to rewind to must be kept before the first pruning step, after epoch "
                              f"{times[0]}", key="rewind_epoch")
        return [Phase("train", self.training["epochs"], lambda event: self.training_lr())]

    @torch.no_grad()
    def rewind(self, model: nn.Module) -> None:
        """The prunable weights back to those kept at the end of epoch e_k, times the masks."""
        for module, weight in zip(prunable_modules(model), self.rewind_weights):
            module.weight.copy_(weight)
        apply_masks(model)

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        times, sparsities = self.pruning_times(), self.sparsities()
        if epoch in times:
            step = times.index(epoch)
            if step < len(sparsities):
                magnitude_prune(model, sparsities[step], "global")
            if step < len(sparsities) or self.hp["rewind_after_goal"]:
                self.rewind(model)
        if epoch == self.hp["rewind_epoch"]:
            self.rewind_weights = [m.weight.detach().clone() for m in prunable_modules(model)]

    def state_dict(self) -> dict:
        return {"rewind_weights": self.rewind_weights}

    def load_state_dict(self, state: dict) -> None:
        self.rewind_weights = state["rewind_weights"]
