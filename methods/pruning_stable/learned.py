"""What STR, CS and DST share: sparsity that is learned rather than given.

Each keeps a learnable tensor on every layer, trains through a reparametrised forward
pass during regular training, and is hard-pruned at the end to the mask these tensors
define instead of to a goal sparsity.
"""

from typing import ClassVar

import torch
from torch import nn

from methods.core.masks import PruneEvent, mask_of, prunable_modules, relative_change
from methods.core.reparam import forward_with_weights
from .stable import PruningStable


class LearnedSparsity(PruningStable):
    """Regular training through effective weights built from the layers' learned tensors,
    then a hard prune to the mask these tensors define.

    The learnable tensor ``extra`` sits on every prunable layer (state dict and
    model.parameters()), where the training's weight decay acts on it.
    The final prune writes each layer's effective weight, with its pruned entries zero,
    into ``module.weight``, sets the mask, and removes the learned tensor from the layer, so
    fine-tuning and every count of parameters see a plain masked model. The prune's
    relative change is measured on the effective weights, those the network computed with.
    """

    takes_goal = False
    learns_sparsity = True
    extra: ClassVar[str]

    def effective_weight(self, module: nn.Module) -> torch.Tensor:
        raise NotImplementedError

    def learned_mask(self, module: nn.Module) -> torch.Tensor:
        raise NotImplementedError

    def weight_decay_term(self, model: nn.Module) -> torch.Tensor:
        """0.5 * lambda * ||w||^2 over the layers' weights w, lambda the training's weight decay.
        CS and DST add it to the loss, as Back to Basics' code does (strategies/scratchStrategies.py,
        CS.before_backward and DST.before_backward), so that with the optimizer's own decay
        the weights are decayed twice, by 2 * lambda * w per step."""
        return 0.5 * self.training["weight_decay"] * sum(m.weight.pow(2).sum() for m in prunable_modules(model))

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        if not self.in_regular_training:
            return model(inputs)
        return forward_with_weights(model, inputs, {m: self.effective_weight(m) for m in prunable_modules(model)})

    @torch.no_grad()
    def prune(self, model: nn.Module, sparsity: float | None) -> PruneEvent:
        """Hard-prune to the learned mask; ``sparsity`` is ignored."""
        modules = prunable_modules(model)
        effective = [self.effective_weight(m) for m in modules]
        keeps = [self.learned_mask(m) for m in modules]
        remaining_before = sum(int(mask_of(m).sum()) for m in modules)
        for module, weight, keep in zip(modules, effective, keeps):
            module.weight.copy_(weight * keep)
            mask_of(module).copy_(keep)
            delattr(module, self.extra)
        before = torch.cat([w.flatten() for w in effective])
        after = torch.cat([m.weight.detach().flatten() for m in modules])
        kept = sum(int(keep.sum()) for keep in keeps)
        fraction = 1 - kept / remaining_before if remaining_before else 0.0
        return PruneEvent(1 - kept / before.numel(), fraction, relative_change(before, after, fraction))
