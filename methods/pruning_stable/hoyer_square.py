"""HoyerSquare (Yang, Wen & Li, 2020, DeepHoyer), the SNIP-it paper's unstructured baseline
"after" training (Verdenius, Stol & Forré, 2020, section 4 and appendix F).

The loss gains lambda * sum_l H_S(W_l), with H_S(w) = (sum_i |w_i|)^2 / sum_i w_i^2 the
Hoyer-square measure of layer l's weights, which is scale-invariant and smallest for a
sparse w. After the regularised training, a hard threshold keeps the weights with |w| > t;
the network then trains on with its masks and without the regulariser. Its sparsity
follows from lambda (the sparsity search's knob) and t.
"""

from typing import ClassVar

import torch
from torch import nn

from methods import register
from schema import REQUIRED, ConfigError, Param

from methods.core.base import Method, Phase
from methods.core.masks import PruneEvent, mask_of, measured, prunable_modules
from methods.core.schedules import train_from

REGULAR, FINETUNE = "train", "finetune"


def swept_lambda(what: str, flag: str) -> Param:
    """The required strength lambda of a sparsity-inducing term, as the SNIP-it paper sweeps it
    for HoyerSquare, Group-HS and L0 regularisation (appendix F: 10 log steps over [1e-6, 5])."""
    return Param(REQUIRED, f"lambda: the strength of {what} ({flag}; the paper sweeps [1e-6, 5])", "lambda",
                 type=float, above=0)


def hoyer_square(weight: torch.Tensor) -> torch.Tensor:
    """H_S(w) = (sum |w|)^2 / sum w^2."""
    return weight.abs().sum() ** 2 / weight.pow(2).sum()


@register
class HoyerSquare(Method):
    """HoyerSquare: the Hoyer-square regulariser while training, then a hard threshold.

    As the SNIP-it authors ran it (models/losses/HoyerSquare.py, ``forward``;
    models/criterions/HoyerSquare.py, ``prune``; utils/constants.py, HOYER_THERSHOLD; README:
    --hoyer_reg <REG> --epochs 80 --prune_delay 69 --prune_freq 1 --hoyer_square).

    The regulariser sums H_S over the weights of every convolutional and linear layer (their
    loss takes every parameter of two or more dimensions: in these networks, those weights)
    and falls silent once the threshold has pruned. The threshold t = 1e-3 (``threshold``,
    appendix F, tuned by the authors; Yang et al. recommend 1e-4) prunes every such weight
    with |w| <= t, once, after the training epoch 70 (counted from 0) of their 80, so that
    the last 9 train with the masks: here after round((1 - f) T) epochs, f the
    ``finetune_fraction`` 9 / 80. One optimizer serves the whole run, and the learning rate
    goes on along the training's schedule, as in their trainer, where HoyerSquare is not a
    criterion whose optimizer is made anew. The final model is reported.

    The sparsity search's knob is lambda (``hoyer_reg``, searched on a log scale), as in the
    paper, which sweeps "10 logarithmic intervals in the range [5, 1e-6]" of it (appendix F)
    with t fixed.
    """

    name = "hoyer-square"
    paper = "Yang, Wen & Li (2020); as implemented by Verdenius, Stol & Forré (2020), appendix F"
    takes_goal = False
    learns_sparsity = True
    pruning_stable = True
    sparsity_control = ("hoyer_reg", "log")
    params = {
        "hoyer_reg": swept_lambda("the Hoyer-square regulariser", "--hoyer_reg"),
        "threshold": Param(1e-3, "t: weights with |w| <= t are pruned after the regularised training (the authors' "
                                 "HOYER_THERSHOLD)", "t", above=0),
        "finetune_fraction": Param(9 / 80, "share f of the budget T trained after the threshold, with the masks and "
                                           "without the regulariser (the authors' 9 of 80 epochs)", "f",
                                   at_least=0, below=1),
    }

    # the optimizer, and its state, goes on after the threshold (False: a fresh one)
    keeps_optimizer_after_threshold: ClassVar[bool] = True

    def setup(self, model: nn.Module, steps_per_epoch: int) -> None:
        self.steps_per_epoch = steps_per_epoch

    def measure(self, weight: torch.Tensor) -> torch.Tensor:
        """The sparsity measure of one layer's weight that the regulariser sums."""
        return hoyer_square(weight)

    def phases(self) -> list[Phase]:
        epochs = self.training["epochs"]
        regular = epochs - round(self.hp["finetune_fraction"] * epochs)
        if regular < 1:
            raise ConfigError(f"leaves no epoch of regularised training in a {epochs}-epoch budget",
                              key="finetune_fraction")

        def go_on(event):
            return train_from(self.training_lr(), regular, epochs, self.steps_per_epoch)

        return [Phase(REGULAR, regular, lambda event: self.training_lr()),
                Phase(FINETUNE, epochs - regular, go_on, prunes=True,
                      keeps_optimizer=self.keeps_optimizer_after_threshold)]

    def regularizer(self, model: nn.Module) -> torch.Tensor | None:
        if self.phase is None or self.phase.name != REGULAR:
            return None
        return self.hp["hoyer_reg"] * sum(self.measure(m.weight) for m in prunable_modules(model))

    @torch.no_grad()
    def prune(self, model: nn.Module, sparsity: None) -> PruneEvent:
        """Keep the weights with |w| > t, compared in the weights' precision as the authors'
        criterion does; ``sparsity`` is ignored."""
        def threshold() -> None:
            for module in prunable_modules(model):
                mask_of(module).copy_(module.weight.abs() > self.hp["threshold"])

        return measured(model, None, threshold)
