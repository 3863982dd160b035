"""GraSP (Wang, Zhang & Grosse, 2020): pruning at initialisation by the Hessian-gradient
product, S(-w) = -w ⊙ Hg, which estimates how removing a weight changes the gradient flow
g^T g (section 4, eq. 8)."""

from methods import register
from schema import Param

from .sensitivity import Scored, gradient_flow


@register
class GraSP(Scored):
    """GraSP: one step at initialisation to the goal by S(-w) = -w ⊙ Hg, ranked over all
    layers together; g and Hg (double backpropagation) on ``score_batches`` training batches,
    the logits divided by the temperature T = 200 ("to make it uniform"), in evaluation mode
    (``methods.at_init.sensitivity.gradient_flow``).

    Which end of the ranking goes: Wang et al. remove the weights of highest S(-w), those
    whose removal reduces the gradient flow least (section 4, Algorithm 1; alecwangcq/GraSP,
    pruner/GraSP.py, which keeps the scores at or below the threshold): ``removes =
    "highest"``. The SNIP-it authors' implementation, which produced the GraSP numbers of
    the SNIP-it paper, computes the same -w ⊙ Hg (models/criterions/GRASP.py,
    ``get_weight_saliencies``) but prunes it as SNIP's statistic (SNIP.py,
    ``handle_pruning``, keeping the scores above the threshold), so it removes the lowest:
    ``removes = "lowest"``, the default. Their batches are SNIP's, 5 training batches in
    chunks of 20 examples (``their_implementation``), not Wang et al.'s class-balanced draw
    of a few examples per class, and their weights are not re-initialised (Wang et al.'s
    code redraws the linear layers' weights, ``reinit``).
    """

    name = "grasp"
    paper = "Wang, Zhang & Grosse (2020); as implemented by Verdenius, Stol & Forré (2020)"
    params = {
        **Scored.params,
        "temperature": Param(200.0, "T: the logits are divided by it in the loss", "T", above=0),
        "removes": Param("lowest", "which scores -w Hg are pruned: the lowest (the SNIP-it authors' GRASP.py) or the "
                                   "highest (Wang et al.)", choices=("lowest", "highest")),
    }

    def scores(self, model):
        flow = gradient_flow(model, self.scoring_batches(), self.hp["temperature"])
        return flow if self.hp["removes"] == "lowest" else [-s for s in flow]
