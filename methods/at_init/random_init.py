"""Random unstructured pruning at initialisation, the SNIP-it paper's "Random (before)"
baseline (the authors' models/criterions/UnstructuredRandom.py)."""

import torch

from methods import register
from schema import Param

from methods.core.masks import PruneEvent, apportion, mask_of, measured, prunable_modules
from .sensitivity import AtInitialisation


@register
class RandomInit(AtInitialisation):
    """Random pruning at initialisation, every layer to the goal sparsity s on its own.

    The authors' code keeps each weight of every layer independently with probability 1 - s
    (``torch.bernoulli``), so each layer, and the network, reach s only in expectation:
    ``draw = "bernoulli"``. By default (``exact``) each layer l loses exactly its share of
    the round(s n) pruned weights, in proportion to its n_l weights (``apportion``: within one
    weight of s n_l), drawn uniformly at random, so that runs compare at the goal. The draws
    come from torch's global generator, seeded with the run's seed, on the CPU.
    """

    name = "random-init"
    paper = "Verdenius, Stol & Forré (2020), the Random baseline"
    params = {"draw": Param("exact", "exact: every layer loses its share of round(s n) weights at random; bernoulli: "
                                     "every weight is kept with probability 1 - s (the authors' code)",
                            choices=("exact", "bernoulli"))}

    def prune(self, model, sparsity: float) -> PruneEvent:
        masks = [mask_of(m) for m in prunable_modules(model)]

        def draw() -> None:
            if self.hp["draw"] == "bernoulli":
                for mask in masks:
                    mask.copy_(torch.rand(mask.shape) >= sparsity)
                return
            for mask, count in zip(masks, apportion(round(sparsity * sum(m.numel() for m in masks)),
                                                    [m.numel() for m in masks])):
                keep = torch.ones(mask.numel(), dtype=torch.bool)
                keep[torch.randperm(mask.numel())[:count]] = False
                mask.copy_(keep.view_as(mask))

        return measured(model, sparsity if self.hp["draw"] == "exact" else None, draw)
