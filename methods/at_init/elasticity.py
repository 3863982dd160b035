"""The weight elasticities at initialisation (SNIP-it, appendix A, Figure 6): a probe that
measures and trains nothing, its findings in the run's history."""

import torch
from torch import nn

from methods import register
from schema import Param

from methods.core.base import Phase
from .sensitivity import Scored, weight_elasticity
from .snip import SCORE_LOSS


def sorted_elasticities(scores: list[torch.Tensor], points: int) -> list[dict]:
    """The elasticities of all layers together, sorted ascending (a Lorenz curve), at
    ``points`` ranks evenly spaced from the least elastic weight (rank 0) to the most (rank
    n - 1), each rounded to the nearest: a row per rank with its ``share`` rank / (n - 1)."""
    values = torch.cat([score.flatten() for score in scores]).sort().values
    last = len(values) - 1
    ranks = torch.linspace(0, last, min(points, len(values)), dtype=torch.float64).round().long()
    return [{"rank": rank, "share": rank / last, "elasticity": values[rank].item()} for rank in ranks.tolist()]


@register
class Elasticity(Scored):
    """SNIP-it's weight elasticity |dL/dw * w / L| of every weight of the freshly initialised
    network, on ``score_batches`` training batches in evaluation mode, with SNIP's loss
    (``score_loss``); the run trains and prunes nothing.

    As in the authors' code, whose sorted log10 of these scores is what the figure draws
    (models/criterions/SNIP.py, ``get_weight_saliencies``: ``all_scores.sort().values.log10()``):
    the weights of every convolutional and linear layer ranked together, not normalised
    (their norm_factor 1), sorted ascending; BatchNorm's weights are not among them. The
    history keeps ``points`` ranks of the sorted curve (a VGG16 has 15 million weights)."""

    name = "elasticity"
    paper = "Verdenius, Stol & Forré (2020), section 3 (eq. 3), appendix A and Figure 6"
    takes_goal = False
    params = {**Scored.params, "score_loss": SCORE_LOSS,
              "points": Param(1000, "ranks of the sorted elasticities kept, evenly spaced from the least to the "
                                    "most elastic weight", at_least=2, at_most=1_000_000)}

    def phases(self) -> list[Phase]:
        return []

    def measurements(self, model: nn.Module) -> list[dict]:
        scores = weight_elasticity(model, self.scoring_batches(), self.hp["score_loss"])
        return [{"phase": "initialisation", **row} for row in sorted_elasticities(scores, self.hp["points"])]
