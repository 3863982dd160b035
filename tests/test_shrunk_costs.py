"""A structured run's final model against its physically shrunk copy (bench.shrunk_costs): the
training footprint by hand, the columns of an unpruned and of a node-pruned Conv6, the
reductions composed from a history, and a run through the loop.

The hand network: Linear(4, 3), ReLU, Linear(3, 2) on a batch of 5, float32, Adam.
Parameters 4 * 3 + 3 + 3 * 2 + 2 = 23 floats, 92 bytes; with their gradients and Adam's two
moments 4 * 92 = 368. Saved for the backward pass: the input batch, 5 x 4 = 80 bytes (the first
product's weight gradient reads it; its weight is not saved, as the input needs no gradient);
the ReLU's output, 5 x 3 = 60 bytes, which the second product saves too (the same storage,
counted once), beside its weight (a parameter, counted already); the log-softmax's output,
5 x 2 = 40 bytes, which the NLL loss saves too, with the targets, 5 int64 = 40 bytes, and its
total weight, a float32 scalar, 4 bytes. 368 + 80 + 60 + 40 + 40 + 4 = 592.
"""

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

import bench.shrunk_costs
from bench.metrics import flops
from bench.shrunk_costs import (epochs_at_final_structure, optimizer_states, shrunk_costs, train_footprint,
                                train_memory_reduction, train_time_reduction)
from bench.train import SHRUNK_COST_COLUMNS, build_run, cached_dataset, one_example, structured_costs, train_run
from methods.core.nodes import keep_nodes, node_layers

from conftest import tiny_spec

TIMINGS = ("shrunk_train_step_speedup", "shrunk_inference_speedup", "train_time_reduction")


def test_the_footprint_of_a_small_network_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    inputs, targets = torch.randn(5, 4), torch.tensor([0, 1, 1, 0, 1])
    assert train_footprint(net, inputs, targets, states=2) == 592
    assert train_footprint(net, inputs, targets, states=0) == 592 - 2 * 92


@pytest.mark.parametrize("training, states", [({"optimizer": "adam", "momentum": 0.9}, 2),
                                              ({"optimizer": "sgd", "momentum": 0.9}, 1),
                                              ({"optimizer": "sgd", "momentum": 0.0}, 0)])
def test_the_optimizer_keeps_its_states_per_parameter(training, states):
    assert optimizer_states(training) == states


@pytest.fixture
def one_thread():
    """One CPU thread, as a run has by default (``threads``): on a shared machine two threads'
    barriers wait on other processes, and a step's seconds swing tenfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def conv6_run(data_root, method: str = "snap-it", hp: dict | None = None):
    """A Conv6 run on the digits (8 x 8) before its first step, batches of 64, Adam."""
    spec = tiny_spec(method, hp, goal=0.5 if method == "snap-it" else None, model="snipit-conv6", dataset="digits",
                     batch_size=64, optimizer="adam", lr=1e-3)
    data = cached_dataset("digits", str(data_root), spec.training["val_fraction"], spec.training["split_seed"])
    return build_run(spec, data, torch.device("cpu"))


def trained_at_final_structure(run, epochs: int = 2) -> None:
    """A history of ``epochs`` epochs, each at the model's structure as it is now."""
    per_sample = flops(run.model, one_example(run), structured=True)[1]
    run.progress.epochs_done = epochs
    run.progress.history = [{"epoch": epoch + 1, "train_flops_per_sample": per_sample} for epoch in range(epochs)]


def test_an_unpruned_model_costs_as_its_shrunk_copy(data_root, one_thread):
    run = conv6_run(data_root, hp={"score_batches": 1})
    trained_at_final_structure(run)
    costs = shrunk_costs(run, log=pytest.fail)
    assert costs["train_memory_bytes"] == costs["shrunk_train_memory_bytes"] > 0
    assert costs["epochs_at_final_structure"] == 2 and costs["train_memory_reduction"] == 1.0
    for column in TIMINGS:
        assert 0.6 < costs[column] < 1.6, column
    assert costs["train_time_reduction"] == pytest.approx(costs["shrunk_train_step_speedup"])


def test_a_node_pruned_model_trains_in_less_memory_shrunk(data_root, one_thread):
    run = conv6_run(data_root, hp={"score_batches": 1})
    torch.manual_seed(0)
    keep_nodes(run.model, [torch.rand(m.weight.shape[0]) < 0.5 for m in node_layers(run.model)], one_example(run),
               [torch.rand(m.weight.shape[0]) for m in node_layers(run.model)])
    trained_at_final_structure(run, epochs=3)
    before = {key: value.clone() for key, value in run.model.state_dict().items()}
    rng = torch.get_rng_state()
    costs = shrunk_costs(run, log=pytest.fail)
    assert 0 < costs["shrunk_train_memory_bytes"] < costs["train_memory_bytes"]
    # all three epochs at the final structure: the median footprint is the shrunk one
    assert costs["train_memory_reduction"] == costs["train_memory_bytes"] / costs["shrunk_train_memory_bytes"]
    assert all(math.isfinite(costs[column]) and costs[column] > 0 for column in TIMINGS)
    # the run's model and random stream are left as they were
    assert all(torch.equal(value, before[key]) for key, value in run.model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng) and run.model.training


def refuse(model, example):
    raise ValueError("no copy")


@pytest.mark.parametrize("failure", ["empty layer", "shrink raises"])
def test_where_the_model_does_not_shrink_the_shrunk_columns_are_nan_with_a_log_line(data_root, monkeypatch, failure):
    run = conv6_run(data_root, hp={"score_batches": 1})
    layers = node_layers(run.model)
    keeps = [torch.ones(m.weight.shape[0], dtype=torch.bool) for m in layers]
    if failure == "empty layer":
        keeps[1][:] = False  # and every node after reads nothing but constants: cut (methods.core.nodes)
        expected = ("node layers features.3, features.7, features.10, features.14, features.17, head.1, head.5 "
                    "have no remaining node")
    else:
        keeps[0][0] = False
        monkeypatch.setattr(bench.shrunk_costs, "shrink", refuse)
        expected = "no copy"
    keep_nodes(run.model, keeps, one_example(run))
    trained_at_final_structure(run)
    lines = []
    costs = shrunk_costs(run, log=lines.append)
    assert lines == [f"shrunk costs not measured: {expected}"]
    assert costs["train_memory_bytes"] > 0 and costs["epochs_at_final_structure"] == 2
    assert all(math.isnan(costs[c]) for c in SHRUNK_COST_COLUMNS if c not in ("train_memory_bytes",
                                                                                 "epochs_at_final_structure"))


def test_a_structured_run_that_pruned_no_node_costs_what_the_unpruned_network_does(data_root, monkeypatch):
    run = conv6_run(data_root, hp={"score_batches": 1})
    trained_at_final_structure(run)
    monkeypatch.setattr(bench.shrunk_costs, "shrink", refuse)  # nothing to shrink, nothing timed
    costs = shrunk_costs(run, log=pytest.fail)
    assert costs["shrunk_train_memory_bytes"] == costs["train_memory_bytes"] > 0
    assert all(costs[column] == 1.0 for column in ("shrunk_train_step_speedup", "shrunk_inference_speedup",
                                                   "train_time_reduction", "train_memory_reduction"))


def test_a_method_that_prunes_no_nodes_has_nan_costs(data_root):
    costs = structured_costs(conv6_run(data_root, "dense"), log=pytest.fail)
    assert list(costs) == list(SHRUNK_COST_COLUMNS) and all(math.isnan(value) for value in costs.values())


def test_the_epochs_at_the_final_structure_and_the_reductions_they_compose():
    # the final model: 40 FLOPs per sample; an epoch at 40 * (1 + 1e-6) trained another structure
    history = [{"train_flops_per_sample": 100.0}, {"train_flops_per_sample": 40.00004},
               {"train_flops_per_sample": 40.0}, {"train_flops_per_sample": 40.0 * (1 + 1e-12)}, {"ratio": 1.0}]
    assert epochs_at_final_structure(history, 40.0) == 2
    # E = 4, k = 2, s = 4: 4 / (2 + 2 / 4) = 1.6
    assert train_time_reduction(4, 2, 4.0) == pytest.approx(1.6)
    assert train_time_reduction(4, 0, 4.0) == 1.0 and math.isnan(train_time_reduction(0, 0, 4.0))
    # 1000 bytes full, 400 shrunk: median(400, 400, 1000, 1000) = 700; of (400, 400, 400, 1000) 400
    assert train_memory_reduction(1000, 400, 4, 2) == pytest.approx(1000 / 700)
    assert train_memory_reduction(1000, 400, 4, 3) == 2.5 and math.isnan(train_memory_reduction(1000, 400, 0, 0))


def test_a_structured_run_records_its_shrunk_costs(data_root):
    spec = tiny_spec("snap-it", {"score_batches": 1}, goal=0.5, model="snipit-mlp5-8x8", dataset="digits",
                     batch_size=64, optimizer="adam", lr=1e-3)
    result = train_run(spec, data_root, log=lambda line: None)
    record = result.record
    assert all(math.isfinite(record[column]) for column in SHRUNK_COST_COLUMNS)
    # pruned before training: both epochs trained the final structure
    assert [row["train_flops_per_sample"] for row in result.history] == [pytest.approx(record["train_flops"] / (
        2 * cached_dataset("digits", str(data_root), 0.1, 0).train_size))] * 2
    assert record["epochs_at_final_structure"] == 2
    assert record["train_time_reduction"] == pytest.approx(record["shrunk_train_step_speedup"])
    assert record["train_memory_reduction"] == record["train_memory_bytes"] / record["shrunk_train_memory_bytes"] > 1


def test_starting_a_worker_does_not_import_torch_pruning():
    code = "import sys, bench.train; assert 'torch_pruning' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
