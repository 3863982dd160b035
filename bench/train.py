"""The one training loop. Every method plugs in through the hooks of ``methods.core.base.Method``.

``train_run`` executes one RunSpec in a few steps: ``build_run`` (seeding, the method, the
model, loaded from the dense parent when the method prunes after training), ``resume``
from a checkpoint if there is one, ``run_phases`` (each phase opens in ``enter_phase``,
perhaps with a pruning step, ``prune``, around which test accuracy is measured, and train
accuracy too where the phase asks for it, at the cost of training time; it trains epoch
by epoch in ``run_epoch``), a last evaluation and ``make_record``. It returns the record, the
per-epoch history, the final state dict and the weights stored at the epochs the method
asks for (``store_weights``: the rewind points of a dense run). A phase may start, after its
pruning step, from such stored weights of the parent or from fresh ones (``rewind``). The
last history row of every phase has the model's test accuracy and sparsity report
(``phase_end``); a method with ``mask_dynamics`` has AIMP's indicators in every row, and the
method's ``measurements`` of the final model end it. A loss
that becomes NaN or infinite stops the run and marks it ``diverged``.

Given a checkpoint path, the run writes a checkpoint at the end of an epoch once
``$PRUNEBENCH_CHECKPOINT_SECONDS`` (default 60; 0: every epoch) have passed since it started
or last wrote one, so that short epochs do not spend their time saving: its run id,
the model's state dict, the method's ``state_dict()``, the optimizer, scaler, generator and
RNG states, its ``Progress``, the weights stored so far and the mask dynamics' last mask, all tensors and plain values, read back with
``weights_only=True``. A preempted run resumes from it and ends with the record and weights
it would have had; a checkpoint of another run, or one that does not read, is passed over
and the run starts afresh.

Collapsed layers (``bench.metrics.collapsed_layers``: a prunable layer with no remaining
weight) are looked for after every pruning step that opens a phase and at the end of every
epoch, in the weights that the evaluation right after computed with: for methods that
reparametrise during training (DNW's top k, DPF's and soft GMP's masks over dense weights,
STR's, CS's and DST's learned tensors) these are their effective weights, captured by
forward hooks, so no extra forward pass is made. ``Progress.emptied`` keeps, for each layer
empty at the last check, where it emptied (a layer that comes back is dropped from it). The
record judges the final stored model exactly: its masks and stored weights.

The SNIP-it paper's costs (``bench.metrics``) are gathered as cheaply: after every epoch's
training the forward FLOPs of its samples at the current weights are added up (one
single-example pass, ``training_flops_per_sample``, kept in the history) and the memory it took is read (``training_memory``,
in the history as ``ram_bytes``); the record has their total and median, and the test
split's throughput in its last evaluation. A structured run's record also has what its final
model would cost physically shrunk (``bench.shrunk_costs``, measured when the run ends).

The loop's named steps (training epochs, the method's hooks, batches, evaluations,
checkpoints, the record) are spans of ``bench.spans``, which the benchmark switches on to
see where a worker's time goes; off, they cost nothing.
"""

import math
import os
import pickle
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from methods import METHODS
from methods.core.base import Method, Phase
from methods.core.dynamics import MaskDynamics
from methods.core.masks import PruneEvent, apply_masks, clip_gradient_norm, mask_of
from methods.core.schedules import Schedule
from models import build_model
from schema import ConfigError

from .data import Dataset, load_dataset
from .metrics import (capture_weights, collapsed_layers, flops, pruning_stability, sparsity_report,
                      training_flops_per_sample, training_memory)
from .runspec import SCHEMA_VERSION, RunSpec
from .spans import CHECKPOINTS, EVALUATION, RECORDS, START_UP, TRAINING, span, timed, timed_batches, timed_hooks

EVAL_BATCH = 1024
CHECKPOINT_SECONDS = "PRUNEBENCH_CHECKPOINT_SECONDS"  # the environment variable of ``checkpoint_seconds``
# what a structured run's final model costs to train and evaluate shrunk (bench.shrunk_costs)
SHRUNK_COST_COLUMNS = ("train_memory_bytes", "shrunk_train_memory_bytes", "shrunk_train_step_speedup",
                       "shrunk_inference_speedup", "epochs_at_final_structure", "train_time_reduction",
                       "train_memory_reduction")
REINIT_SEED = 1_000_003  # offset of the seed of a reinitialisation's fresh weights from the run's


@dataclass
class RunResult:
    record: dict
    history: list[dict]
    state_dict: dict
    stored: dict[int, dict] = field(default_factory=dict)  # weights by epoch, for runs that rewind to them


@dataclass
class Progress:
    """Where a run stands, besides its model, method and optimizer: the phase under way and
    the epochs finished in it, the measurements so far (``dense_train_accuracy`` only for
    phases that ``measures_train_accuracy``; ``train_flops`` of every epoch, timed or not),
    the history, and for each layer empty at the last check where it emptied ("<phase>
    epoch <k>")."""

    phase: int = 0
    epoch: int = 0
    epochs_done: int = 0
    train_seconds: float = 0.0
    samples: int = 0
    train_flops: float = 0.0
    before: float = math.nan
    after: float = math.nan
    val_after: float = math.nan
    dense_train_accuracy: float = math.nan
    test_seconds: float = math.nan  # of the last test evaluation at a phase's end: the inference time
    event: PruneEvent | None = None
    status: str = "ok"
    history: list = field(default_factory=list)
    emptied: dict = field(default_factory=dict)

    def to_plain(self) -> dict:
        """Plain values for a checkpoint; the history is not copied (``asdict`` would copy
        every row at every epoch)."""
        return {**vars(self), "event": asdict(self.event) if self.event else None}

    @classmethod
    def from_plain(cls, values: dict) -> "Progress":
        """The inverse of ``to_plain``."""
        event = PruneEvent(**values["event"]) if values["event"] else None
        return cls(**{**values, "event": event})


@dataclass
class Parent:
    """The dense run a pruned run starts from: its final weights, its record and the weights
    it stored at the epochs its method asked for (``Method.stored_epochs``), by epoch."""

    state_dict: dict
    record: dict
    stored: dict[int, dict] = field(default_factory=dict)


@dataclass
class Run:
    """A run under way: what it trains and where it stands; ``stored`` holds the weights
    kept at the method's ``stored_epochs`` so far."""

    spec: RunSpec
    data: Dataset
    device: torch.device
    method: Method
    model: nn.Module
    generator: torch.Generator
    scaler: torch.amp.GradScaler
    progress: Progress = field(default_factory=Progress)
    optimizer: torch.optim.Optimizer | None = None  # of the phase under way
    schedule: Schedule | None = None
    parent: Parent | None = None
    stored: dict[int, dict] = field(default_factory=dict)
    dynamics: MaskDynamics | None = None
    checkpointed: float = field(default_factory=time.monotonic)  # when it started or last wrote a checkpoint


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
def cached_dataset(name: str, data_root: str, val_fraction: float, split_seed: int,
                   augment: str | None = None) -> Dataset:
    return load_dataset(name, data_root, val_fraction=val_fraction, split_seed=split_seed, augment=augment)


def load_state(model: nn.Module, state_dict: dict) -> None:
    """Load a state dict, first giving the model its structure: the mask buffers it carries
    are created, and the parameters it lacks (learned tensors that a final prune removed)
    are removed."""
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if f"{prefix}weight_mask" in state_dict:
            mask_of(module)
        for key in [key for key, _ in module.named_parameters(recurse=False) if prefix + key not in state_dict]:
            delattr(module, key)
    model.load_state_dict(state_dict)


@timed(EVALUATION)
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
    """The training's optimizer over the method's parameter groups: SGD, or Adam with
    PyTorch's betas and eps and the weight decay as an L2 term in the gradient (the SNIP-it
    authors' torch.optim.Adam, utils/model_utils.py and main.py), not AdamW's decoupled one.
    Both update all tensors at once (``foreach``, CUDA's default): on the CPU that is bitwise
    the per-tensor loop's result, in 1/1.3 (SGD) to 1/1.5 (Adam) of its time (bench/perf/findings.md)."""
    return optimizer_of(method.training, method.optimizer_groups(model))


def optimizer_of(training: dict, groups: list[dict]) -> torch.optim.Optimizer:
    """The training configuration's optimizer (``make_optimizer``) over parameter ``groups``."""
    if training["optimizer"] == "adam":
        return torch.optim.Adam(groups, lr=training["lr"], weight_decay=training["weight_decay"], foreach=True)
    return torch.optim.SGD(groups, lr=training["lr"], momentum=training["momentum"], nesterov=training["nesterov"],
                           weight_decay=training["weight_decay"], foreach=True)


def train_step(method, model, inputs, targets, optimizer, scaler) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step with the method's hooks; returns (loss, outputs). With a
    ``grad_clip``, the gradients' global norm is clipped after the method's ``after_backward``,
    right before the step, over every parameter's gradient as it is, a pruned weight's too:
    the SNIP-it authors' trainer (models/trainers/DefaultTrainer.py, ``_backward_pass``)."""
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
    if method.training["grad_clip"] is not None:
        clip_gradient_norm(model, method.training["grad_clip"])
    scaler.step(optimizer)
    scaler.update()
    method.after_step(model, optimizer)
    return loss, outputs


@timed(TRAINING)
def train_epoch(run: Run, epoch: int) -> tuple[float, float, int]:
    """Epoch ``epoch`` of the phase under way, the LR set per iteration; returns (mean loss,
    accuracy, samples)."""
    batch_size = run.method.training["batch_size"]
    steps = math.ceil(run.data.train_size / batch_size)
    loss_sum = torch.zeros((), device=run.device)
    correct = torch.zeros((), device=run.device, dtype=torch.long)
    seen = 0
    batches = timed_batches(run.data.train_batches(batch_size, run.generator, run.device))
    for step, (inputs, targets) in enumerate(batches):
        lr = run.schedule(epoch + step / steps)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        loss, outputs = train_step(run.method, run.model, inputs, targets, run.optimizer, run.scaler)
        loss_sum += loss.detach() * len(targets)
        correct += (outputs.detach().argmax(1) == targets).sum()
        seen += len(targets)
    return loss_sum.item() / seen, correct.item() / seen, seen


def build_run(spec: RunSpec, data: Dataset, device: torch.device, parent: Parent | None = None) -> Run:
    """The run before its first step: seeded, its method made, its model built, loaded from
    the parent's state dict and set up by the method, which is given the training batches."""
    training = spec.training
    torch.manual_seed(spec.seed)
    method = timed_hooks(METHODS[spec.method](spec.hp, training, spec.goal_sparsity))
    generator = torch.Generator().manual_seed(spec.seed)
    scaler = torch.amp.GradScaler(device.type, enabled=training["amp"] and device.type == "cuda")
    model = build_model(training["model"], data.num_classes, data.in_channels).to(device)
    if parent is not None:
        load_state(model, parent.state_dict)
    method.setup(model, math.ceil(data.train_size / training["batch_size"]))
    method.use_training_data(lambda: data.train_batches(training["batch_size"], generator, device))
    fraction = method.mask_dynamics()
    dynamics = MaskDynamics(fraction) if fraction is not None else None
    return Run(spec, data, device, method, model, generator, scaler, parent=parent, dynamics=dynamics)


def checkpoint_seconds() -> float:
    """The least seconds between two checkpoints of a run: ``$PRUNEBENCH_CHECKPOINT_SECONDS``,
    60 by default. A preempted run loses at most this and one epoch; a checkpoint of the
    1D ResNet takes about 1% of its 0.5-second epoch, so on the CPU profiles one after
    every epoch cost 1.7% of the workers' time (bench/perf/findings.md)."""
    value = os.environ.get(CHECKPOINT_SECONDS, "60")
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not seconds >= 0:
        raise ConfigError(f"must be a number of seconds, 0 or more, got {value!r}", key=f"${CHECKPOINT_SECONDS}")
    return seconds


@timed(CHECKPOINTS)
def save_checkpoint(path: Path, run: Run) -> None:
    """Write the run's checkpoint, plain values and tensors only, aside and move it into
    place (a crash never leaves half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    torch.save({"run_id": run.spec.run_id, "model": run.model.state_dict(), "method": run.method.state_dict(),
                "optimizer": run.optimizer.state_dict(), "scaler": run.scaler.state_dict(),
                "generator": run.generator.get_state(), "rng": torch.get_rng_state(),
                "progress": run.progress.to_plain(), "stored": run.stored,
                "dynamics": run.dynamics.state_dict() if run.dynamics else None}, tmp)
    os.replace(tmp, path)


@timed(CHECKPOINTS)
def read_checkpoint(path: Path | None, run_id: str, log) -> dict | None:
    """The checkpoint at ``path`` if there is one of this run. One that does not read or
    belongs to another run is passed over, with a line in the log: the run starts afresh."""
    if path is None or not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        reason = (str(error).splitlines() or [""])[0]
        log(f"checkpoint {path} does not read ({type(error).__name__}: {reason}): starting afresh")
        return None
    owner = saved.get("run_id") if isinstance(saved, dict) else None
    if owner != run_id:
        log(f"checkpoint {path} is not of run {run_id} but of {owner}: starting afresh")
        return None
    return saved


def resume(run: Run, saved: dict) -> None:
    """Put the run where the checkpoint ``saved`` left it (all but the optimizer, which is
    made when the phase is entered)."""
    load_state(run.model, saved["model"])
    run.method.load_state_dict(saved["method"])
    run.generator.set_state(saved["generator"])
    torch.set_rng_state(saved["rng"])
    run.scaler.load_state_dict(saved["scaler"])
    run.progress = Progress.from_plain(saved["progress"])
    run.stored = saved["stored"]
    if run.dynamics is not None:
        run.dynamics.load_state_dict(saved["dynamics"])


def note_collapsed(run: Run, phase: Phase, weights: dict) -> None:
    """Update ``progress.emptied`` from the ``weights`` the last evaluation computed with; a
    layer that stays empty keeps the place where it emptied."""
    progress = run.progress
    where = f"{phase.name} epoch {progress.epoch}"
    progress.emptied = {name: progress.emptied.get(name, where) for name in collapsed_layers(run.model, weights)}


def timed_train_accuracy(run: Run, phase: Phase) -> float:
    """Accuracy on the training split, its time counted as training when the phase is timed."""
    start = time.perf_counter()
    accuracy = evaluate(run.method, run.model, run.data, "train", run.device)
    if phase.timed:
        run.progress.train_seconds += time.perf_counter() - start
    return accuracy


def prune(run: Run, phase: Phase) -> PruneEvent:
    """The method's pruning step that opens ``phase``; for a phase that ``measures_train_accuracy``,
    its event carries the train accuracy of the pruned model and of the dense one (measured
    before the first such step of the run and kept in the progress)."""
    if not phase.measures_train_accuracy:
        return run.method.prune(run.model, phase.sparsity)
    progress = run.progress
    if math.isnan(progress.dense_train_accuracy):
        progress.dense_train_accuracy = timed_train_accuracy(run, phase)
    event = run.method.prune(run.model, phase.sparsity)
    return replace(event, dense_train_accuracy=progress.dense_train_accuracy,
                   train_accuracy=timed_train_accuracy(run, phase))


def weights_now(model: nn.Module) -> dict:
    """A copy of the model's state dict on the CPU."""
    return {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}


@torch.no_grad()
def start_from(run: Run, weights: dict) -> None:
    """Put ``weights`` (a state dict without masks) into the model, keep its masks and zero
    the weights they prune."""
    masks = {key: value for key, value in run.model.state_dict().items() if key.endswith("weight_mask")}
    run.model.load_state_dict({**weights, **masks})
    apply_masks(run.model)


def fresh_weights(run: Run) -> dict:
    """A new random initialisation W'_0 of the run's model, drawn from a stream of its own
    (seeded by the run's seed), so the run's own random stream is left as it was."""
    training, data = run.spec.training, run.data
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(REINIT_SEED + run.spec.seed)
        return build_model(training["model"], data.num_classes, data.in_channels).state_dict()


def rewind(run: Run, phase: Phase, log) -> None:
    """The phase's start after its pruning step: the parent's weights stored at epoch
    ``rewinds_to``, or fresh ones for a phase that ``reinitialises``."""
    if phase.reinitialises:
        start_from(run, fresh_weights(run))
        log(f"{phase.name}: reinitialised")
    elif phase.rewinds_to is not None:
        stored = run.parent.stored if run.parent is not None else {}
        if phase.rewinds_to not in stored:
            raise RuntimeError(f"{phase.name} rewinds to epoch {phase.rewinds_to}, but the parent stored the weights "
                               f"of epochs {sorted(stored)} only")
        start_from(run, stored[phase.rewinds_to])
        log(f"{phase.name}: weights rewound to epoch {phase.rewinds_to} of the dense run")


def accuracy_so_far(run: Run) -> float:
    """The test accuracy of the model as the phase under way finds it: measured by the last
    history row if that row ended the phase before (``phase_end``: nothing has changed the
    model since), else measured now."""
    progress, last = run.progress, run.progress.history[-1] if run.progress.history else {}
    before = run.method.phases()[progress.phase - 1] if progress.phase > 0 else None
    if (before is not None and before.epochs > 0 and last.get("phase") == before.name
            and last.get("epoch") == progress.epochs_done and "test_accuracy" in last):
        return last["test_accuracy"]
    return evaluate(run.method, run.model, run.data, "test", run.device)


def enter_phase(run: Run, phase: Phase, log) -> None:
    """Open ``phase``: its pruning step with the test accuracy around it (unless the run
    resumes inside the phase), then the weights it ``rewind``s to, the method's ``enter``, the schedule and a fresh optimizer,
    unless the phase keeps the one of the phase before (a resumed run has none yet: its
    state is loaded into a fresh one)."""
    method, model, progress = run.method, run.model, run.progress
    prunes_now = phase.prunes and progress.epoch == 0
    if prunes_now:
        progress.before = accuracy_so_far(run)
        progress.event = prune(run, phase)
    method.enter(phase)
    if prunes_now:
        with capture_weights(model) as weights:
            progress.after, progress.val_after = (evaluate(method, model, run.data, split, run.device)
                                                  for split in ("test", "val"))
        note_collapsed(run, phase, weights)
        log(f"{phase.name}: pruned to {phase.sparsity}, test accuracy {progress.before:.4f} -> {progress.after:.4f}")
        rewind(run, phase, log)
    if run.dynamics is not None and progress.epoch == 0:
        run.dynamics.start(model)
    run.schedule = phase.schedule(progress.event if phase.prunes else None)
    if not (phase.keeps_optimizer and run.optimizer is not None):
        run.optimizer = make_optimizer(method, model)


def run_epoch(run: Run, phase: Phase, epoch: int, log) -> None:
    """Epoch ``epoch`` of ``phase``: training, the FLOPs and memory it took (measured before
    the method's ``end_epoch`` may prune, and not timed), the method's ``end_epoch``, the
    validation accuracy and a line of history; a loss that is not finite marks the run diverged."""
    progress = run.progress
    if run.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(run.device)
    start = time.perf_counter()
    loss, accuracy, seen = train_epoch(run, epoch)
    elapsed = time.perf_counter() - start
    flops_per_sample = training_flops_per_sample(run.model, one_example(run), run.method.structured)
    progress.train_flops += seen * flops_per_sample
    memory = training_memory(run.device)
    start = time.perf_counter()
    run.method.end_epoch(run.model, progress.epochs_done)
    if phase.timed:
        progress.train_seconds += elapsed + time.perf_counter() - start
        progress.samples += seen
    progress.epochs_done += 1
    progress.epoch = epoch + 1
    with capture_weights(run.model) as weights:
        val = evaluate(run.method, run.model, run.data, "val", run.device)
    note_collapsed(run, phase, weights)
    progress.history.append({"phase": phase.name, "epoch": progress.epochs_done, "lr": run.schedule(epoch),
                             "train_loss": loss, "train_accuracy": accuracy, "val_accuracy": val,
                             "seconds": progress.train_seconds, "ram_bytes": memory,
                             "train_flops_per_sample": flops_per_sample,
                             **(run.dynamics.measure(run.model) if run.dynamics is not None else {}),
                             **(phase_end(run) if epoch + 1 == phase.epochs else {})})
    log(f"{phase.name} epoch {epoch + 1}/{phase.epochs}: loss {loss:.4f} train {accuracy:.4f} val {val:.4f}")
    if not math.isfinite(loss):
        progress.status = "diverged"


def one_example(run: Run) -> torch.Tensor:
    """The first test input, a batch of one: what the FLOPs and the probe passes run on."""
    return next(run.data.eval_batches("test", 1, run.device))[0]


@timed(EVALUATION)
def phase_end(run: Run) -> dict:
    """What the history keeps of the model at the end of a phase (of every iteration of an
    iterative method): its test accuracy (how long it took in ``Progress.test_seconds``) and
    sparsity report."""
    start = time.perf_counter()
    test = evaluate(run.method, run.model, run.data, "test", run.device)
    run.progress.test_seconds = time.perf_counter() - start
    return {"test_accuracy": test, **sparsity_report(run.model, one_example(run), structured=run.method.structured)}


def store_weights(run: Run) -> None:
    """Keep the weights now if the method stores those of this epoch (0: before training)."""
    if run.progress.epochs_done in run.method.stored_epochs():
        run.stored[run.progress.epochs_done] = weights_now(run.model)


def run_phases(run: Run, log, checkpoint: Path | None, optimizer_state: dict | None = None) -> None:
    """The method's phases from where the run stands to the end (or a divergence), with a
    checkpoint after an epoch when one is due (``checkpoint_seconds``); ``optimizer_state``
    is that of the phase resumed."""
    every = checkpoint_seconds()
    for index, phase in enumerate(run.method.phases()):
        if index < run.progress.phase:
            continue
        enter_phase(run, phase, log)
        if optimizer_state is not None:
            run.optimizer.load_state_dict(optimizer_state)
            optimizer_state = None
        if run.progress.epochs_done == 0:
            store_weights(run)
        for epoch in range(run.progress.epoch, phase.epochs):
            run_epoch(run, phase, epoch, log)
            store_weights(run)
            if run.progress.status == "diverged":
                return
            if checkpoint is not None and time.monotonic() - run.checkpointed >= every:
                save_checkpoint(checkpoint, run)
                run.checkpointed = time.monotonic()
        run.progress.phase, run.progress.epoch = index + 1, 0


def structured_costs(run: Run, log) -> dict:
    """The columns of ``SHRUNK_COST_COLUMNS``: for a structured method, its final model against
    its physically shrunk copy (``bench.shrunk_costs``, imported here, as it imports
    Torch-Pruning: only when a structured run ends); NaN for the others."""
    if not run.method.structured:
        return dict.fromkeys(SHRUNK_COST_COLUMNS, math.nan)
    from .shrunk_costs import shrunk_costs

    return shrunk_costs(run, log)


@timed(RECORDS)
def make_record(run: Run, parent_record: dict, test: float, val: float, started: float,
                test_seconds: float, log=print) -> dict:
    """The run's record: its configuration, what its method is, its accuracies (final and
    around the last prune), sparsity, collapsed layers (";"-joined names, and where each
    emptied, "end" if only the final model shows it), cost and provenance. ``epochs`` counts
    every epoch trained, the parent's included; ``training_epochs`` is the training budget T
    of the configuration (for a run that prunes a trained model, that model's training).

    The SNIP-it paper's costs (appendix H), each beside the unpruned baseline's as the paper
    reports them: ``train_flops`` (forward FLOPs of every epoch trained, the parent's included;
    ``bench.metrics.training_flops_per_sample``) and ``train_flops_reduction``, the baseline's (the dense
    model's FLOPs over T epochs of the training split) over it; ``ram_bytes``, the median
    over the run's own epochs of the memory each took (``bench.metrics.training_memory``);
    ``inference_images_per_second``, the test split's throughput in its last evaluation
    (``test_seconds`` long; the paper times the inference with CUDA events, the authors'
    models/trainers/DefaultTrainer.py, ``_batch_iteration``, in their ``validate``). For a
    structured method, the reductions of training time and RAM had the epochs at the final
    structure trained the physically shrunk network, and its inference speedup
    (``structured_costs``; ``log`` says where they could not be measured)."""
    spec, method, progress, training = run.spec, run.method, run.progress, run.spec.training
    example = one_example(run)
    before, after, val_after = progress.before, progress.after, progress.val_after
    report_pruned = method.better_of_pruned_and_retrained and val_after > val
    collapsed = collapsed_layers(run.model)
    dense_flops = flops(run.model, example)[0]
    # a parent recorded before train_flops existed is a dense run: every epoch at the dense FLOPs
    train_flops = progress.train_flops + parent_record.get(
        "train_flops", parent_record.get("epochs", 0) * run.data.train_size * dense_flops)
    memory = [row["ram_bytes"] for row in progress.history if "ram_bytes" in row]
    costs = structured_costs(run, log)  # before run_seconds, which counts them
    return {
        "run_id": spec.run_id,
        "parent_run_id": spec.parent.run_id if spec.parent else None,
        "method": spec.method,
        "pruning_stable": method.pruning_stable,
        "learns_sparsity": method.learns_sparsity,
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
        **sparsity_report(run.model, example, structured=method.structured),
        "collapsed_layers": ";".join(collapsed),
        "n_collapsed_layers": len(collapsed),
        "collapsed_at": ";".join(f"{name}@{progress.emptied.get(name, 'end')}" for name in collapsed),
        "epochs": parent_record.get("epochs", 0) + progress.epochs_done,
        "own_epochs": progress.epochs_done,
        "training_epochs": training["epochs"],
        "train_seconds": parent_record.get("train_seconds", 0.0) + progress.train_seconds,
        "own_train_seconds": progress.train_seconds,
        "run_seconds": time.perf_counter() - started,
        "images_per_second": progress.samples / progress.train_seconds if progress.train_seconds else math.nan,
        "train_flops": train_flops,
        "train_flops_reduction": dense_flops * training["epochs"] * run.data.train_size / train_flops
        if train_flops else math.inf,
        "ram_bytes": float(statistics.median(memory)) if memory else math.nan,  # a float whatever the count
        "inference_images_per_second": run.data.test_size / test_seconds if test_seconds else math.nan,
        **costs,
        "threads": training["threads"],
        "device": run.device.type,
        "schema_version": SCHEMA_VERSION,
        "code_version": code_version(),
    }


def final_accuracies(run: Run) -> tuple[float, float, float]:
    """Test and validation accuracy of the final model, and the seconds the test evaluation
    took. When the run ended with the last epoch of its last phase, that epoch's line of history
    measured this very model (nothing changes it after the epoch), so they are taken from there;
    otherwise (a diverged run, a last phase of no epochs) measured now."""
    phases, history = run.method.phases(), run.progress.history
    last = history[-1] if history else {}
    if (run.progress.status != "diverged" and phases and phases[-1].epochs > 0 and last.get("phase") == phases[-1].name
            and last.get("epoch") == run.progress.epochs_done and "test_accuracy" in last):
        return last["test_accuracy"], last["val_accuracy"], run.progress.test_seconds
    start = time.perf_counter()
    test = evaluate(run.method, run.model, run.data, "test", run.device)
    seconds = time.perf_counter() - start
    return test, evaluate(run.method, run.model, run.data, "val", run.device), seconds


def train_run(spec: RunSpec, data_root: str | Path, parent: Parent | None = None,
              log=print, checkpoint: Path | None = None) -> RunResult:
    """Execute one run; ``parent`` is the dense run it starts from;
    ``checkpoint`` is where the run saves its progress every epoch and resumes from."""
    started = time.perf_counter()
    training = spec.training
    torch.set_num_threads(training["threads"])
    with span(START_UP):  # loaded once per process
        data = cached_dataset(training["dataset"], str(data_root), training["val_fraction"], training["split_seed"],
                              training.get("augment"))
    run = build_run(spec, data, select_device(), parent)
    saved = read_checkpoint(checkpoint, spec.run_id, log)
    if saved is not None:
        resume(run, saved)
        log(f"resumed from {checkpoint}: phase {run.progress.phase}, epoch {run.progress.epoch}")
    run_phases(run, log, checkpoint, saved["optimizer"] if saved else None)
    test, val, test_seconds = final_accuracies(run)
    record = make_record(run, parent.record if parent is not None else {}, test, val, started, test_seconds, log)
    history = [*run.progress.history, *run.method.measurements(run.model)]
    state = {key: value.detach().cpu() for key, value in run.model.state_dict().items()}
    return RunResult(record, history, state, run.stored)
