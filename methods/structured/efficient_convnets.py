"""EfficientConvNets (Li, Kadav, Durdanovic, Samet & Graf, 2017, "Pruning Filters for
Efficient ConvNets") as the SNIP-it paper runs it: after training, the nodes of smallest L1
norm go, every layer to the goal node sparsity, then the network is fine-tuned."""

from methods import register
from schema import ConfigError, Param

from methods.core.base import Method, Phase
from methods.core.filters import prune_units
from methods.core.masks import PruneEvent, measured
from methods.core.nodes import cut_dead_inputs, node_layers


@register
class EfficientConvNets(Method):
    """Trains T - f epochs, prunes once, fine-tunes f epochs (``finetune_epochs``) with a
    fresh optimizer, the learning rate going on along the training schedule.

    The pruning step, as the SNIP-it authors implement it (models/criterions/
    EfficientConvNets.py, ``get_out_vector``, through StructuredRandom.py's ``prune``):
    every layer with nodes (``methods.core.nodes``: every convolutional and linear layer but
    the last, whose units are the classes) loses the same share of them, the goal kappa,
    those of the smallest L1 norm of their weights (the sum of |w| over the filter or row):
    Li et al.'s criterion, at one rate for all layers instead of their per-layer
    sensitivity analysis, on linear layers too. All norms are taken before any is pruned,
    Li et al.'s "independent" pruning across layers: a node's norm counts its weights
    reading nodes of the layer before that go in the same step. Each layer loses
    round(kappa n) of its n nodes, at most n - 1 (theirs: the nodes whose norm exceeds the
    int(kappa n)-th smallest, so ties at it go too, and a random node is kept where none
    would be). The next layer's inputs from a pruned node are cut, and its bias and
    BatchNorm entries read by nothing, as their tensors lose them (see ``SNAPit``).

    When: their README runs it for 80 epochs with --prune_delay 69 --prune_freq 1, so their
    trainer (models/trainers/DefaultTrainer.py, ``_is_pruning_time``: epoch - 69 > 0)
    prunes once (``self.pruned``) after epoch 70 counted from 0, that is after 71 epochs,
    and fine-tunes 9 (f = 9); appendix F says 70 epochs of training and 10 of fine-tuning.
    Their optimizer is made anew after the step (EfficientConvNets is among their
    DURING_TRAINING criteria) and no weight is rewound.
    """

    name = "efficient-convnets"
    paper = "Li, Kadav, Durdanovic, Samet & Graf (2017); as run by Verdenius, Stol & Forré (2020), appendix F"
    params = {"finetune_epochs": Param(help="epochs f of fine-tuning after the pruning step, the last f of the "
                                            "budget T (the authors' runs: 9 of 80; their appendix F: 10)",
                                       symbol="f", type=int, at_least=0, of_budget=True)}

    @property
    def structured(self) -> bool:
        return True

    def phases(self) -> list[Phase]:
        epochs, finetune = self.training["epochs"], self.hp["finetune_epochs"]
        if finetune >= epochs:
            raise ConfigError(f"the pruning step follows the training: {finetune} epochs of fine-tuning leave none "
                              f"of the {epochs}-epoch budget to train first", key="finetune_epochs")
        start = epochs - finetune
        training = self.training_lr()
        return [Phase("train", start, lambda event: training),
                Phase("finetune", finetune, lambda event: lambda t: training(start + t), prunes=True,
                      sparsity=self.goal_sparsity)]

    def prune(self, model, sparsity: float) -> PruneEvent:
        layers = node_layers(model)
        counts = [min(round(sparsity * m.weight.shape[0]), m.weight.shape[0] - 1) for m in layers]
        example = next(self.training_batches())[0]

        def step() -> None:
            prune_units(layers, counts, norm=1)
            cut_dead_inputs(model, example)

        return measured(model, sparsity, step)
