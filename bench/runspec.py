"""Fully resolved run specifications and their identity.

A run's id is a short sha256 of the canonical JSON of what changes its numbers: method,
hyperparameters, training configuration, goal sparsity, seed, the parent's id, and the
method's revision (raised when a method's code changes what its runs compute, so that runs
of the earlier code are not taken for current ones) and likewise the model's. Keys are
sorted, so the manifest's key order does not matter; keys whose value is None are left
out, so a setting added later with a None default keeps every existing id. The row label
is presentation only and not part of the id.
"""

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property

SCHEMA_VERSION = 1
# Raised when a model's code changes what its runs compute (models are imported with torch,
# which the id must not need). resnet1d, vgg1d 1: 1D layers as matrix products (models/layers1d.py);
# 2: their im2col from the kernel's shifted views.
MODEL_REVISIONS = {"resnet1d": 2, "vgg1d": 2}
TUNED_TRAINING_KEYS = ("lr", "weight_decay", "momentum")


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _without_none(mapping: dict) -> dict:
    return {k: (_without_none(v) if isinstance(v, dict) else v) for k, v in mapping.items() if v is not None}


@dataclass(frozen=True)
class RunSpec:
    """One training run. ``parent`` is the dense run a prune-after-training run starts from."""

    method: str
    seed: int
    training: dict
    hp: dict = field(default_factory=dict)
    goal_sparsity: float | None = None
    parent: "RunSpec | None" = None
    label: str = field(default="", compare=False)
    revision: int = 0

    def identity(self) -> dict:
        return _without_none({
            "schema_version": SCHEMA_VERSION,
            "method": self.method,
            "seed": self.seed,
            "training": self.training,
            "hp": self.hp,
            "goal_sparsity": self.goal_sparsity,
            "parent": self.parent.run_id if self.parent else None,
            "revision": self.revision or None,
            "model_revision": MODEL_REVISIONS.get(self.training.get("model")),
        })

    @cached_property
    def run_id(self) -> str:
        return hashlib.sha256(canonical_json(self.identity()).encode()).hexdigest()[:16]

    def hp_columns(self) -> dict:
        """Record columns ``hp_<name>``: the method's hyperparameters and the tuned training keys."""
        tuned = {key: self.training[key] for key in TUNED_TRAINING_KEYS}
        return {f"hp_{key}": value for key, value in {**tuned, **self.hp}.items()}

    def to_json(self) -> dict:
        """What config.json holds: the identity, the label and the parent in full."""
        return {**self.identity(), "run_id": self.run_id, "label": self.label,
                "parent": self.parent.to_json() if self.parent else None}

    @property
    def stage(self) -> int:
        """0 for runs that need no other run, 1 + the parent's stage otherwise."""
        return 0 if self.parent is None else 1 + self.parent.stage


def with_parents(specs: list[RunSpec]) -> list[RunSpec]:
    """The specs and all their ancestors, each once, parents first."""
    seen: dict[str, RunSpec] = {}

    def visit(spec: RunSpec):
        if spec.parent is not None:
            visit(spec.parent)
        seen.setdefault(spec.run_id, spec)

    for spec in specs:
        visit(spec)
    return list(seen.values())
