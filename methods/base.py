"""The interface between a pruning method and the one training loop.

A method is a small class whose hooks the loop in ``bench.train`` calls at fixed points:
``setup`` before training, ``forward`` for every forward pass, ``regularizer`` added to the loss, ``after_backward`` before the
optimizer step (gradient edits), ``after_step`` after it (masks re-applied), ``end_epoch``
after every epoch. Its training is a sequence of phases (regular training, prune-retrain
cycles), each with its own epochs and learning-rate schedule; a phase may open with a
pruning step.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .masks import PruneEvent, apply_masks, magnitude_prune
from .schedules import Schedule, training_schedule

REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """A method hyperparameter: its default (REQUIRED if none) and, for strings, its choices."""

    default: Any = REQUIRED
    choices: tuple | None = None
    kind: type | None = None
    positive: bool = False

    @property
    def type(self) -> type:
        return self.kind or type(self.default)


@dataclass(frozen=True)
class Phase:
    """``epochs`` of training under the schedule built by ``schedule(event)``, where event
    is the pruning step to ``prune_to`` that opens the phase (None if it prunes nothing)."""

    name: str
    epochs: int
    schedule: Callable[[PruneEvent | None], Schedule]
    prune_to: float | None = None


class Method:
    """Dense training; the base every method specialises."""

    name: ClassVar[str]
    params: ClassVar[dict[str, Param]] = {}
    takes_goal: ClassVar[bool] = True  # is given a goal sparsity
    prunes_after_training: ClassVar[bool] = False  # starts from the dense run of its seed and config

    def __init__(self, hp: dict, training: dict, goal_sparsity: float | None):
        self.hp, self.training, self.goal_sparsity = hp, training, goal_sparsity

    def training_lr(self) -> Schedule:
        t = self.training
        return training_schedule(t["lr"], t["epochs"], **t["lr_schedule"])

    def phases(self) -> list[Phase]:
        return [Phase("train", self.training["epochs"], lambda event: self.training_lr())]

    def prune(self, model: nn.Module, sparsity: float) -> PruneEvent:
        return magnitude_prune(model, sparsity, self.hp.get("selection", "global"))

    def setup(self, model: nn.Module) -> None:
        pass

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
