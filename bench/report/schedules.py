"""The retraining schedules drawn as the runs compute them (Love Retraining, Figure 1).

The learning rates come from ``methods.core.schedules``, the code every run uses, evaluated
at each iteration k = 0..n-1 of one retraining cycle, t = k / steps_per_epoch; nothing is
redrawn. That module is torch-free, so drawing them trains and imports nothing else.
"""

from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from methods.core.schedules import retraining_schedule, training_schedule

NAMES = {"ft": "FT", "lrw": "LRW", "slr": "SLR", "clr": "CLR", "llr": "LLR", "allr": "ALLR", "accallr": "AccALLR"}
DISCOUNTED = ("allr", "accallr")  # drawn once per d1


def schedule_curves(training: dict, kinds: list[str], retrain_epochs: int, steps_per_epoch: int,
                    allr_d1: list[float]) -> pd.DataFrame:
    """One row per (schedule, iteration): ``schedule`` (its name; ALLR and AccALLR once per d1), ``epoch``
    (k / steps_per_epoch into the retraining) and ``lr``."""
    epochs = training["epochs"]
    trained = training_schedule(training["lr"], epochs, **training["lr_schedule"])
    curves = []
    for kind in kinds:
        for d1 in allr_d1 if kind in DISCOUNTED else [0.0]:
            name = f"{NAMES[kind]} (d1 = {d1:g})" if kind in DISCOUNTED and len(allr_d1) > 1 else NAMES[kind]
            lr = retraining_schedule(kind, trained, epochs, retrain_epochs, d1=d1, steps_per_epoch=steps_per_epoch)
            steps = range(retrain_epochs * steps_per_epoch)
            curves.append(pd.DataFrame({"schedule": name, "epoch": [k / steps_per_epoch for k in steps],
                                        "lr": [lr(k / steps_per_epoch) for k in steps]}))
    return pd.concat(curves, ignore_index=True)


def render_schedules(curves: pd.DataFrame, *, out_dir: Path, title: str) -> list[Path]:
    """Write ``schedules.pdf``/``.png`` (one line per schedule) and ``schedules.csv`` (the
    learning rate of every iteration drawn)."""
    out_dir = Path(out_dir)
    curves.to_csv(out_dir / "schedules.csv", index=False)
    names = list(dict.fromkeys(curves["schedule"]))
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(7, 4.2), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
    for name, color in zip(names, sns.color_palette("colorblind", len(names))):
        curve = curves[curves["schedule"] == name]
        ax.plot(curve["epoch"], curve["lr"], label=name, color=color)
    ax.set_xlabel("Retraining epoch")
    ax.set_ylabel("Learning rate")
    ax.legend(loc="upper right")
    ax.set_title(title)
    paths = [out_dir / "schedules.pdf", out_dir / "schedules.png"]
    for path in paths:
        fig.savefig(path, dpi=200)
    return [out_dir / "schedules.csv", *paths]
