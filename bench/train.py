"""The one training loop. Every method plugs in through the hooks of ``methods.core.base.Method``.

``train_run`` executes one RunSpec: it builds the model (loading the dense parent when the
method prunes after training), walks the method's phases (a phase may open with a pruning
step, around which test accuracy is measured), and returns the record, the per-epoch
history and the final state dict. A loss that becomes NaN or infinite stops the run and
marks it ``diverged``. Given a checkpoint path, it writes a checkpoint at the end of every
epoch (model, method state, optimizer, RNG states, progress) and resumes from it, so a
preempted run continues where it stopped and ends with the record it would have had.
"""

import math
import os
import subprocess
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from methods import METHODS
from methods.core.base import Method
from methods.core.masks import PruneEvent, mask_of
from models import build_model

from .data import Dataset, load_dataset
from .metrics import pruning_stability, sparsity_report
from .runspec import SCHEMA_VERSION, RunSpec

EVAL_BATCH = 1024


@dataclass
class RunResult:
    record: dict
    history: list[dict]
    state_dict: dict


@dataclass
class Progress:
    """Where a run stands, besides its model, method and optimizer: the phase under way and
    the epochs finished in it, the measurements so far and the history."""

    phase: int = 0
    epoch: int = 0
    epochs_done: int = 0
    train_seconds: float = 0.0
    samples: int = 0
    before: float = math.nan
    after: float = math.nan
    val_after: float = math.nan
    event: PruneEvent | None = None
    status: str = "ok"
    history: list = field(default_factory=list)


def save_checkpoint(path: Path, model, method, optimizer, scaler, generator, progress: Progress) -> None:
    """Write the checkpoint aside and move it into place (a crash never leaves half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    state = {key: value for key, value in vars(method).items() if key != "phase"}
    torch.save({"model": model, "method": state, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "generator": generator.get_state(), "rng": torch.get_rng_state(), "progress": progress}, tmp)
    os.replace(tmp, path)


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the code, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def select_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@lru_cache(maxsize=4)
def cached_dataset(name: str, data_root: str, val_fraction: float, split_seed: int) -> Dataset:
    return load_dataset(name, data_root, val_fraction=val_fraction, split_seed=split_seed)


def load_state(model: nn.Module, state_dict: dict) -> None:
    """Load a state dict, creating the mask buffers it carries first."""
    modules = dict(model.named_modules())
    for key in state_dict:
        if key.endswith(".weight_mask"):
            mask_of(modules[key.rsplit(".", 1)[0]])
    model.load_state_dict(state_dict)


@torch.no_grad()
def evaluate(method: Method, model: nn.Module, data: Dataset, split: str, device) -> float:
    """Top-1 accuracy on ``split`` in evaluation mode."""
    model.eval()
    correct = total = 0
    for inputs, targets in data.eval_batches(split, EVAL_BATCH, device):
        correct += (method.forward(model, inputs).argmax(1) == targets).sum().item()
        total += len(targets)
    model.train()
    return correct / total


def make_optimizer(method: Method, model: nn.Module) -> torch.optim.Optimizer:
    training = method.training
    return torch.optim.SGD(method.optimizer_groups(model), lr=training["lr"], momentum=training["momentum"],
                           nesterov=training["nesterov"], weight_decay=training["weight_decay"])


def train_step(method, model, inputs, targets, optimizer, scaler) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step with the method's hooks; returns (loss, outputs)."""
    with torch.autocast(inputs.device.type, enabled=scaler.is_enabled()):
        outputs = method.forward(model, inputs)
        loss = F.cross_entropy(outputs, targets)
    penalty = method.regularizer(model)
    if penalty is not None:
        loss = loss + penalty
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    method.after_backward(model)
    scaler.step(optimizer)
    scaler.update()
    method.after_step(model, optimizer)
    return loss, outputs


def train_epoch(method, model, data, optimizer, schedule, epoch, generator, device, scaler) -> tuple[float, float, int]:
    """One epoch with the LR set per iteration; returns (mean loss, accuracy, samples)."""
    training = method.training
    steps = math.ceil(data.train_size / training["batch_size"])
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for step, (inputs, targets) in enumerate(data.train_batches(training["batch_size"], generator, device)):
        lr = schedule(epoch + step / steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, outputs = train_step(method, model, inputs, targets, optimizer, scaler)
        loss_sum += loss.detach() * len(targets)
        correct += (outputs.detach().argmax(1) == targets).sum()
        seen += len(targets)
    return loss_sum.item() / seen, correct.item() / seen, seen


def fresh_model(method: Method, data: Dataset, device, parent: tuple[dict, dict] | None = None) -> nn.Module:
    """The run's model before its first step: built, loaded from the parent, set up by the method."""
    training = method.training
    model = build_model(training["model"], data.num_classes, data.in_channels).to(device)
    if parent is not None:
        load_state(model, parent[0])
    method.setup(model, math.ceil(data.train_size / training["batch_size"]))
    return model


def train_run(spec: RunSpec, data_root: str | Path, parent: tuple[dict, dict] | None = None,
              log=print, checkpoint: Path | None = None) -> RunResult:
    """Execute one run; ``parent`` is (state dict, record) of the dense run it starts from;
    ``checkpoint`` is where the run saves its progress every epoch and resumes from."""
    started = time.perf_counter()
    training = spec.training
    torch.set_num_threads(training["threads"])
    torch.manual_seed(spec.seed)
    device = select_device()
    data = cached_dataset(training["dataset"], str(data_root), training["val_fraction"], training["split_seed"])
    method = METHODS[spec.method](spec.hp, training, spec.goal_sparsity)
    generator = torch.Generator().manual_seed(spec.seed)
    scaler = torch.amp.GradScaler(device.type, enabled=training["amp"] and device.type == "cuda")
    saved = torch.load(checkpoint, map_location=device, weights_only=False) if checkpoint and checkpoint.exists() else None
    if saved is None:
        model = fresh_model(method, data, device, parent)
        progress = Progress()
    else:
        model, progress = saved["model"], saved["progress"]
        vars(method).update(saved["method"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["rng"])
        scaler.load_state_dict(saved["scaler"])
        log(f"resumed from {checkpoint}: phase {progress.phase}, epoch {progress.epoch}")

    for index, phase in enumerate(method.phases()):
        if index < progress.phase:
            continue
        if phase.prunes and progress.epoch == 0:
            progress.before = evaluate(method, model, data, "test", device)
            progress.event = method.prune(model, phase.sparsity)
        method.enter(phase)
        if phase.prunes and progress.epoch == 0:
            progress.after, progress.val_after = (evaluate(method, model, data, split, device) for split in ("test", "val"))
            log(f"{phase.name}: pruned to {phase.sparsity}, test accuracy {progress.before:.4f} -> {progress.after:.4f}")
        schedule = phase.schedule(progress.event if phase.prunes else None)
        optimizer = make_optimizer(method, model)
        if saved is not None:
            optimizer.load_state_dict(saved.pop("optimizer"))
            saved = None
        for epoch in range(progress.epoch, phase.epochs):
            start = time.perf_counter()
            loss, accuracy, seen = train_epoch(method, model, data, optimizer, schedule, epoch, generator, device,
                                               scaler)
            method.end_epoch(model, progress.epochs_done)
            if phase.timed:
                progress.train_seconds += time.perf_counter() - start
                progress.samples += seen
            progress.epochs_done += 1
            progress.epoch = epoch + 1
            val = evaluate(method, model, data, "val", device)
            progress.history.append({"phase": phase.name, "epoch": progress.epochs_done, "lr": schedule(epoch),
                                     "train_loss": loss, "train_accuracy": accuracy, "val_accuracy": val,
                                     "seconds": progress.train_seconds})
            log(f"{phase.name} epoch {epoch + 1}/{phase.epochs}: loss {loss:.4f} train {accuracy:.4f} val {val:.4f}")
            if not math.isfinite(loss):
                progress.status = "diverged"
                break
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, method, optimizer, scaler, generator, progress)
        if progress.status == "diverged":
            break
        progress.phase, progress.epoch = index + 1, 0

    example = next(data.eval_batches("test", 1, device))[0]
    parent_record = parent[1] if parent is not None else {}
    test, val = (evaluate(method, model, data, split, device) for split in ("test", "val"))
    before, after, val_after = progress.before, progress.after, progress.val_after
    report_pruned = method.better_of_pruned_and_retrained and val_after > val
    record = {
        "run_id": spec.run_id,
        "parent_run_id": spec.parent.run_id if spec.parent else None,
        "method": spec.method,
        "label": spec.label,
        "seed": spec.seed,
        "goal_sparsity": spec.goal_sparsity if spec.goal_sparsity is not None else math.nan,
        **spec.hp_columns(),
        "model": training["model"],
        "dataset": training["dataset"],
        "status": progress.status,
        "test_accuracy": after if report_pruned else test,
        "val_accuracy": val_after if report_pruned else val,
        "reported_model": "pruned" if report_pruned else "final",
        "accuracy_before_prune": before,
        "accuracy_after_prune": after,
        "val_accuracy_after_prune": val_after,
        "accuracy_after_retrain": test,
        "pruning_stability": pruning_stability(before, after),
        **sparsity_report(model, example),
        "epochs": parent_record.get("epochs", 0) + progress.epochs_done,
        "train_seconds": parent_record.get("train_seconds", 0.0) + progress.train_seconds,
        "own_train_seconds": progress.train_seconds,
        "run_seconds": time.perf_counter() - started,
        "images_per_second": progress.samples / progress.train_seconds if progress.train_seconds else math.nan,
        "threads": training["threads"],
        "device": device.type,
        "schema_version": SCHEMA_VERSION,
        "code_version": code_version(),
    }
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    return RunResult(record, progress.history, state)
