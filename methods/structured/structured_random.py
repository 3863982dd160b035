"""Random node pruning before training, the SNIP-it paper's structured "Random" baseline
(Verdenius, Stol & Forré, 2020, Tables 1 and 4; "Random forms a strong baseline")."""

import math

import torch
from torch import nn

from methods import register

from methods.at_init.sensitivity import AtInitialisation
from methods.core.masks import PruneEvent, measured
from methods.core.nodes import keep_nodes, node_layers


def random_keeps(sizes: list[int], sparsity: float) -> list[torch.Tensor]:
    """Per node layer of n nodes, a keep vector with ceil(sparsity * n) random entries False,
    but never all of them: a layer that would lose every node keeps one, drawn at random."""
    keeps = []
    for n in sizes:
        keep = torch.ones(n, dtype=torch.bool)
        keep[torch.randperm(n)[:math.ceil(sparsity * n)]] = False
        if not keep.any():
            keep[torch.randint(n, ())] = True
        keeps.append(keep)
    return keeps


@register
class StructuredRandom(AtInitialisation):
    """Every layer with nodes (``methods.core.nodes``: every convolutional and linear layer
    but the last) loses the share kappa of its nodes, drawn uniformly at random at
    initialisation; the pruned network then trains for the whole budget.

    As the authors' code (models/criterions/StructuredRandom.py, ``get_out_vector`` and
    ``get_inclusion_vectors``): a layer of n nodes loses ceil(kappa n) of them (their
    ``init.sparse`` zeroes that many entries of a column), and one drawn at random stays when
    none would; the network's inputs and the last layer's units are kept whole. The readers
    of a pruned node are cut (``cut_dead_inputs``), as their tensors lose its columns. The draws
    come from torch's global generator, seeded with the run's seed.
    """

    name = "structured-random"
    paper = "Verdenius, Stol & Forré (2020), the structured Random baseline (before training)"

    @property
    def structured(self) -> bool:
        return True

    @torch.no_grad()
    def prune(self, model: nn.Module, sparsity: float) -> PruneEvent:
        keeps = random_keeps([m.weight.shape[0] for m in node_layers(model)], sparsity)
        example = next(self.training_batches())[0]
        return measured(model, None, lambda: keep_nodes(model, keeps, example))
