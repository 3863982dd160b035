"""Sections 1, 2 and 8: the cost of a training step under masking and under every method,
relative to the same dense step, and of the 1D layers written as matrix products
(``models.layers1d``) against PyTorch's own.

A workload is one epoch of the real loop (``bench.train.train_epoch``: the method's
forward, regularizer and hooks) in the method's first phase, entered by the loop's own
``enter_phase`` (the pruning step that opens it, the optimizer, the schedule). The CPU
default model trains on MNIST-1D; ResNet-20 on CIFAR-shaped random images (32x32, crop
and flip), as no CIFAR is read here.
"""

import math
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn
from torch.nn.utils import prune

from methods import METHODS
from methods.core.masks import prunable_modules

from ..data import InMemoryDataset, default_data_root, random_crop_flip
from ..manifest import load
from ..report.paper import reference_table
from ..runspec import RunSpec
from ..train import build_run, cached_dataset, enter_phase, train_epoch
from .timing import Figure, figure, interleaved

DEVICE = torch.device("cpu")


def cifar_like(steps: int, batch_size: int = 128) -> InMemoryDataset:
    """``steps`` batches of random 32x32 RGB images in 10 classes, augmented as CIFAR is."""
    generator = torch.Generator().manual_seed(0)
    images = {split: torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
              for split, n in (("train", steps * batch_size), ("val", batch_size), ("test", batch_size))}
    labels = {split: torch.randint(0, 10, (len(x),), generator=generator) for split, x in images.items()}
    return InMemoryDataset("cifar-shaped", 10, 3, images, labels, mean=torch.full((3, 1, 1), 127.0),
                           std=torch.full((3, 1, 1), 64.0), augment=random_crop_flip)


def epoch_of(spec: RunSpec, data, modify: Callable | None = None) -> Callable[[], None]:
    """A workload: the next epoch of ``spec``'s first phase, entered and trained as the loop
    does. ``modify(model)`` changes the model before the phase is entered."""
    run = build_run(spec, data, DEVICE)
    if modify is not None:
        modify(run.model)
    phase = run.method.phases()[0]
    enter_phase(run, phase, log=lambda line: None)
    done = 0

    def epoch():
        nonlocal done
        train_epoch(run, done % phase.epochs)
        run.method.end_epoch(run.model, done)
        done += 1
    return epoch


def torch_prune(sparsity: float) -> Callable:
    """torch.nn.utils.prune's global magnitude pruning: weight = weight_orig * weight_mask, recomputed in a
    forward pre-hook at every forward pass."""
    def apply(model):
        prune.global_unstructured([(m, "weight") for m in prunable_modules(model)], prune.L1Unstructured,
                                  amount=sparsity)
    return apply


def cpu_specs() -> dict[str, RunSpec]:
    """One run per method of the shipped table's CPU profile (its first configuration at 90%), without
    its parent: the step cost does not depend on the weights it starts from."""
    specs: dict[str, RunSpec] = {}
    for spec in load("table-imp-vs-stable", "cpu").expand():
        if spec.goal_sparsity in (None, 0.9):
            specs.setdefault(spec.method, RunSpec(spec.method, 0, {**spec.training, "threads": 1}, spec.hp,
                                                  spec.goal_sparsity))
    return specs


def step_cases(quick: bool) -> dict[str, tuple[dict, object]]:
    """Model name -> (training overrides, dataset) of the step benchmarks."""
    return {"resnet1d / MNIST-1D": ({"model": "resnet1d", "dataset": "mnist1d"},
                                    cached_dataset("mnist1d", str(default_data_root()), 0.1, 0)),
            "resnet20 / CIFAR-shaped": ({"model": "resnet20", "dataset": "cifar10"}, cifar_like(1 if quick else 4))}


def masking(quick: bool) -> list[Figure]:
    specs, repeats, warmup = cpu_specs(), 1 if quick else 7, 0 if quick else 1
    imp = specs["imp"]
    out = []
    torch.set_num_threads(1)
    for name, (overrides, data) in step_cases(quick).items():
        dense = RunSpec("dense", 0, {**imp.training, **overrides, "batch_size": 128})
        masked = RunSpec("imp", 0, dense.training, METHODS["imp"].resolve({**imp.hp, "cycles": 1}), 0.9)
        steps = math.ceil(data.train_size / 128)
        base = epoch_of(dense, data)
        out.append(figure("1. masking", f"{name}: IMP masks at 90% / dense",
                          interleaved(base, epoch_of(masked, data), repeats, warmup), "x", goal=1.03,
                          note=f"{steps} steps of batch 128 per timing, 1 thread"))
        out.append(figure("1. masking", f"{name}: torch.nn.utils.prune at 90% / dense",
                          interleaved(base, epoch_of(dense, data, torch_prune(0.9)), repeats, warmup), "x",
                          note="for comparison"))
    return out


def paper_time_ratios() -> dict[str, float]:
    """Method -> the Time column of Back to Basics Table 1 (ResNet-56 on CIFAR-10: total
    training time over dense training, on a GPU)."""
    table = reference_table("back_to_basics_table4_resnet56_cifar10.csv")
    return dict(zip(table["method"].str.lower(), table["time_ratio"]))


def per_method(quick: bool) -> list[Figure]:
    """Every method's epoch over the dense epoch, on the CPU default model and (unless
    ``quick``) on ResNet-20."""
    specs, paper, out = cpu_specs(), paper_time_ratios(), []
    torch.set_num_threads(1)
    cases = step_cases(quick)
    for name, (overrides, data) in list(cases.items())[: 1 if quick else 2]:
        small = name.startswith("resnet1d")
        repeats, warmup = (1, 0) if quick else (7, 1) if small else (3, 1)
        base = epoch_of(RunSpec("dense", 0, {**specs["dense"].training, **overrides}), data)
        for method, spec in sorted(specs.items()):
            if method == "dense":
                continue
            spec = replace(spec, training={**spec.training, **overrides})
            ratios = interleaved(base, epoch_of(spec, data), repeats, warmup)
            quoted = f"; paper's Time {paper[method]:.2f}" if method in paper else ""
            out.append(figure("2. per method", f"{name}: {method} / dense", ratios, "x",
                              note=f"{METHODS[method].__doc__.strip().splitlines()[0].rstrip('.')}{quoted}"))
    return out


def builtin_1d_layers(model: nn.Module) -> None:
    """Turn ``models.layers1d``'s layers back into PyTorch's (same parameters and buffers)."""
    for module in model.modules():
        for builtin in (nn.Conv1d, nn.BatchNorm1d):
            if isinstance(module, builtin):
                module.__class__ = builtin


def layers_1d(quick: bool) -> list[Figure]:
    """A dense epoch of resnet1d on MNIST-1D with ``models.layers1d`` over the same epoch
    with PyTorch's Conv1d and BatchNorm1d, one thread."""
    repeats, warmup = (1, 0) if quick else (7, 1)
    torch.set_num_threads(1)
    overrides, data = step_cases(quick)["resnet1d / MNIST-1D"]
    dense = RunSpec("dense", 0, {**cpu_specs()["dense"].training, **overrides, "batch_size": 128})
    ratios = interleaved(epoch_of(dense, data, builtin_1d_layers), epoch_of(dense, data), repeats, warmup)
    return [figure("8. 1D layers", "resnet1d / MNIST-1D: layers1d / PyTorch's layers", ratios, "x", goal=0.85,
                   note=f"{math.ceil(data.train_size / 128)} steps of batch 128 per timing, 1 thread")]
