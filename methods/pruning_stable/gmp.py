"""Gradual magnitude pruning (Zhu & Gupta, 2017) and pruning with feedback (Lin et al., 2020).

GMP sparsifies throughout training by magnitude, following the cubic schedule
s_k = s (1 - (1 - k/n)^3) at n equally spaced pruning steps k = 1..n, so that it prunes
fast while the network is redundant and slowly as the goal s comes near. DPF follows the
same schedule for its target sparsity but keeps the weights dense: the forward and
backward passes use the pruned weights, while the (stochastic) gradient of that pruned
model updates the dense weights, so pruned weights keep learning and may come back when
the mask is recomputed from the dense magnitudes (Back to Basics, section 2.3).
"""

import torch
from torch import nn

from schema import ConfigError, Param

from methods import register
from methods.core.base import Phase
from methods.core.masks import SELECTION, PruneEvent, apply_masks, keep_masks, magnitude_prune, mask_of, prunable_modules
from methods.core.reparam import forward_with_weights, straight_through
from methods.core.schedules import Schedule, cyclic_linear, training_schedule, with_warmup
from .stable import PruningStable


def cubic_sparsity(goal: float, step: int, steps: int) -> float:
    """Zhu & Gupta's target after pruning step k of n: s (1 - (1 - k/n)^3)."""
    return goal * (1 - (1 - step / steps) ** 3)


@torch.no_grad()
def recompute_masks(model: nn.Module, sparsity: float, selection: str = "global") -> None:
    """Set every mask from scratch to the top weights by magnitude, round(sparsity * n) pruned
    as the ``selection`` spreads them, pruned weights ranked at their stored value; the
    weights themselves are left as they are."""
    modules = prunable_modules(model)
    scores = [m.weight.abs().flatten() for m in modules]
    for module, keep in zip(modules, keep_masks(modules, scores, sparsity, selection)):
        mask_of(module).copy_(keep.view_as(module.weight))


@torch.no_grad()
def zero_pruned_momentum(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    for module in prunable_modules(model):
        buffer = optimizer.state.get(module.weight, {}).get("momentum_buffer")
        if buffer is not None:
            buffer.mul_(mask_of(module))


class GradualSchedule(PruningStable):
    """The pruning schedule GMP and DPF share, at iteration granularity.

    With I = T * steps_per_epoch iterations of regular training, pruning step k (of n =
    ``steps``) follows iteration round(k I / (n + 1)): the last step reaches the goal and the
    final 1/(n + 1) of training recovers at it, as in the authors' code, which also stops
    pruning one interval before the end. Steps that round to the same iteration collapse
    into the last of them.

    ``pruning_interval`` = m epochs ("we prune every 5 or 10 epochs", Love Retraining,
    appendix C.3) places the steps as the authors' code does (strategies/scratchStrategies.py,
    GMP.__init__ with ``pruning_interval``): n = T // m - 1 steps, step k at the end of epoch
    k m, that is after iteration k m steps_per_epoch, with the same cubic s_k. When m divides
    T this is the schedule of ``steps`` = T / m - 1; otherwise the recovery after the last
    step lasts T - (T // m - 1) m epochs, from m to 2m - 1. The code asserts 2m <= T, so that
    there is a step; ``steps`` then follows from m and is left at its default.
    """

    params = {**PruningStable.params,
              "steps": Param(20, "pruning steps of the cubic schedule", "n", above=0, at_most=100_000),
              "pruning_interval": Param(None, "epochs between pruning steps, n = T // m - 1 steps (the authors' "
                                              "pruning_interval); None: the n = steps equally spaced steps",
                                        "m", type=int, above=0)}

    def phases(self) -> list[Phase]:
        interval, epochs = self.hp["pruning_interval"], self.training["epochs"]
        if interval is not None and 2 * interval > epochs:
            raise ConfigError(f"pruning every {interval} epochs leaves no pruning step in {epochs} epochs "
                              "(2 m <= T)", key="pruning_interval")
        if interval is not None and self.hp["steps"] != self.params["steps"].default:
            raise ConfigError("steps follow from pruning_interval: set one of them", key="steps")
        return super().phases()

    def pruning_iterations(self, steps_per_epoch: int) -> list[int]:
        """The iterations after which steps 1..n prune (n of them, perhaps repeated)."""
        epochs, interval = self.training["epochs"], self.hp["pruning_interval"]
        if interval is not None:
            return [k * interval * steps_per_epoch for k in range(1, epochs // interval)]
        n = self.hp["steps"]
        return [round(k * epochs * steps_per_epoch / (n + 1)) for k in range(1, n + 1)]

    def setup(self, model: nn.Module, steps_per_epoch: int) -> None:
        iterations = self.pruning_iterations(steps_per_epoch)
        n = len(iterations)
        self.step_sparsity = {i: cubic_sparsity(self.goal_sparsity, k, n) for k, i in enumerate(iterations, start=1)}
        self.steps_per_epoch = steps_per_epoch
        self.iteration, self.target = 0, 0.0

    def state_dict(self) -> dict:
        return {"iteration": self.iteration, "target": self.target}

    def load_state_dict(self, state: dict) -> None:
        self.iteration, self.target = state["iteration"], state["target"]

    def next_iteration(self) -> bool:
        """Count one iteration of regular training; True when a pruning step follows it,
        ``self.target`` then being the step's sparsity."""
        self.iteration += 1
        if self.iteration not in self.step_sparsity:
            return False
        self.target = self.step_sparsity[self.iteration]
        return True


@register
class GMP(GradualSchedule):
    """GMP: at every step of the cubic schedule the mask grows to s_k by magnitude.

    ``hard``: each step extends the mask among the remaining weights; pruned weights are
    zero and stay pruned. ``soft``: each step recomputes the mask from scratch over all
    weights, so a pruned weight comes back when its kept value ranks among the top
    (1 - s_k). As in the authors' code (torch.nn.utils.prune, whose optimizer steps
    ``weight_orig``), the stored weight keeps the pruned value and the forward pass uses
    weight * mask: a pruned weight gets no loss gradient, but SGD's weight decay, through
    the momentum, keeps shrinking its kept value. In both modes the momentum of pruned
    weights is zeroed at every pruning step. The hard prune at the end uses the goal and the
    selection; the last step already reached the goal, so it keeps the mask and zeroes the
    kept values.

    ``schedule``, the learning rate of the regular training (Love Retraining, appendix C.3,
    Table 28): None is the training's own (stepped in the paper); ``linear`` decays from
    eta_1 to zero over the T epochs, as the training's ``kind = "linear"`` would (an option
    here because a manifest row cannot change the training's schedule); ``cyclic`` is "a
    linearly decaying learning rate schedule that is restarted after every pruning point",
    its cycles ending "exactly at the next pruning step": from eta_1 to zero, the first
    cycle from the start of training to the first step, the last from the last step to the
    end of regular training, where the hard prune is the next pruning step (so the last
    cycle ends with the budget, as BIMP's last cycle does). Each cycle restarts at eta_1
    without warm-up, the paper naming none; the training's warm-up, if any, applies to
    both. The authors' code has no cyclic or per-method schedule (runners/baseRunner.py,
    define_optimizer_scheduler, one schedule for every strategy). FT after the hard prune
    takes its eta_T from this schedule, as PruningStable does from the training's.
    """

    name = "gmp"
    paper = "Zhu & Gupta (2017)"
    params = {**GradualSchedule.params,
              "mode": Param("hard", "hard: pruned weights stay pruned; soft: masks recomputed from scratch",
                            choices=("hard", "soft")),
              "selection": SELECTION,
              "schedule": Param(None, "learning-rate schedule of the regular training: linear decay to zero, or "
                                      "cyclic (linear decay restarted after every pruning step); None: the "
                                      "training's own (stepped in the paper)", type=str, choices=("linear", "cyclic"))}

    def training_lr(self) -> Schedule:
        kind, training = self.hp["schedule"], self.training
        if kind is None:
            return super().training_lr()
        lr, epochs, warmup = training["lr"], training["epochs"], training["lr_schedule"]["warmup_epochs"]
        if kind == "linear":
            return training_schedule(lr, epochs, "linear", warmup_epochs=warmup)
        restarts = [iteration / self.steps_per_epoch for iteration in self.step_sparsity]
        return with_warmup(cyclic_linear(lr, epochs, restarts), warmup)

    @property
    def keeps_pruned_values(self) -> bool:
        return self.hp["mode"] == "soft" and self.in_regular_training

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        if not self.keeps_pruned_values:
            return model(inputs)
        return forward_with_weights(model, inputs, {m: m.weight * mask_of(m) for m in prunable_modules(model)})

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        if self.in_regular_training and self.next_iteration():
            if self.hp["mode"] == "soft":
                recompute_masks(model, self.target, self.hp["selection"])
            else:
                magnitude_prune(model, self.target, self.hp["selection"])
            zero_pruned_momentum(model, optimizer)
        if not self.keeps_pruned_values:
            apply_masks(model, optimizer)


@register
class DPF(GradualSchedule):
    """DPF: the pruned model's gradient updates the dense weights (error feedback).

    The forward and backward passes use weight * mask, the gradient reaching every dense
    weight straight through; the dense weights are never zeroed during regular training
    and their momentum stays dense. The mask is recomputed from scratch, globally, from the
    dense magnitudes at the current scheduled sparsity every ``mask_interval`` iterations
    and, as in the authors' code, right after each pruning step of the schedule. The hard
    prune at the end applies the mask in use (as the authors' code does), so the pruned
    model is the one the last forward passes saw; weights outside it become exactly zero.
    The masks are chosen globally, as in the authors' code (strategies/scratchStrategies.py:
    DPF prunes through Dense.pruning_step, global_unstructured); ``selection = "uniform"``
    prunes every layer to the scheduled sparsity instead, so that no layer can empty.
    """

    name = "dpf"
    paper = "Lin et al. (2020)"
    params = {**GradualSchedule.params,
              "mask_interval": Param(16, "iterations between two recomputations of the mask", above=0),
              "selection": SELECTION}

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        if not self.in_regular_training:
            return model(inputs)
        weights = {m: straight_through(m.weight, mask_of(m)) for m in prunable_modules(model)}
        return forward_with_weights(model, inputs, weights)

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        if not self.in_regular_training:
            apply_masks(model, optimizer)
            return
        stepped = self.next_iteration()
        if stepped or self.iteration % self.hp["mask_interval"] == 0:
            recompute_masks(model, self.target, self.hp["selection"])

    def prune(self, model: nn.Module, sparsity: float) -> PruneEvent:
        # the mask in use ranks its pruned weights lowest
        return magnitude_prune(model, sparsity, self.hp["selection"])
