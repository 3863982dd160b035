"""GateDecorators (You, Yan, Ye, Ma & Wang, 2019, "Gate Decorator: Global Filter Pruning
Method for Accelerating Deep Convolutional Neural Networks") as the SNIP-it paper runs it
(Verdenius, Stol & Forré, 2020, section 4 and appendix F): a trained network's nodes get a
gate phi, a scaling factor on the output of the BatchNorm after them, and are pruned in
steps, globally by the Taylor score |phi * dL/dphi|, alternating epochs that train the
gates only (tick) with epochs that train everything (tock), then fine-tuned.
"""

import itertools

import torch
from torch import nn

from methods import register
from schema import ConfigError, Param

from methods.at_init.sensitivity import Batch, mean_gradient
from methods.at_init.snip import SCORE_LOSS
from methods.core.base import Method, Phase
from methods.core.masks import PruneEvent, measured
from methods.core.nodes import node_layers, scale_outputs
from methods.structured.snap_it import keep_top_nodes

GATE = "gate"
TICK, TOCK, FINETUNE = "tick", "tock", "finetune"
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def gate_holders(model: nn.Module) -> list[nn.Module]:
    """For each node layer (``methods.core.nodes``), the module whose output its gates scale:
    the BatchNorm registered right after it when that normalises its outputs (one affine
    BatchNorm feature per unit), as the authors' code pairs them by position; else the layer."""
    modules = list(model.modules())
    holders = []
    for layer in node_layers(model):
        following = modules[modules.index(layer) + 1:][:1]
        batchnorm = following[0] if following and isinstance(following[0], BATCHNORMS) else None
        fits = batchnorm is not None and batchnorm.affine and batchnorm.num_features == layer.weight.shape[0]
        holders.append(batchnorm if fits else layer)
    return holders


def tick_tock(steps: int, ticks: int, tocks: int) -> list[tuple[str, bool]]:
    """The epochs of the authors' TickTock trainer until fine-tuning, for ``steps`` pruning
    steps: each a tick (the gates train) or a tock (everything trains), and whether a step
    prunes right before it. A round is ``ticks`` tick epochs, then ``tocks`` tock epochs; a
    step prunes before every tick epoch while steps remain, and the tick epoch after the
    last step ends the plan (their trainer then fine-tunes)."""
    plan, done, tick, tock = [], 0, 0, 0
    while True:
        at_tick = tock == 0 and tick < ticks
        prunes = at_tick and done < steps
        done += prunes
        plan.append((TICK if at_tick else TOCK, prunes))
        if at_tick:
            tick += 1
            if done == steps:
                return plan
        else:
            tock += 1
            if tock == tocks:
                tick = tock = 0


@torch.no_grad()
def fold_gates(holders: list[nn.Module]) -> None:
    """Multiply each gate into the scale and shift (or weight rows and bias) of the module it
    follows, and remove it: the network computes as before, without gates."""
    for holder in holders:
        gate = getattr(holder, GATE)
        holder.weight.mul_(gate.view(-1, *[1] * (holder.weight.dim() - 1)))
        if holder.bias is not None:
            holder.bias.mul_(gate)
        delattr(holder, GATE)


@register
class GateDecorators(Method):
    """GateDecorators: Tick-Tock on the trained dense network, pruning nodes in steps to the
    goal node sparsity kappa, then fine-tuning, for E epochs (``tick_tock_epochs``).

    As in the SNIP-it authors' code (models/criterions/GateDecorators.py,
    models/networks/assisting_layers/GateDecoratorLayers.py ``GatedBatchNorm``,
    models/trainers/TickTock.py; README: --prune_criterion GateDecorators --pruning_limit
    <kappa> --epochs 70 from the trained unpruned model; utils/constants.py):
    - a gate multiplies each output channel of every BatchNorm after a node layer
      (``gate_holders``; a node layer without one has its gate on its own output); it
      starts at a standard normal draw (``gate_init = "normal"``, their GatedBatchNorm);
      ``"ones"`` leaves the trained network as it is, as Gate Decorator's own GBN does
      (youzhonghui/gate-decorator, ``GatedBatchNorm2d``);
    - the score of a node is |phi * sum_b dL_b/dphi| / 5 over 5 training batches b
      (``score_batches``), L their loss (``score_loss``: minus the target logit), in training
      mode as their trainer leaves the model: dropout on, BatchNorm on each batch's statistics,
      its running ones moving (``get_weight_saliencies``; they divide by the sum of all
      scores, which ranks alike);
    - the steps go to the node sparsities 1%, 6%, 11%, ... below the goal (``step`` = 5
      points), then kappa, each to that share of all nodes, ranked over all node layers
      together, a layer never left without a node (``SNAP.handle_pruning`` after their
      ``prune``; here exactly round(kappa_i N) nodes, theirs keeps the scores at least the
      int((1 - p) n)-th of a list holding all but the last gated layer's nodes twice);
      the pruned nodes' readers are cut, as their tensors lose them (see ``SNAPit``);
    - the first step precedes the first epoch (GateDecorators is among their SINGLE_SHOT
      criteria), the others follow ``tick_tock`` (``_is_pruning_time``, ``get_state``): 10
      tick epochs in which only the gates step, with an optimizer made anew every epoch,
      then 10 tock epochs in which everything steps, gates included; when a tick epoch ends
      with the goal reached, everything is fine-tuned to the end of the E epochs (for their
      70 epochs and kappa = 93%: 30 epochs of Tick-Tock, 40 of fine-tuning); every step
      makes a fresh optimizer over all parameters (their DURING_TRAINING), so every tock
      round and the fine-tuning start with one. Their trainer stops on an assertion when a
      step after a tock round reaches the goal (a tick and the fine-tuning at once); here
      the tick epoch runs, then the fine-tuning;
    - the learning rate follows the training's schedule from its start (theirs is constant);
    - at tocks their loss adds lam * sum(phi) of the gates' values, detached: it adds nothing
      to any gradient. ``tock_l1`` = lambda > 0 adds lambda * sum |phi| that trains, Gate
      Decorator's sparsity penalty of its Tock phase.
    At the end of the E epochs every gate is folded into its BatchNorm's scale and shift, an
    exact rewrite, and removed. Their code refuses residual networks with structured
    pruning; here every BatchNorm after a convolution, a shortcut's too, carries gates.
    """

    name = "gate-decorators"
    paper = "You, Yan, Ye, Ma & Wang (2019); as implemented by Verdenius, Stol & Forré (2020), appendix F"
    prunes_after_training = True
    params = {
        "tick_tock_epochs": Param(help="epochs E of Tick-Tock and fine-tuning after the dense training (the "
                                       "authors' 70 after 80)", symbol="E", type=int, above=0, of_budget=True),
        "step": Param(5, "percentage points by which the goal of each step after the first (1%) rises, the last "
                         "step going to kappa", type=int, above=0, at_most=100),
        "tick_epochs": Param(10, "epochs of a round in which only the gates train", above=0, at_most=1000),
        "tock_epochs": Param(10, "epochs of a round in which everything trains", above=0, at_most=1000),
        "score_batches": Param(5, "training batches the Taylor score is summed over (the authors' "
                                  "SNIP_BATCH_ITERATIONS)", above=0, at_most=10_000),
        "score_loss": SCORE_LOSS,
        "gate_init": Param("normal", "the gates' start: standard normal draws (the SNIP-it authors' GatedBatchNorm) "
                                     "or ones (Gate Decorator's code)", choices=("normal", "ones")),
        "tock_l1": Param(0.0, "lambda of a penalty lambda * sum |phi| on the gates in tock epochs: 0, as the "
                              "authors' detached term; Gate Decorator's Tock penalty when positive", at_least=0),
    }

    @property
    def structured(self) -> bool:
        return True

    def sparsities(self) -> list[float]:
        """The node sparsity after each step: 1%, 1% + step, ... below the goal, then the goal."""
        return [x / 100 for x in range(1, round(self.goal_sparsity * 100), self.hp["step"])] + [self.goal_sparsity]

    def phases(self) -> list[Phase]:
        epochs, training = self.hp["tick_tock_epochs"], self.training_lr()
        plan = tick_tock(len(self.sparsities()), self.hp["tick_epochs"], self.hp["tock_epochs"])
        if len(plan) > epochs:
            raise ConfigError(f"its {len(self.sparsities())} steps take {len(plan)} epochs of Tick-Tock, more than "
                              f"the {epochs} it is given", key="tick_tock_epochs")
        steps, spans = iter(self.sparsities()), []  # [name, first epoch, epochs, sparsity]
        for epoch, (kind, prunes) in enumerate(plan):
            if kind == TOCK and spans[-1][0] == TOCK:
                spans[-1][2] += 1
            else:
                spans.append([kind, epoch, 1, next(steps) if prunes else None])
        spans += [[FINETUNE, len(plan), epochs - len(plan), None]] if epochs > len(plan) else []

        def go_on(start: int):
            return lambda event: lambda t: training(start + t)

        return [Phase(name, length, go_on(start), prunes=sparsity is not None, sparsity=sparsity)
                for name, start, length, sparsity in spans]

    def setup(self, model: nn.Module, steps_per_epoch: int) -> None:
        self.holders = gate_holders(model)
        for holder in self.holders:
            like = holder.weight.new_empty(holder.weight.shape[0])
            start = torch.randn_like(like) if self.hp["gate_init"] == "normal" else torch.ones_like(like)
            holder.register_parameter(GATE, nn.Parameter(start))
            scale_outputs(holder, lambda module: getattr(module, GATE, None))

    def gates(self) -> list[torch.Tensor]:
        return [getattr(holder, GATE) for holder in self.holders]

    def optimizer_groups(self, model: nn.Module) -> list[dict]:
        return [{"params": self.gates()}] if self.phase.name == TICK else super().optimizer_groups(model)

    def regularizer(self, model: nn.Module) -> torch.Tensor | None:
        if self.phase.name != TOCK or not self.hp["tock_l1"]:
            return None
        return self.hp["tock_l1"] * sum(gate.abs().sum() for gate in self.gates())

    def scores(self, model: nn.Module, batches: list[Batch]) -> list[torch.Tensor]:
        """The Taylor score |phi * dL/dphi| of every node, L the mean loss over the ``batches``
        in training mode."""
        gates = self.gates()
        gradients = mean_gradient(model, batches, gates, self.hp["score_loss"], training=True)
        return [(gate * gradient).abs().detach() for gate, gradient in zip(gates, gradients)]

    def prune(self, model: nn.Module, sparsity: float) -> PruneEvent:
        batches = list(itertools.islice(self.training_batches(), self.hp["score_batches"]))
        return measured(model, sparsity, lambda: keep_top_nodes(model, self.scores(model, batches), sparsity,
                                                                 batches[0][0]))

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        if epoch + 1 == self.hp["tick_tock_epochs"]:
            fold_gates(self.holders)
