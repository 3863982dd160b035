"""SNAP-it (Verdenius, Stol & Forré, 2020, section 3, "Structured pruning before training"):
SNIP-it's iterative schedule applied to nodes, ranked by their elasticity.

A gate c = 1 multiplies the output of every node (eq. 4: h(diag(c) (Θ x + b))), and a
node's score is |dL/dc|, its elasticity up to the factor 1 / L, which is the same for every
node and leaves the ranking as it is. The nodes are those of ``methods.core.nodes``: the
output units of every convolutional and linear layer but the last.
"""

import math

import torch
from torch import nn

from methods import register

from methods.at_init.sensitivity import Batch, mean_gradient
from methods.at_init.snip import SNIPit
from methods.core.masks import keep_largest, mask_of
from methods.core.nodes import keep_nodes, node_layers, scale_outputs


def node_elasticity(model: nn.Module, batches: list[Batch], loss: str = "target-logit") -> list[torch.Tensor]:
    """|dL/dc| for every node layer: c is a gate of ones multiplying the layer's output
    channels (after its bias, before what follows, BatchNorm included), L the loss whose
    gradient ``mean_gradient`` takes. dL/dc_k is the sum over node k's weights and bias of
    g ⊙ θ: the absolute value of that sum, not the sum of their elasticities |g ⊙ w|."""
    layers = node_layers(model)
    gates = [torch.ones(m.weight.shape[0], dtype=m.weight.dtype, device=m.weight.device, requires_grad=True)
             for m in layers]

    handles = [scale_outputs(m, lambda module, gate=gate: gate) for m, gate in zip(layers, gates)]
    try:
        return [g.abs() for g in mean_gradient(model, batches, gates, loss)]
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def keep_top_nodes(model: nn.Module, scores: list[torch.Tensor], sparsity: float, example: torch.Tensor) -> None:
    """Prune the nodes of lowest ``scores``, ranked over all node layers together, so that
    round(sparsity * N) of the N nodes are pruned; a layer left without a node keeps its
    remaining node of highest score. Then the weights reading the pruned nodes are cut
    (``cut_dead_inputs``, on an ``example`` input). Pruned nodes stay pruned: they rank below
    every other."""
    remaining = [mask_of(m).flatten(1).any(dim=1) for m in node_layers(model)]
    ranked = [torch.where(alive, s, -math.inf) for alive, s in zip(remaining, scores)]
    flat = torch.cat(ranked)
    keeps = keep_largest(flat, round(sparsity * flat.numel())).split([r.numel() for r in ranked])
    keep_nodes(model, list(keeps), example, scores)


@register
class SNAPit(SNIPit):
    """SNAP-it: SNIP-it's schedule of s + 2 steps to the goal node sparsity kappa, each step
    ranking the nodes by ``node_elasticity`` on a fresh draw of ``score_batches`` training
    batches; before training (tau = 0) by default, or during it (``timing``).

    As in the authors' code (models/criterions/SNAP.py, SNAPit.py, SNAPitDuring.py), where
    the paper is silent:
    - the gate multiplies the output of the convolution or linear layer, its bias included,
      before the BatchNorm (``insert_governing_variables``, the ``group_snip_*_forward`` of
      utils/snip_utils.py); the statistic is taken as SNIP's (``methods.at_init.snip``): 5
      batches, evaluation mode, the loss their code computes (``score_loss``); they divide
      every score by |L|, which ranks alike;
    - "not pruning away the input and output nodes" (section 3): the network's input
      channels and the last layer's units are never candidates; the first layer's filters
      are (``handle_pruning`` cuts off the first layer's input gate and the last layer's
      output gate when --outer_layer_pruning is off, as for every structured run);
    - all nodes are ranked together; step i prunes round(s_i N) of the N nodes, those pruned
      before first (theirs keeps the remaining nodes scoring at least the threshold that
      leaves int(n (1 - p)) of them, p the share of the n remaining to prune, ties kept);
    - "not prune away entire layers": a layer left without a node keeps its remaining node
      of highest score, so a step may prune fewer ("ensure not disconnecting");
    - a pruned node's filter or row, bias, BatchNorm entries and the next layer's columns
      reading it are removed from the tensors (``handle_output``, ``handle_batch_norm``,
      ``handle_input``; a linear layer after the flattening loses the node's columns at
      every pooled position). Here its mask row goes and the weights of every later layer
      reading a channel that depends on no remaining node are masked
      (``methods.core.nodes.cut_dead_inputs``): the masked network computes what the
      smaller one does, and the weight sparsity counts those columns, as theirs counts the
      weights removed. Its bias and BatchNorm entries stay, read by nothing.
    Their code refuses residual networks with structured pruning (README; main.py,
    ``assert_compatibilities``); here every convolution, a shortcut's too, has a gate, and a
    pruned filter's channel that a residual sum keeps alive still adds its constant.

    ``timing = "during"`` is their SNAPitDuring, which the paper leaves out of its tables
    (appendix: on par with SNAP-it before training): one step after each pruning epoch, as
    SNIP-it during training; their trainer makes a fresh optimizer after each of its steps,
    here the optimizer goes on, as for SNIP-it.
    """

    name = "snap-it"
    paper = "Verdenius, Stol & Forré (2020), section 3 (structured pruning before training, eq. 4) and Algorithm 1"

    @property
    def structured(self) -> bool:
        return True

    def step(self, model, sparsity: float) -> None:
        """One step of the schedule to the node ``sparsity``, on a fresh draw of batches."""
        batches = self.scoring_batches()
        keep_top_nodes(model, node_elasticity(model, batches, self.hp["score_loss"]), sparsity, batches[0][0])
