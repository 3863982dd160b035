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

from schema import Param

from methods import register
from methods.core.masks import SELECTION, PruneEvent, keep_largest, apply_masks, magnitude_prune, mask_of, prunable_modules
from methods.core.reparam import forward_with_weights, straight_through
from .stable import PruningStable


def cubic_sparsity(goal: float, step: int, steps: int) -> float:
    """Zhu & Gupta's target after pruning step k of n: s (1 - (1 - k/n)^3)."""
    return goal * (1 - (1 - step / steps) ** 3)


@torch.no_grad()
def recompute_masks(model: nn.Module, sparsity: float, selection: str = "global") -> None:
    """Set every mask from scratch to the top (1 - sparsity) weights by magnitude, pruned
    weights ranked at their stored value; the weights themselves are left as they are."""
    modules = prunable_modules(model)
    if selection == "global":
        scores = torch.cat([m.weight.abs().flatten() for m in modules])
        keeps = keep_largest(scores, round(sparsity * scores.numel())).split([m.weight.numel() for m in modules])
    else:
        keeps = [keep_largest(m.weight.abs().flatten(), round(sparsity * m.weight.numel())) for m in modules]
    for module, keep in zip(modules, keeps):
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
    """

    params = {**PruningStable.params,
              "steps": Param(20, "pruning steps of the cubic schedule", "n", above=0, at_most=100_000)}

    def setup(self, model: nn.Module, steps_per_epoch: int) -> None:
        iterations, n = self.training["epochs"] * steps_per_epoch, self.hp["steps"]
        self.step_sparsity = {round(k * iterations / (n + 1)): cubic_sparsity(self.goal_sparsity, k, n)
                              for k in range(1, n + 1)}
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
    """

    name = "gmp"
    paper = "Zhu & Gupta (2017)"
    params = {**GradualSchedule.params,
              "mode": Param("hard", "hard: pruned weights stay pruned; soft: masks recomputed from scratch",
                            choices=("hard", "soft")),
              "selection": SELECTION}

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
