"""What a node-pruned run would have cost had it trained the smaller network: the SNIP-it
paper's reductions of training time, training RAM and inference time against the unpruned
baseline (its Tables 1 and 4, appendix H).

The authors' structured methods cut pruned nodes out of the tensors (models/criterions/SNAP.py,
``handle_output`` and ``handle_input``), so every epoch after a prune trains and evaluates the
smaller network. prunebench trains the full-size network with masks, which costs what the
unpruned one does. So at the end of a structured run its final model is measured side by side,
in the same process, against its physically shrunk copy (``bench.shrink``): the footprint of
one training step of each, their training steps' and test evaluations' seconds; and the run's
own history says how many of its epochs trained the final structure. The reductions model the
run as if each of those epochs had trained the shrunk network, as the authors' code does; they
are a model of such a run, not a measurement of one.

This module imports Torch-Pruning (through ``bench.shrink``); ``bench.train`` imports it only
when a structured run ends, so that workers start without it.
"""

import copy
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from methods.core.masks import apply_masks
from methods.core.nodes import node_layers

from .metrics import flops, kept_units
from .shrink import shrink
from .train import EVAL_BATCH, SHRUNK_COST_COLUMNS, Run, one_example, optimizer_of

WARM_UP = 1  # untimed steps before the timed ones
TIMED_STEPS = 5  # training steps timed per model, their median kept
TEST_PASSES = 3  # timed evaluations of the test split per model, their median kept
SAME_STRUCTURE = 1e-9  # relative difference of per-sample FLOPs within which an epoch trained the final structure


def optimizer_states(training: dict) -> int:
    """Tensors of the shape of a parameter the optimizer keeps per parameter: Adam's two
    moments, SGD's momentum buffer when it has momentum."""
    if training["optimizer"] == "adam":
        return 2
    return 1 if training["momentum"] > 0 else 0


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def train_footprint(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, states: int) -> int:
    """Bytes one training step on (``inputs``, ``targets``) holds: the trainable parameters,
    their gradients and ``states`` optimizer tensors each, and what autograd saves for the
    backward pass in the forward pass and the cross-entropy (counted through
    ``saved_tensors_hooks``, each storage once, a parameter's not again). A count that depends
    on the shapes only, the same on every device: on CUDA not the allocator's peak, which also
    holds the workspace, temporaries and the caching allocator's rounding. The forward pass runs
    in training mode on a copy, so the model's BatchNorm statistics stay as they are."""
    model = copy.deepcopy(model).train()
    parameters = trainable(model)
    parameter_bytes = sum(p.numel() * p.element_size() for p in parameters)
    own = {p.untyped_storage().data_ptr() for p in parameters}
    saved: dict[int, int] = {}

    def count(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
        F.cross_entropy(model(inputs), targets)  # a storage saved stays alive, its address its own, to the end
    return parameter_bytes * (2 + states) + sum(saved.values())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_seconds(models: list[nn.Module], inputs: torch.Tensor, targets: torch.Tensor, training: dict,
                 device: torch.device) -> list[float]:
    """Per model, the median seconds of ``TIMED_STEPS`` training steps after ``WARM_UP``, the
    models' steps taken in turn on copies: forward, cross-entropy, backward, a step of the run's
    optimizer over every trainable parameter, the masks reapplied (nothing for a shrunk copy).
    The method's own hooks (regularisers, gradient clipping) are left out of both."""
    copies = [copy.deepcopy(model).train() for model in models]
    optimizers = [optimizer_of(training, [{"params": trainable(model)}]) for model in copies]
    seconds: list[list[float]] = [[] for _ in copies]
    for _ in range(WARM_UP + TIMED_STEPS):
        for model, optimizer, times in zip(copies, optimizers, seconds):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(inputs), targets).backward()
            optimizer.step()
            apply_masks(model)
            synchronize(device)
            times.append(time.perf_counter() - start)
    return [statistics.median(times[WARM_UP:]) for times in seconds]


@torch.inference_mode()
def inference_seconds(models: list[nn.Module], run: Run) -> list[float]:
    """Per model, the median over ``TEST_PASSES`` of the seconds its forward passes over the
    test split took (batches of ``EVAL_BATCH``, evaluation mode, copies), each batch passed
    through every model in turn; one untimed pass of the first batch warms each up. Data
    loading is not timed."""
    copies = [copy.deepcopy(model).eval() for model in models]
    first = next(run.data.eval_batches("test", EVAL_BATCH, run.device))[0]
    for model in copies:
        model(first)
    passes = []
    for _ in range(TEST_PASSES):
        seconds = [0.0] * len(copies)
        for inputs, _ in run.data.eval_batches("test", EVAL_BATCH, run.device):
            for index, model in enumerate(copies):
                start = time.perf_counter()
                model(inputs)
                synchronize(run.device)
                seconds[index] += time.perf_counter() - start
        passes.append(seconds)
    return [statistics.median(column) for column in zip(*passes)]


def epochs_at_final_structure(history: list[dict], final_flops_per_sample: float) -> int:
    """How many epochs of ``history`` trained the final structure: rows whose
    ``train_flops_per_sample`` (measured after the epoch's training, before a prune at its
    end) is the final model's within ``SAME_STRUCTURE`` relative."""
    return sum(1 for row in history if "train_flops_per_sample" in row
               and math.isclose(row["train_flops_per_sample"], final_flops_per_sample, rel_tol=SAME_STRUCTURE))


def train_time_reduction(epochs: int, at_final: int, speedup: float) -> float:
    """E / ((E - k) + k / s): the run's E epochs (its dense parent's included) against the same
    epochs with the k at the final structure trained on the shrunk network, s times faster per
    step (the unpruned network trains E epochs in the time the masked run does)."""
    return epochs / (epochs - at_final + at_final / speedup) if epochs else math.nan


def train_memory_reduction(full_bytes: float, shrunk_bytes: float, epochs: int, at_final: int) -> float:
    """The full-size footprint over the median over the run's E epochs (its dense parent's
    included) of the footprint each would have had: the shrunk network's for the k epochs at
    the final structure, the full-size one for the rest (the paper's RAM is a median over
    training, appendix H)."""
    if not epochs:
        return math.nan
    return full_bytes / statistics.median([shrunk_bytes] * at_final + [full_bytes] * (epochs - at_final))


def training_batch(run: Run) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch of the run's batch size, drawn with a generator of its own (the run's
    is left as it is)."""
    generator = torch.Generator().manual_seed(run.spec.seed)
    return next(iter(run.data.train_batches(run.spec.training["batch_size"], generator, run.device)))


def shrunk_costs(run: Run, log) -> dict:
    """The columns of ``SHRUNK_COST_COLUMNS`` for the final model of a structured run (module
    docstring). The full-size footprint and the epochs at the final structure are always
    measured; the rest is NaN, with a line in ``log``, where a node layer has no remaining node
    or ``bench.shrink`` cannot shrink the model. A model that pruned no node is its own shrunk
    copy: its speedups are 1, not timed (which would measure noise). The global random state
    is left as it was."""
    model, training, device = run.model, run.spec.training, run.device
    example = one_example(run)
    epochs = run.progress.epochs_done + (run.parent.record.get("epochs", 0) if run.parent is not None else 0)
    at_final = epochs_at_final_structure(run.progress.history, flops(model, example, structured=True)[1])
    kept = {module: kept_units(module) for module in node_layers(model)}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        inputs, targets = training_batch(run)
        full_bytes = train_footprint(model, inputs, targets, optimizer_states(training))
        costs = {**dict.fromkeys(SHRUNK_COST_COLUMNS, math.nan), "train_memory_bytes": float(full_bytes),
                 "epochs_at_final_structure": float(at_final)}
        empty = [name for name, module in model.named_modules() if module in kept and not kept[module].any()]
        if empty:
            log(f"shrunk costs not measured: node layers {', '.join(empty)} have no remaining node")
            return costs
        if all(units.all() for units in kept.values()):
            shrunk_bytes, speedup, inference_speedup = full_bytes, 1.0, 1.0
        else:
            try:
                shrunk = shrink(model, example)
            except ValueError as error:
                log(f"shrunk costs not measured: {error}")
                return costs
            shrunk_bytes = train_footprint(shrunk, inputs, targets, optimizer_states(training))
            full_step, shrunk_step = step_seconds([model, shrunk], inputs, targets, training, device)
            full_test, shrunk_test = inference_seconds([model, shrunk], run)
            speedup, inference_speedup = full_step / shrunk_step, full_test / shrunk_test
    return {**costs,
            "shrunk_train_memory_bytes": float(shrunk_bytes),
            "shrunk_train_step_speedup": speedup,
            "shrunk_inference_speedup": inference_speedup,
            "train_time_reduction": train_time_reduction(epochs, at_final, speedup),
            "train_memory_reduction": train_memory_reduction(full_bytes, shrunk_bytes, epochs, at_final)}
