"""Synthetic records: every column a real run records, with plausible random values.

For the benchmarks of collecting and reporting at scale, and for tests of many writers at
once; a test keeps the columns equal to those of a real record.
"""

import math
import random

from methods import METHODS

from .runspec import SCHEMA_VERSION, RunSpec
from .train import SHRUNK_COST_COLUMNS


def synthetic_record(spec: RunSpec, rng: random.Random) -> dict:
    dense = spec.method == "dense"
    sparsity = 0.0 if dense else spec.goal_sparsity or rng.choice((0.9, 0.95, 0.98)) + rng.uniform(-0.01, 0.01)
    before, after = rng.uniform(0.85, 0.95), rng.uniform(0.1, 0.9)
    test, val = rng.uniform(0.8, 0.93), rng.uniform(0.8, 0.93)
    seconds = rng.uniform(100, 200)
    return {
        "run_id": spec.run_id,
        "parent_run_id": spec.parent.run_id if spec.parent else None,
        "method": spec.method,
        "pruning_stable": METHODS[spec.method].pruning_stable,
        "learns_sparsity": METHODS[spec.method].learns_sparsity,
        "label": spec.label,
        "seed": spec.seed,
        "goal_sparsity": spec.goal_sparsity if spec.goal_sparsity is not None else math.nan,
        **spec.hp_columns(),
        "model": spec.training["model"],
        "dataset": spec.training["dataset"],
        "status": "ok",
        "test_accuracy": test,
        "val_accuracy": val,
        "reported_model": "final",
        "accuracy_before_prune": math.nan if dense else before,
        "accuracy_after_prune": math.nan if dense else after,
        "val_accuracy_after_prune": math.nan if dense else after,
        "accuracy_after_retrain": test,
        "pruning_stability": math.nan if dense else after / before,
        "sparsity": sparsity,
        "sparsity_overall": sparsity * 0.99,
        "compression_ratio": 1 / (1 - sparsity),
        "theoretical_speedup": 1 / (1 - sparsity * 0.95),
        "node_sparsity": sparsity * 0.3,
        "disk_bytes": 1e6 * (1 - sparsity) * 1.1,
        "disk_reduction": 1 / ((1 - sparsity) * 1.1),
        "collapsed_layers": "",
        "n_collapsed_layers": 0,
        "collapsed_at": "",
        "epochs": spec.training["epochs"],
        "own_epochs": spec.training["epochs"] if dense else 0,
        "training_epochs": spec.training["epochs"],
        "train_seconds": seconds,
        "own_train_seconds": seconds,
        "run_seconds": seconds * 1.1,
        "images_per_second": rng.uniform(1000, 2000),
        "train_flops": 1e12 * (1 - sparsity * 0.5),
        "train_flops_reduction": 1 / (1 - sparsity * 0.5),
        "ram_bytes": rng.uniform(5e8, 9e8),
        "inference_images_per_second": rng.uniform(5000, 10000),
        **dict.fromkeys(SHRUNK_COST_COLUMNS, math.nan),  # measured for structured methods only
        "threads": spec.training["threads"],
        "device": "cpu",
        "schema_version": SCHEMA_VERSION,
        "code_version": "synthetic",
    }
