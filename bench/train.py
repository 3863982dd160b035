"""The one training loop. Every method plugs in through the hooks of ``methods.base.Method``.

``train_run`` executes one RunSpec: it builds the model (loading the dense parent when the
method prunes after training), walks the method's phases (a phase may open with a pruning
step, around which test accuracy is measured), and returns the record, the per-epoch
history and the final state dict. A loss that becomes NaN or infinite stops the run and
marks it ``diverged``.
"""

import math
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from methods import METHODS
from methods.base import Method
from methods.masks import mask_of
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
        with torch.autocast(device.type, enabled=scaler.is_enabled()):
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
        loss_sum += loss.detach() * len(targets)
        correct += (outputs.detach().argmax(1) == targets).sum()
        seen += len(targets)
    return loss_sum.item() / seen, correct.item() / seen, seen


def train_run(spec: RunSpec, data_root: str | Path, parent: tuple[dict, dict] | None = None,
              log=print) -> RunResult:
    """Execute one run; ``parent`` is (state dict, record) of the dense run it starts from."""
    training = spec.training
    torch.set_num_threads(training["threads"])
    torch.manual_seed(spec.seed)
    device = select_device()
    data = cached_dataset(training["dataset"], str(data_root), training["val_fraction"], training["split_seed"])
    model = build_model(training["model"], data.num_classes, data.in_channels).to(device)
    method = METHODS[spec.method](spec.hp, training, spec.goal_sparsity)
    if parent is not None:
        load_state(model, parent[0])
    method.setup(model, math.ceil(data.train_size / training["batch_size"]))
    generator = torch.Generator().manual_seed(spec.seed)
    scaler = torch.amp.GradScaler(device.type, enabled=training["amp"] and device.type == "cuda")

    history, status = [], "ok"
    before = after = val_after = math.nan
    train_seconds, samples, epochs_done = 0.0, 0, 0
    for phase in method.phases():
        event = None
        if phase.prunes:
            before = evaluate(method, model, data, "test", device)
            event = method.prune(model, phase.sparsity)
        method.enter(phase)
        if phase.prunes:
            after, val_after = (evaluate(method, model, data, split, device) for split in ("test", "val"))
            log(f"{phase.name}: pruned to {phase.sparsity}, test accuracy {before:.4f} -> {after:.4f}")
        schedule = phase.schedule(event)
        optimizer = make_optimizer(method, model)
        for epoch in range(phase.epochs):
            start = time.perf_counter()
            loss, accuracy, seen = train_epoch(method, model, data, optimizer, schedule, epoch, generator, device,
                                               scaler)
            method.end_epoch(model, epochs_done)
            if phase.timed:
                train_seconds += time.perf_counter() - start
                samples += seen
            epochs_done += 1
            val = evaluate(method, model, data, "val", device)
            history.append({"phase": phase.name, "epoch": epochs_done, "lr": schedule(epoch), "train_loss": loss,
                            "train_accuracy": accuracy, "val_accuracy": val, "seconds": train_seconds})
            log(f"{phase.name} epoch {epoch + 1}/{phase.epochs}: loss {loss:.4f} train {accuracy:.4f} val {val:.4f}")
            if not math.isfinite(loss):
                status = "diverged"
                break
        if status == "diverged":
            break

    example = next(data.eval_batches("test", 1, device))[0]
    parent_record = parent[1] if parent is not None else {}
    test, val = (evaluate(method, model, data, split, device) for split in ("test", "val"))
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
        "status": status,
        "test_accuracy": after if report_pruned else test,
        "val_accuracy": val_after if report_pruned else val,
        "reported_model": "pruned" if report_pruned else "final",
        "accuracy_before_prune": before,
        "accuracy_after_prune": after,
        "val_accuracy_after_prune": val_after,
        "accuracy_after_retrain": test,
        "pruning_stability": pruning_stability(before, after),
        **sparsity_report(model, example),
        "epochs": parent_record.get("epochs", 0) + epochs_done,
        "train_seconds": parent_record.get("train_seconds", 0.0) + train_seconds,
        "own_train_seconds": train_seconds,
        "images_per_second": samples / train_seconds if train_seconds else math.nan,
        "threads": training["threads"],
        "device": device.type,
        "schema_version": SCHEMA_VERSION,
        "code_version": code_version(),
    }
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    return RunResult(record, history, state)
