"""Global Sparse Momentum SGD (Ding et al., 2019; Back to Basics, section 2.3).

At every iteration the parameters are ranked by the first-order Taylor score |w * dL/dw|;
only the top k of them, k the number of weights that remain at the goal sparsity, receive
the loss gradient. The others have their gradient removed, so momentum and weight decay
alone act on them and drive them towards zero. At the end of training the model is pruned
to the goal by global magnitude.
"""

import torch
from torch import nn

from methods import register
from .stable import RANK_OVER, PruningStable, keep_top, ranked_parameters


@register
class GSM(PruningStable):
    """GSM: the loss gradient reaches only the top k parameters by |w * g|.

    Choices: k = n - round(s * n), n the prunable weights, the number the final prune keeps.
    The ranking is over every parameter the optimizer holds, BatchNorm parameters and biases
    included, as in the authors' strategies/scratchStrategies.py, GSM.during_training, so at
    high sparsity these take many of the k places (``rank_over = "prunable"``: the paper's
    reading, section 2.3, where only weights compete and the others always keep their
    gradient). Fine-tuning is left alone. Weight decay and momentum are the training's own
    (the momentum is tuned in the manifest grid).
    """

    name = "gsm"
    paper = "Ding et al. (2019)"
    revision = 1
    params = {**PruningStable.params, "rank_over": RANK_OVER}

    @torch.no_grad()
    def after_backward(self, model: nn.Module) -> None:
        if not self.in_regular_training:
            return
        ranked = ranked_parameters(model, self.hp["rank_over"])
        for p, keep in zip(ranked, keep_top([(p * p.grad).abs() for p in ranked], self.kept_count(model))):
            p.grad.mul_(keep)
