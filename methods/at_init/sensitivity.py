"""Sensitivity statistics of the prunable weights on training batches, the masks they
select, and what the methods pruning at initialisation share.

Both statistics are taken as the SNIP-it authors' code takes them (StijnVerdenius/SNIP-it,
models/criterions/SNIP.py, ``get_weight_saliencies``; GRASP.py, ``their_implementation``):
with the model in evaluation mode (BatchNorm on its running statistics, no dropout) and
back in training mode after, on the weights as they are (a pruned weight is zero), the
gradients taken with respect to the weights of every convolutional and linear layer.
"""

import itertools
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from schema import Param

from methods.core.base import Method, Phase
from methods.core.masks import PruneEvent, apply_masks, keep_largest, mask_of, measured, prunable_modules

Batch = tuple[torch.Tensor, torch.Tensor]

# The SNIP-it authors' SNIP takes F.nll_loss of the network's raw outputs (their networks end in
# a linear layer), which is minus the mean logit of the target class; the paper's L is the loss.
LOSSES = {"target-logit": F.nll_loss, "cross-entropy": F.cross_entropy}
GRASP_CHUNK = 20  # examples per loss in the authors' GraSP code (their ``intv``)


@contextmanager
def evaluation_mode(model: nn.Module, training: bool = False) -> Iterator[None]:
    """The model in evaluation mode (or, ``training``, in training mode), then back as it was."""
    was_training = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(was_training)


def accumulated(gradients: Iterable[tuple[torch.Tensor, ...]], weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """The sum of the ``gradients`` (one per weight each), added up one at a time."""
    total = [torch.zeros_like(w) for w in weights]
    for parts in gradients:
        for sum_, part in zip(total, parts):
            sum_ += part
    return total


@torch.enable_grad()
def mean_gradient(model: nn.Module, batches: list[Batch], tensors: list[torch.Tensor],
                  loss: str = "target-logit", training: bool = False) -> list[torch.Tensor]:
    """The gradient with respect to ``tensors`` of the mean, over the ``batches``, of each
    batch's mean ``loss`` (``LOSSES``), in evaluation mode (``training``: in training mode,
    BatchNorm on each batch's statistics, which also move its running ones, and dropout on)."""
    with evaluation_mode(model, training):
        return accumulated((torch.autograd.grad(LOSSES[loss](model(inputs), targets) / len(batches), tensors)
                            for inputs, targets in batches), tensors)


def connection_sensitivity(model: nn.Module, batches: list[Batch], loss: str = "target-logit") -> list[torch.Tensor]:
    """SNIP's |g ⊙ w| for every prunable layer (Lee et al., 2019, eq. 6 up to its normalisation;
    SNIP-it's weight elasticity |g ⊙ w| / L up to the 1 / L): g is the ``mean_gradient``."""
    weights = [m.weight for m in prunable_modules(model)]
    return [(g * w).abs().detach() for g, w in zip(mean_gradient(model, batches, weights, loss), weights)]


@torch.no_grad()
def mean_loss(model: nn.Module, batches: list[Batch], loss: str = "target-logit") -> float:
    """The mean over the ``batches`` of each batch's mean ``loss``, in evaluation mode: the L
    whose gradient ``mean_gradient`` takes."""
    with evaluation_mode(model):
        return sum(LOSSES[loss](model(inputs), targets).item() for inputs, targets in batches) / len(batches)


def weight_elasticity(model: nn.Module, batches: list[Batch], loss: str = "target-logit") -> list[torch.Tensor]:
    """SNIP-it's weight elasticity |dL/dw * w / L| for every prunable layer (section 3, eq. 3):
    the ``connection_sensitivity`` over |L|, L the ``mean_loss``. The authors' code
    (models/criterions/SNIP.py, ``get_weight_saliencies``) divides |g ⊙ w| by the same L
    (plus 1e-8); with their loss, minus the mean target logit, L may be negative, and the
    elasticity is the absolute value of the quotient as the formula's."""
    size = abs(mean_loss(model, batches, loss))
    return [s / size for s in connection_sensitivity(model, batches, loss)]


@torch.enable_grad()
def gradient_flow(model: nn.Module, batches: list[Batch], temperature: float = 200.0) -> list[torch.Tensor]:
    """GraSP's S(-w) = -w ⊙ Hg for every prunable layer (Wang et al., 2020, eq. 8).

    The examples of the ``batches`` are taken in chunks c of 20, as in the authors' code; L_c
    is the cross-entropy of the logits divided by the ``temperature`` T, averaged over chunk
    c. g = sum_c grad L_c is held fixed, and Hg = sum_c grad (g . grad L_c) by a second
    backward pass through the first. (With chunks of one size this is, up to a positive
    factor, g and Hg of the mean loss; the last, smaller chunk of a batch weighs its
    examples more.)"""
    weights = [m.weight for m in prunable_modules(model)]
    chunks = [(x, y) for inputs, targets in batches
              for x, y in zip(inputs.split(GRASP_CHUNK), targets.split(GRASP_CHUNK))]

    def loss(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(inputs) / temperature, targets)

    with evaluation_mode(model):
        g = accumulated((torch.autograd.grad(loss(x, y), weights) for x, y in chunks), weights)

        def hessian_gradient(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
            gradient = torch.autograd.grad(loss(x, y), weights, create_graph=True)
            return torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, gradient)), weights)

        hg = accumulated((hessian_gradient(x, y) for x, y in chunks), weights)
    return [-(w * h).detach() for w, h in zip(weights, hg)]


@torch.no_grad()
def keep_top(model: nn.Module, scores: list[torch.Tensor], sparsity: float) -> None:
    """Mask all but the highest ``scores`` of the remaining weights, ranked over all prunable
    layers together, so that round(sparsity * n) of the n prunable weights are pruned, and
    zero the weights pruned. Pruned weights stay pruned: they rank below every other."""
    masks = [mask_of(m) for m in prunable_modules(model)]
    ranked = torch.cat([torch.where(mask, s, -math.inf).flatten() for mask, s in zip(masks, scores)])
    keep = keep_largest(ranked, round(sparsity * ranked.numel()))
    for mask, part in zip(masks, keep.split([mask.numel() for mask in masks])):
        mask.copy_(part.view_as(mask))
    apply_masks(model)


class AtInitialisation(Method):
    """Prunes once, to the goal, at epoch 0 before the first step on the freshly initialised
    weights; then the pruned network trains for the whole schedule, its masks fixed
    (re-applied after every step, the momentum of pruned weights zeroed)."""

    def phases(self) -> list[Phase]:
        return [Phase("train", self.training["epochs"], lambda event: self.training_lr(), prunes=True,
                      sparsity=self.goal_sparsity)]


class Scored(AtInitialisation):
    """Pruning by a statistic of ``score_batches`` training batches, each scoring step on a
    fresh draw of them (a new pass over the shuffled training split): a subclass's
    ``scores(model)`` gives it per prunable layer, and the highest are kept."""

    params = {"score_batches": Param(5, "training batches (of the training batch size) the statistic is taken on: "
                                        "the authors' SNIP_BATCH_ITERATIONS, 5 x 512 = the paper's 2560 samples",
                                     above=0, at_most=10_000)}

    def scoring_batches(self) -> list[Batch]:
        return list(itertools.islice(self.training_batches(), self.hp["score_batches"]))

    def prune(self, model: nn.Module, sparsity: float) -> PruneEvent:
        return measured(model, sparsity, lambda: keep_top(model, self.scores(model), sparsity))
