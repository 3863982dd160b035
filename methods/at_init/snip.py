"""SNIP (Lee et al., 2019) and SNIP-it (Verdenius, Stol & Forré, 2020): pruning by the
connection sensitivity |g ⊙ w|, once at initialisation, or iteratively before or during
training (SNIP-it, Algorithm 1).

SNIP-it ranks by the weight elasticity |g ⊙ w| / L (section 3, eq. 3), which ranks as
|g ⊙ w| does. Its schedule starts by pruning half the weights and keeps halving the gap to
the goal kappa: with s steps (``steps``), the sparsities kappa - (kappa - 1/2) / 2^i for i =
0..s and then kappa itself, s + 2 pruning steps (the authors' SNIPit.__init__; s = 5 from
their --snip_steps). Before training (tau = 0) all steps prune at initialisation, one after
the other, each on a fresh draw of training batches and on the network the previous step
left. During training (tau = 4) one step follows each of the pruning epochs.
"""

from methods import register
from schema import ConfigError, Param

from methods.core.base import Phase
from methods.core.masks import PruneEvent, measured
from .sensitivity import LOSSES, Scored, connection_sensitivity, keep_top

SCORE_LOSS = Param("target-logit", "the loss L whose gradient scores the weights: minus the mean target logit (the "
                                   "authors' F.nll_loss of the raw outputs) or the cross-entropy (the paper's L)",
                   choices=tuple(LOSSES))


STEPS = Param(5, "s: the schedule prunes s + 2 times, to kappa - (kappa - 1/2) / 2^i for i = 0..s, then to the goal "
                 "kappa", "s", at_least=0, at_most=50)


def snip_it_sparsities(goal: float, steps: int) -> list[float]:
    """SNIP-it's sparsity after each of its s + 2 steps: kappa - (kappa - 1/2) / 2^i for
    i = 0..s, then the goal kappa."""
    return [goal - (goal - 0.5) * 0.5 ** i for i in range(steps + 1)] + [goal]


def check_schedule_goal(goal: float, method: str) -> None:
    """SNIP-it's schedule prunes half first: a goal below that is refused, naming ``method``."""
    if goal < 0.5:
        raise ConfigError(f"{method}'s schedule prunes half first: its goal must be at least 0.5, got {goal}",
                          key="goal_sparsity")


@register
class SNIP(Scored):
    """SNIP: one step at initialisation to the goal, keeping the weights of highest |g ⊙ w|
    over all layers together.

    As in the SNIP-it authors' implementation, which produced the paper's SNIP numbers
    (models/criterions/SNIP.py): g is the mean gradient over ``score_batches`` = 5 training
    batches (2560 samples at their batch size of 512, "an accumulated batch of 2560
    samples", section 3; 640 at Imagenette's 128), in evaluation mode; every convolutional
    and linear layer is ranked, the first and last too (their --outer_layer_pruning for
    unstructured pruning); the loss is what their code computes, F.nll_loss of the network's
    raw outputs, that is minus the mean logit of the target class: ``score_loss =
    "cross-entropy"`` is the paper's L, the training loss. Their code keeps int((1 - s) n)
    weights and drops ties at the threshold; here exactly round(s n) are pruned.
    """

    name = "snip"
    paper = "Lee, Ajanthan & Torr (2019); as implemented by Verdenius, Stol & Forré (2020)"
    params = {**Scored.params, "score_loss": SCORE_LOSS}

    def scores(self, model):
        return connection_sensitivity(model, self.scoring_batches(), self.hp["score_loss"])


@register
class SNIPit(SNIP):
    """SNIP-it: SNIP's statistic applied in the s + 2 steps of the module's schedule.

    ``timing = "before"`` (tau = 0): all steps at initialisation, each recomputing the
    statistic on a fresh draw of ``score_batches`` training batches, on the network the step
    before pruned (its pruned weights zero, and ranked below every remaining weight).

    ``timing = "during"`` (tau = 4, section 5, from the tuning of IMP, appendix F): the
    network trains dense at first; after the training epoch e (counted from 0) for which
    e - d is a positive multiple of tau (``prune_delay`` d, ``prune_interval`` tau), one
    step prunes to the next sparsity of the schedule, until the goal. This is the authors'
    trainer (models/trainers/DefaultTrainer.py, ``_is_pruning_time`` and
    ``_handle_pruning``; README: SNIPitDuring with --prune_delay 4 --prune_freq 4): with
    d = tau = 4, after epochs 8, 12, ..., 32, that is after 9, 13, ..., 33 epochs of training
    for the 7 steps of s = 5. The paper's Algorithm 1 names one tau for both. As in their
    code, the weights are not rewound (rewinding is IMP's, --enable_rewinding), the optimizer
    and its state go on (SNIPitDuring is not among their DURING_TRAINING criteria, whose
    optimizer is made anew), and the learning rate follows the run's schedule (theirs is
    Adam at a constant rate).
    """

    name = "snip-it"
    paper = "Verdenius, Stol & Forré (2020), section 3, Algorithm 1 and appendix F"
    params = {
        **SNIP.params,
        "steps": STEPS,
        "timing": Param("before", "prune at initialisation (tau = 0) or during training (tau = 4)",
                        choices=("before", "during")),
        "prune_delay": Param(4, "during training: epochs d before the pruning epochs start (--prune_delay)", "d",
                             at_least=0),
        "prune_interval": Param(4, "during training: epochs tau between pruning steps (--prune_freq)", "tau",
                                above=0),
    }

    def sparsities(self) -> list[float]:
        return snip_it_sparsities(self.goal_sparsity, self.hp["steps"])

    def pruning_epochs(self) -> dict[int, float]:
        """During training: the epochs (counted from 0) after which a step prunes, and its sparsity."""
        delay, interval = self.hp["prune_delay"], self.hp["prune_interval"]
        return {delay + k * interval: sparsity for k, sparsity in enumerate(self.sparsities(), start=1)}

    def phases(self) -> list[Phase]:
        check_schedule_goal(self.goal_sparsity, self.name)
        epochs = self.training["epochs"]
        if self.hp["timing"] == "before":
            for key in ("prune_delay", "prune_interval"):
                if self.hp[key] != self.params[key].default:
                    raise ConfigError("only SNIP-it during training has pruning epochs: set timing = \"during\"",
                                      key=key)
            return super().phases()
        last = max(self.pruning_epochs())
        if last >= epochs:
            raise ConfigError(f"the last of the {len(self.sparsities())} pruning steps would follow epoch {last} "
                              f"(counted from 0) of a {epochs}-epoch training", key="prune_interval")
        return [Phase("train", epochs, lambda event: self.training_lr())]

    def step(self, model, sparsity: float) -> None:
        """One step of the schedule: prune to ``sparsity`` by a statistic taken afresh."""
        keep_top(model, self.scores(model), sparsity)

    def prune(self, model, sparsity: float) -> PruneEvent:
        def steps() -> None:
            for target in self.sparsities():
                self.step(model, target)

        return measured(model, sparsity, steps)

    def end_epoch(self, model, epoch: int) -> None:
        if self.hp["timing"] == "during" and epoch in self.pruning_epochs():
            self.step(model, self.pruning_epochs()[epoch])
