"""Every registered method runs through the one loop with its defaults: a method added
later is covered here without editing a test."""

import pytest

from bench.train import load_state
from methods import METHODS
from methods.core.masks import prunable_modules
from methods.core.nodes import node_sparsity
from models import build_model
from schema import REQUIRED

from conftest import make_method

GOAL = 0.9
# Methods whose default schedule needs more than the 2 epochs: settings that fit it in 3.
FITTED = {"imp-global": {"steps": 0, "prune_delay": 0, "prune_interval": 1, "rewind_epoch": 0},
          "gate-decorators": {"tick_tock_epochs": 3, "step": 89, "tick_epochs": 2, "score_batches": 1}}


def smallest_allowed(param) -> int | float | str:
    """A value for a required hyperparameter: its first choice, or the smallest its bounds
    allow (1 for counts)."""
    if param.choices is not None:
        return param.known()[0]
    if param.at_least is not None:
        return param.at_least
    return (param.above or 0) + 1


def required(cls) -> dict:
    return {name: smallest_allowed(p) for name, p in cls.params.items() if p.default is REQUIRED}


def node_sparsity_of(state: dict) -> float:
    """The node sparsity of a resnet1d state dict (``methods.core.nodes``)."""
    model = build_model("resnet1d", 10, 1)
    load_state(model, state)
    return node_sparsity(model)


def zero_weights(state: dict) -> tuple[int, int]:
    """(pruned, prunable) weights of a resnet1d state dict: exact zeros among conv and linear weights."""
    model = build_model("resnet1d", 10, 1)
    names = [name for name, module in model.named_modules() if module in prunable_modules(model)]
    weights = [state[f"{name}.weight"] for name in names]
    return sum(int((w == 0).sum()) for w in weights), sum(w.numel() for w in weights)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_runs_with_its_defaults_and_stores_the_sparsity_it_claims(train_tiny, name):
    cls = METHODS[name]
    result = train_tiny(name, {**required(cls), **FITTED.get(name, {})}, goal=GOAL, epochs=3 if name in FITTED else 2)
    record, (zeros, n) = result.record, zero_weights(result.state_dict)
    assert record["status"] == "ok"
    assert record["sparsity"] == pytest.approx(zeros / n, abs=1e-12)
    if cls.takes_goal and make_method(name, required(cls), GOAL).structured:
        assert node_sparsity_of(result.state_dict) == pytest.approx(GOAL, abs=0.01)  # its goal counts nodes
    elif cls.takes_goal:
        assert abs(zeros - round(GOAL * n)) <= 1
    for key, mask in result.state_dict.items():
        if key.endswith(".weight_mask"):
            assert not result.state_dict[key.removesuffix("_mask")][~mask].any(), key
