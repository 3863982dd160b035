"""L0 regularisation (Louizos, Welling & Kingma, 2018, "Learning Sparse Neural Networks
through L0 Regularization"), the SNIP-it paper's structured baseline "during" training
(Verdenius, Stol & Forré, 2020, section 4 and appendix F).

Every node k multiplies its output by a hard-concrete gate z_k = min(1, max(0, s_k (zeta -
gamma) + gamma)), s_k = sigmoid((log u - log(1 - u) + log alpha_k) / beta), u ~ U(0, 1)
drawn anew for every batch in training; at test time z_k = min(1, max(0, sigmoid(log
alpha_k) (zeta - gamma) + gamma)). The loss gains the expected L0 norm of the parameters the
gates switch, each gate open with probability 1 - Q(s_k <= 0) = sigmoid(log alpha_k - beta
log(-gamma / zeta)). beta = 2/3, gamma = -0.1, zeta = 1.1, as the paper recommends. The
nodes whose test-time gate is zero are pruned at the end; the sparsity follows from lambda.
"""

import math

import torch
from torch import nn
from torch.func import functional_call

from methods import register
from schema import Param

from methods.core.base import Method, Phase
from methods.core.masks import PruneEvent, measured, prunable_modules
from methods.core.nodes import keep_nodes, node_layers, scale_outputs
from methods.pruning_stable.hoyer_square import swept_lambda

BETA, GAMMA, ZETA = 2 / 3, -0.1, 1.1
EPSILON = 1e-6  # u is drawn from U(eps, 1 - eps) and Q clamped to [eps, 1 - eps], as in the authors' layers
LOG_ALPHA_RANGE = (math.log(1e-2), math.log(1e2))  # their constrain_parameters after every step
LOG_ALPHA = "log_alpha"
TRAIN, MASKS = "train", "masks"


def stretched(s: torch.Tensor) -> torch.Tensor:
    """s stretched to (gamma, zeta) and clipped to [0, 1]."""
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0, 1)


def sampled_gate(log_alpha: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The training gate for uniform draws ``u``."""
    return stretched(torch.sigmoid((torch.log(u) - torch.log(1 - u) + log_alpha) / BETA))


def deterministic_gate(log_alpha: torch.Tensor) -> torch.Tensor:
    """The deterministic gate of evaluation."""
    return stretched(torch.sigmoid(log_alpha))


def open_probability(log_alpha: torch.Tensor) -> torch.Tensor:
    """1 - Q(s <= 0): the probability that the gate is not zero."""
    return 1 - torch.sigmoid(BETA * math.log(-GAMMA / ZETA) - log_alpha).clamp(EPSILON, 1 - EPSILON)


def gated(model: nn.Module) -> list[nn.Module]:
    """The node layers that still carry gates."""
    return [m for m in node_layers(model) if hasattr(m, LOG_ALPHA)]


@register
class L0(Method):
    """L0 regularisation of nodes, trained for the whole budget, then the nodes whose
    test-time gate is zero pruned, the others' gates folded into their weights.

    As the SNIP-it authors ran it (models/networks/assisting_layers/L0_Layers.py, from
    Louizos et al.'s code; models/losses/L0CrossEntropy.py; models/Pruneable.py,
    ``l0_regularisation``; models/trainers/L0Trainer.py; main.py; README: --l0_reg <REG>
    --epochs 160 --l0, twice the others' budget, appendix F), where the paper is silent:
    - log alpha starts at N(log(1 - p) - log p, 0.01^2) with p = 0.5 (``droprate_init``), so
      near 0, and is clipped to [log 0.01, log 100] after every step (``constrain_parameters``);
      one u per node for the whole batch (``sample_weights``, local_rep off);
    - the penalty is, per node k of a gated layer, P(z_k != 0) ((n_k - 1) lambda / N + 0.5
      lambda_2 (||w_k||^2 + b_k^2)): n_k its weights, its bias entering with the opposite sign
      (L0Conv2d ``_reg_w``, as in Louizos et al.'s code), lambda (``l0_reg``) divided by the
      training examples N (their --N, the training set's size; here the training examples per
      epoch rounded up to whole batches), and the weight decay lambda_2 as a Gaussian prior
      on the gated parameters (prior_prec = lambda_2 N). Their optimizer decays nothing under
      --l0; here only the output layer keeps the training's decay (in their code its weights
      carry the L2 prior gated by its input gates), BatchNorm and log alpha none;
    - the parameters the evaluation uses are a moving average (``ema`` = beta, their
      --beta_ema 0.999) that starts from the initial parameters, log alpha included, and is
      divided by 1 - beta^t after t steps, as theirs (``update_ema``, ``load_ema_params``,
      Louizos et al.'s code too): an overestimate until beta^t is small (ema = 0: the
      parameters themselves).
    Where this differs from their code: the gates sit on nodes (``methods.core.nodes``), on
    the output of every convolutional and linear layer but the last, after its bias and
    before what follows, where their convolutions have them (L0Conv2d; its training pass
    leaves the bias out, here the bias is gated in training too); their linear layers gate
    their input neurons instead (L0Linear, the paper's grouping for fully connected layers),
    so the network's inputs to a first linear layer and the flattened positions of a
    convolution's channels have gates there and none here. The masked network computes the
    gated one at test time (the average's parameters), the gates in (0, 1) folded into their
    node's weights and bias; a zero-gated node outputs zero in both, but the constant its
    BatchNorm and activation make of that zero still reaches the later layers of the gated
    network, and not those of the masked, smaller one (its readers are cut, see ``SNAPit``).
    Their node count samples training gates; here the nodes are those of nonzero test gates.
    """

    name = "l0"
    paper = "Louizos, Welling & Kingma (2018); as implemented by Verdenius, Stol & Forré (2020), appendix F"
    takes_goal = False
    learns_sparsity = True
    pruning_stable = True
    sparsity_control = ("l0_reg", "log")
    sparsity_column = "node_sparsity"  # the search fits the nodes it prunes, as the paper's Figure 1 plots them
    params = {
        "l0_reg": swept_lambda("the expected L0 norm, divided by the training examples", "--l0_reg"),
        "droprate_init": Param(0.5, "p: log alpha starts near log(1 - p) - log p", "p", above=0, below=1),
        "ema": Param(0.999, "beta of the moving average of the parameters that the evaluation and the final "
                            "model use (--beta_ema); 0: the parameters themselves", "beta_ema", at_least=0, below=1),
    }

    @property
    def structured(self) -> bool:
        return True

    def phases(self) -> list[Phase]:
        return [Phase(TRAIN, self.training["epochs"], lambda event: self.training_lr()),
                Phase(MASKS, 0, lambda event: self.training_lr(), prunes=True)]

    def setup(self, model: nn.Module, steps_per_epoch: int) -> None:
        self.examples = steps_per_epoch * self.training["batch_size"]
        mean = math.log(1 - self.hp["droprate_init"]) - math.log(self.hp["droprate_init"])
        for layer in node_layers(model):
            start = layer.weight.new_empty(layer.weight.shape[0]).normal_(mean, 1e-2)
            layer.register_parameter(LOG_ALPHA, nn.Parameter(start))
            scale_outputs(layer, self.gate)
        self.steps = 0
        self.averages = {name: p.detach().clone() for name, p in model.named_parameters()} if self.hp["ema"] else {}

    def gate(self, layer: nn.Module) -> torch.Tensor | None:
        """The layer's gates: sampled in training, deterministic in evaluation; None once pruned."""
        log_alpha = getattr(layer, LOG_ALPHA, None)
        if log_alpha is None:
            return None
        if not layer.training:
            return deterministic_gate(log_alpha)
        return sampled_gate(log_alpha, torch.rand_like(log_alpha) * (1 - 2 * EPSILON) + EPSILON)

    def optimizer_groups(self, model: nn.Module) -> list[dict]:
        """log alpha and every parameter but the output layer's without weight decay."""
        log_alphas = [getattr(m, LOG_ALPHA) for m in gated(model)]
        output = list(prunable_modules(model)[-1].parameters())
        apart = {id(p) for p in log_alphas + output}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in apart]
        groups = [{"params": rest, "weight_decay": 0.0}, {"params": output},
                  {"params": log_alphas, "weight_decay": 0.0}]
        return [group for group in groups if group["params"]]

    def regularizer(self, model: nn.Module) -> torch.Tensor | None:
        layers = gated(model)
        if not layers:
            return None
        per_weight, decay = self.hp["l0_reg"] / self.examples, self.training["weight_decay"]
        penalty = 0
        for layer in layers:
            rows = layer.weight.flatten(1)
            count, squares = rows.shape[1], rows.pow(2).sum(dim=1)
            if layer.bias is not None:
                count, squares = count - 1, squares + layer.bias.pow(2)
            penalty = penalty + (open_probability(layer.log_alpha) * (count * per_weight + 0.5 * decay * squares)).sum()
        return penalty

    @torch.no_grad()
    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        super().after_step(model, optimizer)
        for layer in gated(model):
            layer.log_alpha.clamp_(*LOG_ALPHA_RANGE)
        if self.averages and gated(model):
            self.steps += 1
            for name, p in model.named_parameters():
                self.averages[name].mul_(self.hp["ema"]).add_(p, alpha=1 - self.hp["ema"])

    def averaged(self) -> dict[str, torch.Tensor]:
        """The moving average of every parameter, divided by 1 - beta^t."""
        return {name: average / (1 - self.hp["ema"] ** self.steps) for name, average in self.averages.items()}

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """In evaluation, through the averaged parameters while the gates are on."""
        if model.training or not self.steps or not gated(model):
            return model(inputs)
        return functional_call(model, self.averaged(), (inputs,))

    @torch.no_grad()
    def prune(self, model: nn.Module, sparsity: None) -> PruneEvent:
        """Take the averaged parameters, fold every test-time gate into its node's weights and
        bias, prune the nodes whose gate is zero and remove the gates; ``sparsity`` is ignored."""
        example = next(self.training_batches())[0]

        def to_masks() -> None:
            if self.steps:
                averaged = self.averaged()
                for name, p in model.named_parameters():
                    p.copy_(averaged[name])
            layers = node_layers(model)
            gates = [deterministic_gate(layer.log_alpha) for layer in layers]
            for layer, gate in zip(layers, gates):
                layer.weight.mul_(gate.view(-1, *[1] * (layer.weight.dim() - 1)))
                if layer.bias is not None:
                    layer.bias.mul_(gate)
                delattr(layer, LOG_ALPHA)
            keep_nodes(model, [gate > 0 for gate in gates], example)

        return measured(model, None, to_masks)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "averages": self.averages}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.averages = state["steps"], state["averages"]
