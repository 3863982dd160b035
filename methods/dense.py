"""The unpruned baseline: regular training under the manifest's schedule."""

from methods import register
from methods.core.base import Method, Phase
from schema import ConfigError, Param


@register
class Dense(Method):
    """Regular dense training; also the parent of every prune-after-training run.

    What a manifest's ``[dense]`` table asks of the parent of its pruned runs: the epochs
    whose weights it stores for weight rewinding (``rewind_points``, epoch 0 the
    initialisation), a training cut short after ``stop_epoch`` epochs of the T-epoch
    schedule (AIMP, section V-B), and the mask dynamics of a pruning fraction p recorded
    in its history (``mask_dynamics``, AIMP's D^(0), ``methods.core.dynamics``)."""

    name = "dense"
    paper = "the unpruned baseline"
    takes_goal = False
    params = {
        "rewind_points": Param(None, "epochs after which the weights are stored for rewinding (0: the "
                               "initialisation)", type=list),
        "stop_epoch": Param(None, "stop the training after this many epochs of its schedule (AIMP, section V-B)",
                            type=int, above=0),
        "mask_dynamics": Param(None, "record the mask dynamics of this pruning fraction p in the history (AIMP, "
                               "section V-F)", "p", type=float, above=0, below=1),
    }

    def phases(self) -> list[Phase]:
        epochs, stop = self.training["epochs"], self.hp.get("stop_epoch")
        if stop is not None and stop > epochs:
            raise ConfigError(f"the training has {epochs} epochs; it cannot stop after {stop}", key="stop_epoch")
        for point in self.stored_epochs():
            if not 0 <= point <= (stop or epochs):
                raise ConfigError(f"{point} is not an epoch of the training (0 to {stop or epochs})",
                                  key="rewind_points")
        return [Phase("train", stop or epochs, lambda event: self.training_lr())]

    def stored_epochs(self) -> list[int]:
        return sorted(self.hp.get("rewind_points") or [])

    def mask_dynamics(self) -> float | None:
        return self.hp.get("mask_dynamics")
