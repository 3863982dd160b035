"""Group-HS (Yang, Wen & Li, 2020, DeepHoyer), the SNIP-it paper's structured baseline
"after" training (Verdenius, Stol & Forré, 2020, section 4 and appendix F).

HoyerSquare's scheme (``methods.pruning_stable.hoyer_square``) on groups of weights: the
loss gains lambda * sum_l G(W_l), with G the group Hoyer-square measure of layer l,
(sum_g ||w_g||_2)^2 / sum_g ||w_g||_2^2, which drives whole groups to zero; after the
regularised training a threshold removes the nodes whose weights it left below t.
"""

import torch
from torch import nn

from methods import register

from methods.core.masks import PruneEvent, measured
from methods.core.nodes import keep_nodes, node_layers
from methods.pruning_stable.hoyer_square import HoyerSquare


def group_hoyer_square(weight: torch.Tensor) -> torch.Tensor:
    """(sum_k ||w_k,:||)^2 / ||W||^2 + (sum_j ||w_:,j||)^2 / ||W||^2: the group Hoyer-square
    measure over the rows (output units, a filter for a convolution) plus that over the
    columns (input channels, all of a channel's kernel positions), Euclidean norms."""
    rows = weight.flatten(1).norm(dim=1)
    columns = weight.transpose(0, 1).flatten(1).norm(dim=1)
    return (rows.sum() ** 2 + columns.sum() ** 2) / weight.pow(2).sum()


@register
class GroupHoyerSquare(HoyerSquare):
    """Group-HS: the group Hoyer-square regulariser while training, then a threshold on nodes.

    As the SNIP-it authors ran it (models/losses/GroupHoyerSquare.py, ``forward``;
    models/criterions/GroupHoyerSquare.py, ``get_out_vector`` through StructuredRandom.py's
    ``prune``; README: --hoyer_reg <REG> --epochs 80 --prune_delay 69 --prune_freq 1
    --group_hoyer_square), where DeepHoyer's grouping is theirs:
    - each layer's term groups its weight both ways, by output unit and by input channel, and
      adds the two measures (``group_hoyer_square``), over every convolutional and linear
      layer, the first and last too; their loss handles 2-d and 4-d weights, here any (a 1-d
      convolution's too);
    - a node (``methods.core.nodes``: an output unit of any layer but the last) is kept when
      one of its weights has |w| > t, t = 1e-3: their threshold on elements, so a group goes
      when its largest |w|, not its Euclidean norm, is at most t. Kept nodes keep their small
      weights (their mask is whole nodes only); a pruned node's readers are cut, as their
      tensors lose its columns (see ``SNAPit``). A layer that would lose every node keeps the
      one of largest |w| (theirs a random one); the network's inputs are never cut;
    - the regulariser falls silent after the threshold, and a fresh optimizer trains the last
      9 of the 80 epochs (GroupHoyerSquare is among their DURING_TRAINING criteria), the
      learning rate going on along the training's schedule.
    lambda (``hoyer_reg``) is the sparsity search's knob on a log scale, the threshold fixed,
    as for HoyerSquare.
    """

    name = "group-hs"
    paper = "Yang, Wen & Li (2020), Group-HS; as implemented by Verdenius, Stol & Forré (2020), appendix F"
    keeps_optimizer_after_threshold = False
    sparsity_column = "node_sparsity"  # the search fits the nodes it prunes, as the paper's Figure 1 plots them

    @property
    def structured(self) -> bool:
        return True

    def measure(self, weight: torch.Tensor) -> torch.Tensor:
        return group_hoyer_square(weight)

    @torch.no_grad()
    def prune(self, model: nn.Module, sparsity: None) -> PruneEvent:
        """Prune the nodes all of whose weights have |w| <= t; ``sparsity`` is ignored."""
        largest = [m.weight.abs().flatten(1).amax(dim=1) for m in node_layers(model)]
        example = next(self.training_batches())[0]
        keeps = [row > self.hp["threshold"] for row in largest]
        return measured(model, None, lambda: keep_nodes(model, keeps, example, largest))
