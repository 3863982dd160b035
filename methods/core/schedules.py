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
FIXED_KINDS = ("ft", "lrw", "slr", "clr", "llr", "allr", "accallr")
TUNED_KINDS = ("constant", "stepped", "cosine", "linear")  # given an initial LR and a warm-up
DISCOUNTS = ("d1", "d2")  # ALLR with one factor of its d
RETRAINING_KINDS = FIXED_KINDS + TUNED_KINDS


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


def train_from(training: Schedule, start: float, epochs: int, steps_per_epoch: int) -> Schedule:
    """The training schedule S from epoch ``start`` on, S[g > T] = S[T]: t epochs into the
    retraining run at S(start + t), past the T = ``epochs`` of training at the LR of its last
    iteration (Renda et al. 2020, section 2.3: TRAIN^t(W, m, g) trains "according to the
    original learning rate schedule S, starting from epoch g")."""
    last = (epochs * steps_per_epoch - 1) / steps_per_epoch
    return lambda t: training(min(start + t, last))


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
                        steps_per_epoch: int = 1, initial_lr: float | None = None, warmup: float | None = None,
                        discount: str | None = None) -> Schedule:
    """The schedule of one retraining cycle of ``retrain_epochs`` after ``epochs`` of training.

    The cycle has n = T_rt * steps_per_epoch iterations k, run at t = k / steps_per_epoch.
    LRW replays the last T_rt epochs of the training schedule. Every other schedule warms up
    from 0 to its peak P over the first W iterations along a half cosine,
    P (1 - cos(pi k / W)) / 2, then decays over the R = n - W iterations j = k - W left:
    constant, P; stepped, P / eta_1 times the LR of training iteration floor(j N / R) of its
    N (the budget-aware conversion of training); cosine, floor + (P - floor)(1 + cos(pi j / R)) / 2;
    linear, P (1 - j / R). The fixed schedules are such decays with their own P and W:
    FT constant at P = eta_T, W = 0; SLR stepped, CLR cosine to floor eta_T, LLR linear, all
    with P = eta_1 and W = int(0.1 n); ALLR and AccALLR linear with P = d eta_1 (``allr_factor``;
    they differ in the d1 given). The tuned schedules constant, stepped, cosine and linear
    (floor 0) take P = ``initial_lr`` and W = int(``warmup`` n) (Love Retraining, appendix B.1).

    eta_1 is the first LR of training, eta_T its last (that of its last iteration: after
    warm-up, the smallest). Where the papers are silent, the authors' code decides, since it
    produced the published numbers: they say only "a short warm-up phase" and name only
    CLR's start, the rest is ZIB-IOL/BIMP's runners/baseRunner.py, ``define_retrain_schedule``
    (per-iteration schedulers, a ``CosineAnnealingLR`` ramp over int(warm-up n) iterations,
    CLR's ``eta_min`` = minLR, the table of training LRs of SLR and stepped, the latter scaled
    by ``retrain_schedule_init`` / maxLR, ALLR's clip of d eta_1).
    """
    if kind not in RETRAINING_KINDS:
        raise ValueError(f"unknown retraining schedule {kind!r}; known: {', '.join(RETRAINING_KINDS)}")
    if kind in TUNED_KINDS and None in (initial_lr, warmup):
        raise ValueError(f"the tuned {kind} schedule needs initial_lr and warmup")
    if kind in FIXED_KINDS and (initial_lr, warmup) != (None, None):
        raise ValueError(f"the fixed {kind} schedule takes no initial_lr or warmup")
    if kind == "lrw":
        return lambda t: training(epochs - retrain_epochs + t)
    steps = steps_per_epoch
    n, total = retrain_epochs * steps, epochs * steps
    eta_1, eta_T = training(0.0), training((total - 1) / steps)
    decay, peak, floor, warmup_fraction = {
        "ft": ("constant", eta_T, 0.0, 0.0),
        "slr": ("stepped", eta_1, 0.0, 0.1),
        "clr": ("cosine", eta_1, eta_T, 0.1),
        "llr": ("linear", eta_1, 0.0, 0.1),
        "allr": ("linear", allr_factor(d1, retrain_epochs, epochs, discount) * eta_1, 0.0, 0.1),
        "accallr": ("linear", allr_factor(d1, retrain_epochs, epochs) * eta_1, 0.0, 0.1),
    }.get(kind, (kind, initial_lr, 0.0, warmup))
    warmup_iterations = int(warmup_fraction * n)
    rest = n - warmup_iterations
    after = {
        "constant": lambda j: peak,
        "stepped": lambda j: training(j * total // rest / steps) * (peak / eta_1),
        "cosine": lambda j: floor + (peak - floor) * (1 + math.cos(math.pi * j / rest)) / 2,
        "linear": lambda j: peak * (1 - j / rest),
    }[decay]

    def schedule(t: float) -> float:
        k = round(t * steps)  # the loop evaluates t = k / steps_per_epoch
        if k < warmup_iterations:
            return peak * (1 - math.cos(math.pi * k / warmup_iterations)) / 2
        return after(k - warmup_iterations)

    return schedule


def allr_factor(d1: float, retrain_epochs: int, epochs: int, discount: str | None = None) -> float:
    """ALLR's discount d = max(d1, d2) with d2 = min(T_rt / T, 1), clipped to [0, 1]; ``discount``
    "d1" or "d2" keeps that factor alone (ALLRd1, ALLRd2: Love Retraining, appendix C.1)."""
    d2 = min(retrain_epochs / epochs, 1.0)
    d = {None: max(d1, d2), "d1": d1, "d2": d2}[discount]
    return min(max(d, 0.0), 1.0)


def accuracy_drop(dense: float, sparse: float) -> float:
    """AccALLR's d1 = (Acc(dense) - Acc(sparse)) / Acc(dense), clipped to [0, 1]
    (Love Retraining, appendix C.1)."""
    if dense <= 0:
        return 0.0
    return min(max((dense - sparse) / dense, 0.0), 1.0)
