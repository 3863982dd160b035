"""The interface between a pruning method and the one training loop.

A method is a small class whose hooks the loop in ``bench.train`` calls at fixed points:

- ``setup(model, steps_per_epoch)`` once, before any optimizer exists (extra learnable
  tensors such as thresholds or mask logits are registered on the modules here);
- ``use_training_data(batches)`` once, after ``setup``: ``batches()`` opens a new shuffled
  (and augmented) pass over the training split in batches of the training batch size, drawn
  from the run's generator as the training epochs are, for methods that score the weights on
  training data when they prune (SNIP, GraSP);
- ``optimizer_groups(model)`` whenever an optimizer is built (when a phase starts, unless it
  keeps the optimizer of the phase before);
- ``enter(phase)`` when a phase starts, after its pruning step;
- ``forward(model, inputs)`` for every forward pass, in training and evaluation;
- ``regularizer(model)``, a term added to the loss;
- ``after_backward(model)`` with the gradients in place, before the optimizer step;
- ``after_step(model, optimizer)`` after every step (by default: re-apply the masks);
- ``end_epoch(model, epoch)`` after every epoch;
- ``prune(model, sparsity)`` for the pruning step that opens a phase;
- ``measurements(model)`` once, on the final model: rows the run's history ends with (a
  probe's findings);
- ``state_dict()`` at every checkpoint and ``load_state_dict(state)`` on resuming from
  one, after ``setup`` on a freshly built model.

What a method keeps from one step or epoch to the next (iteration counters, schedule
positions) is its state: ``state_dict`` returns it as tensors and plain values (ints,
floats, bools, strings, None, and lists and dicts of them), ``load_state_dict`` puts it
back. What ``setup`` derives from the configuration is recomputed on resume, not saved;
tensors on the model (masks, learned thresholds) travel with the model's state dict.

Training is a sequence of phases (regular training, prune-retrain cycles, fine-tuning),
each with its own epochs and learning-rate schedule.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from schema import Param, resolve

from methods.core.masks import PruneEvent, apply_masks, magnitude_prune
from methods.core.schedules import Schedule, training_schedule


@dataclass(frozen=True)
class Phase:
    """``epochs`` of training under the schedule built by ``schedule(event)``.

    A phase with ``prunes`` opens with ``method.prune(model, sparsity)``; event is what that
    step did (None for a phase that prunes nothing). Only ``timed`` phases count towards
    the run's training time. A phase that ``keeps_optimizer`` goes on with the optimizer,
    and so the momentum, of the phase before; any other starts with a fresh one. A phase
    that ``measures_train_accuracy`` has the loop evaluate the training split right after
    its pruning step, and before the run's first pruning step (the dense model), each pass
    counted as training time when the phase is timed; the event carries both accuracies.
    A phase that ``rewinds_to`` epoch g starts, after its pruning step, from the weights the
    dense parent stored at its epoch g (``Method.stored_epochs``); one that ``reinitialises``
    from freshly initialised weights; both keep the masks.
    """

    name: str
    epochs: int
    schedule: Callable[[PruneEvent | None], Schedule]
    prunes: bool = False
    sparsity: float | None = None
    timed: bool = True
    keeps_optimizer: bool = False
    measures_train_accuracy: bool = False
    rewinds_to: int | None = None
    reinitialises: bool = False


class Method:
    """Dense training; the base every method specialises."""

    name: ClassVar[str]
    paper: ClassVar[str] = ""  # where the method is defined, e.g. "Zhu & Gupta (2017)"
    params: ClassVar[dict[str, Param]] = {}
    takes_goal: ClassVar[bool] = True  # is given a goal sparsity
    prunes_after_training: ClassVar[bool] = False  # starts from the dense run of its seed and config
    pruning_stable: ClassVar[bool] = False  # sparsifies while training, then a hard prune and FT
    learns_sparsity: ClassVar[bool] = False  # its final sparsity follows from hyperparameters, not a goal
    # (hyperparameter, "linear" or "log"): what sets a learned sparsity, searched on that scale
    sparsity_control: ClassVar[tuple[str, str] | None] = None
    # the record column that sparsity is read from when the search fits it to the goals
    sparsity_column: ClassVar[str] = "sparsity"
    # Raise it when a change of the code changes what the method's runs compute: it is part of
    # the run id (from 1 on), so stored runs of the earlier code are run again, not reused.
    revision: ClassVar[int] = 0
    # Report the better (by validation accuracy) of the model right after the last pruning
    # step and the model at the end of training, as Back to Basics does for pruning-stable methods.
    better_of_pruned_and_retrained: ClassVar[bool] = False

    @classmethod
    def resolve(cls, values: dict) -> dict:
        """The method's hyperparameters from the values a manifest (or a test) gives:
        checked against ``params``, defaults filled in; ConfigError names the key."""
        return resolve(cls.params, values)

    def __init__(self, hp: dict, training: dict, goal_sparsity: float | None):
        self.hp, self.training, self.goal_sparsity = hp, training, goal_sparsity
        self.phase: Phase | None = None

    def training_lr(self) -> Schedule:
        t = self.training
        return training_schedule(t["lr"], t["epochs"], **t["lr_schedule"])

    def phases(self) -> list[Phase]:
        return [Phase("train", self.training["epochs"], lambda event: self.training_lr())]

    def prune(self, model: nn.Module, sparsity: float | None) -> PruneEvent:
        return magnitude_prune(model, sparsity, self.hp.get("selection", "global"))

    def setup(self, model: nn.Module, steps_per_epoch: int) -> None:
        pass

    def use_training_data(self, batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]) -> None:
        self.training_batches = batches

    @property
    def structured(self) -> bool:
        """Does it prune whole units (filters, nodes)? Then its FLOPs count the inputs that
        pruned units leave dead in the next layer (``bench.metrics.flops``)."""
        return self.hp.get("structure") is not None

    def stored_epochs(self) -> list[int]:
        """The epochs after which the run stores its weights, for runs that rewind to them
        (epoch 0: the initial weights)."""
        return []

    def rewind_epochs(self) -> set[int]:
        """The epochs of its dense parent whose stored weights the run rewinds to."""
        return {phase.rewinds_to for phase in self.phases() if phase.rewinds_to is not None}

    def optimizer_groups(self, model: nn.Module) -> list[dict]:
        """Parameter groups of the optimizer; groups may override lr-independent settings
        such as weight_decay."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def enter(self, phase: Phase) -> None:
        self.phase = phase

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """The forward pass, in training and evaluation; reparametrising methods override it."""
        return model(inputs)

    def regularizer(self, model: nn.Module) -> torch.Tensor | None:
        return None

    def after_backward(self, model: nn.Module) -> None:
        pass

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        apply_masks(model, optimizer)

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        pass

    def measurements(self, model: nn.Module) -> list[dict]:
        """Rows the run's history ends with, measured on the final model; none by default."""
        return []

    def mask_dynamics(self) -> float | None:
        """The pruning fraction p whose mask dynamics the loop records in the history after
        every epoch (``methods.core.dynamics``); None: none recorded."""
        return None

    def state_dict(self) -> dict:
        """What the method keeps between steps; empty for a method that keeps nothing."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""
