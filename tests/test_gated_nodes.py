"""Nodes pruned through gates on their outputs: GateDecorators' Taylor scores, gates and
Tick-Tock schedule, against hand computations, and its runs through the loop.

The hand network is SNAP-it's (tests/test_structured.py): three linear layers, no
activation, x = (1, 1), the authors' loss L = -z_y. GateDecorators' gates phi1 = (2, 1) on
the first layer's outputs h1 = (1, 3) and phi2 = (1, 1) on the second's: the second layer
reads phi1 ⊙ h1 = (2, 3), so h2 = W2 (2, 3) = (5, 3). For y = 1, dL/d(phi2 ⊙ h2) = -W3[1] =
(-2, 0.5): dL/dphi2 = (-2 * 5, 0.5 * 3) = (-10, 1.5); dL/d(phi1 ⊙ h1) = W2^T (-2, 0.5) =
(-2, -1.5): dL/dphi1 = (-2 * 1, -1.5 * 3) = (-2, -4.5). The Taylor scores |phi * dL/dphi|:
(2 * 2, 1 * 4.5) = (4, 4.5) and (10, 1.5).
"""

import pytest
import torch
from torch import nn

from bench.train import load_state
from methods.core.masks import prunable_modules
from methods.core.nodes import node_layers, node_sparsity
from methods.structured.gate_decorators import fold_gates, gate_holders, tick_tock
from models import build_model
from schema import ConfigError

from conftest import make_method
from test_structured import A, X, hand_network, pruned_rows, with_batches


def gate_decorators(hp: dict | None = None, goal: float = 0.5, **training):
    return make_method("gate-decorators", {"tick_tock_epochs": 70, **(hp or {})}, goal, **training)


def gated_hand_network(method):
    net = hand_network()
    method.setup(net, steps_per_epoch=1)
    with torch.no_grad():
        net[0].gate.copy_(torch.tensor([2.0, 1.0]))
        net[1].gate.copy_(torch.tensor([1.0, 1.0]))
    return net


def test_the_taylor_score_is_the_gate_times_its_gradient_by_hand():
    method = gate_decorators()
    net = gated_hand_network(method)
    assert [s.tolist() for s in method.scores(net, [A])] == [[4.0, 4.5], [10.0, 1.5]]


def test_a_step_prunes_the_lowest_taylor_scores_over_all_layers():
    # half of the 4 nodes: layer 2's node 1 (1.5) and layer 1's node 0 (4)
    method = with_batches(gate_decorators({"score_batches": 1}), A)
    net = gated_hand_network(method)
    event = method.prune(net, 0.5)
    assert [pruned_rows(m) for m in node_layers(net)] == [[0], [1]] and event.sparsity > 0
    assert node_sparsity(net) == 0.5


def test_the_scores_are_taken_in_training_mode_on_the_batches_statistics():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 2))
    method = gate_decorators()
    method.setup(net, steps_per_epoch=1)
    net.eval()
    inputs = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
    method.scores(net, [(inputs, torch.tensor([0, 1]))])
    assert not net.training and net[1].running_mean.tolist() == pytest.approx(
        (0.1 * net[0](inputs).mean(dim=0)).tolist())


def test_the_gates_scale_the_outputs_of_the_batchnorm_after_each_node_layer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(1, 3, 2), nn.BatchNorm1d(3), nn.ReLU(), nn.Flatten(), nn.Linear(6, 2))
    x = torch.randn(4, 1, 3)
    plain = net[1](net[0](x))
    gate_decorators({"gate_init": "ones"}).setup(net, steps_per_epoch=1)
    assert gate_holders(net) == [net[1]]
    assert torch.allclose(net[1](net[0](x)), plain)  # gates of ones leave the network as it is
    with torch.no_grad():
        net[1].gate.copy_(torch.tensor([2.0, 0.0, -1.0]))
    assert torch.allclose(net[1](net[0](x)), plain * torch.tensor([2.0, 0.0, -1.0]).view(3, 1))


def test_the_gates_start_as_standard_normal_draws_by_default():
    net = build_model("resnet1d", 10, 1)
    gate_decorators().setup(net, steps_per_epoch=1)
    gates = torch.cat([holder.gate for holder in gate_holders(net)])
    assert len(gates) == sum(m.weight.shape[0] for m in node_layers(net)) == 480
    assert abs(gates.mean()) < 0.15 and 0.85 < gates.std() < 1.15
    assert all(isinstance(holder, nn.BatchNorm1d) for holder in gate_holders(net))


@pytest.mark.parametrize("training", [True, False])
def test_folding_the_gates_into_batchnorm_leaves_the_network_computing_the_same(training):
    torch.manual_seed(1)
    net = build_model("resnet1d", 10, 1).train(training)
    gate_decorators().setup(net, steps_per_epoch=1)
    x = torch.randn(8, 1, 40)
    gated = net(x)
    fold_gates(gate_holders(net))
    assert not any(name.endswith("gate") for name, _ in net.named_parameters())
    assert torch.allclose(net(x), gated, atol=1e-5)


def test_ticks_train_the_gates_only_and_tocks_everything_with_an_optional_gate_penalty():
    method = gate_decorators({"tock_l1": 0.1})
    net = gated_hand_network(method)
    tick, tock = method.phases()[0], method.phases()[10]
    method.enter(tick)
    assert [p for group in method.optimizer_groups(net) for p in group["params"]] == [net[0].gate, net[1].gate]
    assert method.regularizer(net) is None
    method.enter(tock)
    assert len([p for group in method.optimizer_groups(net) for p in group["params"]]) == 7  # 3 weights, 2 biases
    assert method.regularizer(net).item() == pytest.approx(0.1 * (2 + 1 + 1 + 1))
    unpenalised = gate_decorators()
    unpenalised.enter(tock)
    assert unpenalised.regularizer(net) is None  # the authors' term adds no gradient


def test_the_steps_rise_from_1_percent_by_5_points_to_the_goal():
    assert gate_decorators(goal=0.29).sparsities() == [0.01, 0.06, 0.11, 0.16, 0.21, 0.26, 0.29]
    assert len(gate_decorators(goal=0.93).sparsities()) == 20


def test_their_70_epochs_at_93_percent_are_30_of_tick_tock_and_40_of_fine_tuning():
    phases = gate_decorators(goal=0.93).phases()
    assert [(p.name, p.epochs) for p in phases] == [("tick", 1)] * 10 + [("tock", 10)] + [("tick", 1)] * 10 + [
        ("finetune", 40)]
    assert [p.sparsity for p in phases if p.prunes] == gate_decorators(goal=0.93).sparsities()
    assert not any(p.keeps_optimizer for p in phases)


def test_a_goal_reached_after_the_tocks_is_followed_by_one_tick_then_fine_tuning():
    # 11 steps (1% ... 46%, then 50%): 10 in the first round of ticks, the 11th after the tocks
    plan = tick_tock(11, 10, 10)
    assert [i for i, (_, prunes) in enumerate(plan) if prunes] == list(range(10)) + [20]
    assert [kind for kind, _ in plan] == ["tick"] * 10 + ["tock"] * 10 + ["tick"]
    assert [(p.name, p.epochs) for p in gate_decorators(goal=0.5).phases()][-3:] == [
        ("tock", 10), ("tick", 1), ("finetune", 49)]


def test_it_refuses_a_schedule_longer_than_its_epochs():
    with pytest.raises(ConfigError) as error:
        gate_decorators({"tick_tock_epochs": 20}).phases()
    assert error.value.key == "tick_tock_epochs"


def test_gate_decorators_runs_through_the_loop_to_the_goal_without_gates_at_the_end(train_tiny):
    hp = {"tick_tock_epochs": 6, "step": 30, "tick_epochs": 2, "tock_epochs": 1, "score_batches": 1}
    result = train_tiny("gate-decorators", hp, goal=0.5, epochs=2)
    net = build_model("resnet1d", 10, 1)
    load_state(net, result.state_dict)
    assert result.record["status"] == "ok" and node_sparsity(net) == pytest.approx(0.5, abs=0.01)
    assert [row["phase"] for row in result.history] == ["tick", "tick", "tock", "tick", "finetune", "finetune"]
    assert not pruned_rows(prunable_modules(net)[-1])
