"""Continuous Sparsification (Savarese et al., 2020; Back to Basics, section 2.3 and A.2.1).

Every weight w gets a learnable mask logit m, and the network computes with
w * sigmoid(beta * m) / sigmoid(s_init): a soft mask that the temperature beta, rising from
1 to beta_final over regular training, hardens into a step. An l1 penalty
lambda * sum sigmoid(beta * m) on the soft masks drives them towards zero. At the end of
training the weights with m > 0 are kept. The fine-tuning counts towards the training time.
"""

import torch
from torch import nn

from schema import Param

from methods import register
from methods.core.masks import prunable_modules
from .learned import LearnedSparsity


@register
class CS(LearnedSparsity):
    """CS: a soft mask sigmoid(beta * m) per weight, hardened to m > 0 at the end.

    Choices: every conv and linear layer is masked; m starts at ``s_init``; the soft mask is
    rescaled by 1 / sigmoid(s_init), as in the authors' code, so at the start (beta = 1) the
    effective weight equals w; the temperature is beta = beta_final^(i / N) at iteration i
    of the N = epochs * steps_per_epoch iterations of regular training, as in Back to
    Basics' code (the CS code raises it once per epoch), so beta_final after the last one;
    the penalty is on the unscaled soft masks, as in Back to Basics' code (the CS code
    penalises the rescaled ones); the mask logits share the weights' learning rate and
    momentum and, as in Back to Basics' code (its optimizer holds every parameter, see
    runners/baseRunner.py, define_optimizer_scheduler), the weight decay too (the CS code
    does not decay them); the loss has the term 0.5 * lambda * ||w||^2, so the weights are
    decayed twice (``LearnedSparsity.weight_decay_term``). The final weights are
    w * sigmoid(beta_final * m) / sigmoid(s_init) where m > 0, zero elsewhere.
    """

    name = "cs"
    paper = "Savarese et al. (2020)"
    revision = 1
    extra = "weight_mask_logits"
    sparsity_control = ("s_init", "linear")
    retraining_is_timed = True
    params = {
        **LearnedSparsity.params,
        "s_init": Param(0.0, "initial value of every mask logit", "s_init"),
        "penalty": Param(1e-8, "strength of the l1 penalty on the soft masks", "lambda", above=0),
        "beta_final": Param(300.0, "temperature at the end of regular training", "beta_T", above=0),
    }

    def setup(self, model: nn.Module, steps_per_epoch: int) -> None:
        self.total_iterations = self.training["epochs"] * steps_per_epoch
        self.iteration = 0
        self.scale = 1 / torch.sigmoid(torch.tensor(float(self.hp["s_init"]))).item()
        for module in prunable_modules(model):
            logits = torch.full_like(module.weight, float(self.hp["s_init"]))
            module.register_parameter(self.extra, nn.Parameter(logits))

    def state_dict(self) -> dict:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.iteration = state["iteration"]

    @property
    def beta(self) -> float:
        return self.hp["beta_final"] ** (self.iteration / self.total_iterations)

    def soft_mask(self, module: nn.Module) -> torch.Tensor:
        return torch.sigmoid(self.beta * module.weight_mask_logits)

    def effective_weight(self, module: nn.Module) -> torch.Tensor:
        return module.weight * self.soft_mask(module) * self.scale

    def learned_mask(self, module: nn.Module) -> torch.Tensor:
        return module.weight_mask_logits > 0

    def regularizer(self, model: nn.Module) -> torch.Tensor | None:
        if not self.in_regular_training:
            return None
        penalty = self.hp["penalty"] * sum(self.soft_mask(m).sum() for m in prunable_modules(model))
        return penalty + self.weight_decay_term(model)

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        super().after_step(model, optimizer)
        if self.in_regular_training:
            self.iteration += 1
