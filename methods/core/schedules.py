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
    return with_warmup(decays[kind], warmup_epochs)


def with_warmup(schedule: Schedule, warmup_epochs: float) -> Schedule:
    """``schedule`` scaled by min(1, t / warmup_epochs): a linear warm-up (none at 0)."""
    if warmup_epochs <= 0:
        return schedule
    return lambda t: schedule(t) * min(1.0, t / warmup_epochs)


def cyclic_linear(lr: float, epochs: float, restarts) -> Schedule:
    """Linear decay from lr towards zero, restarted at each of ``restarts`` (those in (0,
    epochs)): with a < b consecutive among 0, the restarts and ``epochs``, t in [a, b) runs
    at lr (1 - (t - a) / (b - a))."""
    bounds = [0.0, *sorted({r for r in restarts if 0 < r < epochs}), epochs]

    def schedule(t: float) -> float:
        i = min(bisect_right(bounds, t), len(bounds) - 1)
        a, b = bounds[i - 1], bounds[i]
        return lr * (1 - (t - a) / (b - a))

    return schedule


def retraining_schedule(kind: str, training: Schedule, epochs: int, retrain_epochs: int, d1: float = 0.0,
                        steps_per_epoch: int = 1) -> Schedule:
    """The schedule of one retraining cycle of ``retrain_epochs`` after ``epochs`` of training.

    The cycle has n = T_rt * steps_per_epoch iterations k, run at t = k / steps_per_epoch.
    FT: eta_T, constant. LRW: the last T_rt epochs of the training schedule. SLR, CLR, LLR
    and ALLR warm up from 0 to their peak P over the first W = int(0.1 n) iterations along
    a half cosine, P (1 - cos(pi k / W)) / 2; then, at iteration j = k - W of R = n - W:
    SLR (P = eta_1) the LR of training iteration floor(j N / R) of its N; CLR (P = eta_1)
    eta_T + (eta_1 - eta_T) (1 + cos(pi j / R)) / 2; LLR (P = eta_1) P (1 - j / R); ALLR the
    same with P = d eta_1, d = max(d1, d2), d2 = min(T_rt / T, 1), clipped to [0, 1].

    eta_1 is the first LR of training, eta_T its last (that of its last iteration: after
    warm-up, the smallest). Where the papers are silent, the authors' code decides, since it
    produced the published numbers: they say only "a short warm-up phase" and name only
    CLR's start, the rest is ZIB-IOL/BIMP's runners/baseRunner.py, ``define_retrain_schedule``
    (per-iteration schedulers, a ``CosineAnnealingLR`` ramp over int(0.1 n) iterations, CLR's
    ``eta_min`` = minLR, SLR's table of training LRs, ALLR's clip of d eta_1).
    """
    if kind not in RETRAINING_KINDS:
        raise ValueError(f"unknown retraining schedule {kind!r}; known: {', '.join(RETRAINING_KINDS)}")
    steps = steps_per_epoch
    n, total = retrain_epochs * steps, epochs * steps
    eta_1, eta_T = training(0.0), training((total - 1) / steps)
    if kind == "ft":
        return lambda t: eta_T
    if kind == "lrw":
        return lambda t: training(epochs - retrain_epochs + t)
    warmup = n // 10  # int(0.1 n)
    rest = n - warmup
    peak = allr_factor(d1, retrain_epochs, epochs) * eta_1 if kind == "allr" else eta_1
    after = {
        "slr": lambda j: training(j * total // rest / steps),
        "clr": lambda j: eta_T + (eta_1 - eta_T) * (1 + math.cos(math.pi * j / rest)) / 2,
        "llr": lambda j: peak * (1 - j / rest),
        "allr": lambda j: peak * (1 - j / rest),
    }[kind]

    def schedule(t: float) -> float:
        k = round(t * steps)  # the loop evaluates t = k / steps_per_epoch
        return peak * (1 - math.cos(math.pi * k / warmup)) / 2 if k < warmup else after(k - warmup)

    return schedule


def allr_factor(d1: float, retrain_epochs: int, epochs: int) -> float:
    """ALLR's discount d = max(d1, d2) with d2 = min(T_rt / T, 1), clipped to [0, 1]."""
    d2 = min(retrain_epochs / epochs, 1.0)
    return min(max(d1, d2, 0.0), 1.0)
