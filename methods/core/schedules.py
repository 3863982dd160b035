"""Learning-rate schedules as functions of training time t, measured in epochs from 0.

The loop evaluates a schedule at every iteration, t = epoch + batch / batches_per_epoch.
Epoch e of the papers (counted from 1) is the interval [e - 1, e) here, so "0.1 for
t in [1, 90], 0.01 for t in [91, 180]" is ``stepped(0.1, milestones=(90, 180))``.
"""

import math
from bisect import bisect_right
from collections.abc import Callable

Schedule = Callable[[float], float]

TRAINING_KINDS = ("stepped", "linear", "cosine", "constant")
RETRAINING_KINDS = ("ft", "lrw", "slr", "clr", "llr", "allr")
WARMUP_FRACTION = 0.1


def training_schedule(lr: float, epochs: int, kind: str = "stepped", milestones=(), gamma: float = 0.1,
                      warmup_epochs: float = 0) -> Schedule:
    """The schedule of regular training: stepped (decay by gamma at each milestone),
    linear or cosine decay to zero at ``epochs``, or constant; optional linear warm-up."""
    decays = {
        "stepped": lambda t: lr * gamma ** bisect_right(list(milestones), t),
        "linear": lambda t: lr * (1 - t / epochs),
        "cosine": lambda t: lr * 0.5 * (1 + math.cos(math.pi * t / epochs)),
        "constant": lambda t: lr,
    }
    if kind not in decays:
        raise ValueError(f"unknown schedule kind {kind!r}; known: {', '.join(TRAINING_KINDS)}")
    decay = decays[kind]
    if warmup_epochs <= 0:
        return decay
    return lambda t: decay(t) * min(1.0, t / warmup_epochs)


def warmed_up(peak: float, length: float, decay: Callable[[float], float]) -> Schedule:
    """Linear warm-up from 0 to ``peak`` over the first 10% of ``length``, then
    ``decay(u)`` with u in [0, 1) the progress through the remaining 90%."""
    warmup = WARMUP_FRACTION * length

    def schedule(t: float) -> float:
        if t < warmup:
            return peak * t / warmup
        return decay((t - warmup) / (length - warmup))

    return schedule


def retraining_schedule(kind: str, training: Schedule, epochs: int, retrain_epochs: int,
                        d1: float = 0.0) -> Schedule:
    """The schedule of one retraining cycle of ``retrain_epochs`` after ``epochs`` of training.

    FT: the last training LR, constant. LRW: the last ``retrain_epochs`` of the training
    schedule. SLR: the training schedule compressed into the cycle, after warm-up. CLR:
    cosine from eta_1 to 0, after warm-up. LLR: linear from eta_1 to 0, after warm-up.
    ALLR: LLR from d * eta_1 with d = max(d1, d2), d2 = min(T_rt / T, 1), d clipped to [0, 1].
    """
    eta_1, eta_last = training(0.0), training(epochs - 1)
    if kind == "ft":
        return lambda t: eta_last
    if kind == "lrw":
        return lambda t: training(epochs - retrain_epochs + t)
    if kind == "slr":
        return warmed_up(eta_1, retrain_epochs, lambda u: training(u * epochs))
    if kind == "clr":
        return warmed_up(eta_1, retrain_epochs, lambda u: eta_1 * 0.5 * (1 + math.cos(math.pi * u)))
    if kind in ("llr", "allr"):
        d = 1.0 if kind == "llr" else allr_factor(d1, retrain_epochs, epochs)
        return warmed_up(d * eta_1, retrain_epochs, lambda u: d * eta_1 * (1 - u))
    raise ValueError(f"unknown retraining schedule {kind!r}; known: {', '.join(RETRAINING_KINDS)}")


def allr_factor(d1: float, retrain_epochs: int, epochs: int) -> float:
    """ALLR's discount d = max(d1, d2) with d2 = min(T_rt / T, 1), clipped to [0, 1]."""
    d2 = min(retrain_epochs / epochs, 1.0)
    return min(max(d1, d2, 0.0), 1.0)
