"""Nodes pruned through gates on their outputs: GateDecorators' Taylor scores, gates and
Tick-Tock schedule, L0's hard-concrete gates, penalty, average and final masks, against
hand computations, and both through the loop.

The hand network is SNAP-it's (tests/test_structured.py): three linear layers, no
activation, x = (1, 1), the authors' loss L = -z_y. GateDecorators' gates phi1 = (2, 1) on
the first layer's outputs h1 = (1, 3) and phi2 = (1, 1) on the second's: the second layer
reads phi1 ⊙ h1 = (2, 3), so h2 = W2 (2, 3) = (5, 3). For y = 1, dL/d(phi2 ⊙ h2) = -W3[1] =
(-2, 0.5): dL/dphi2 = (-2 * 5, 0.5 * 3) = (-10, 1.5); dL/d(phi1 ⊙ h1) = W2^T (-2, 0.5) =
(-2, -1.5): dL/dphi1 = (-2 * 1, -1.5 * 3) = (-2, -4.5). The Taylor scores |phi * dL/dphi|:
(2 * 2, 1 * 4.5) = (4, 4.5) and (10, 1.5).
"""

import math

import pytest
import torch
from torch import nn

from bench.train import load_state
from methods.core.masks import prunable_modules
from methods.core.nodes import node_layers, node_sparsity
from methods.structured.gate_decorators import fold_gates, gate_holders, tick_tock
from methods.structured.l0 import deterministic_gate, open_probability, sampled_gate
from models import build_model
from schema import ConfigError

from conftest import make_method
from test_structured import A, hand_network, masks, pruned_rows, with_batches


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
    torch.manual_seed(0)
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


# --- L0 regularisation ---------------------------------------------------------------------
# beta = 2/3, gamma = -0.1, zeta = 1.1. Training gate, log alpha = 0: u = 0.5 gives sigmoid(0) =
# 0.5, stretched 0.5 * 1.2 - 0.1 = 0.5; u = 0.75 gives sigmoid(1.5 ln 3) = 3^1.5 / (1 + 3^1.5) =
# 0.838610, stretched 0.906332; u = 0.1 gives sigmoid(1.5 ln(1/9)) = 1/28, stretched below 0: 0.
# Test gate: sigmoid(log alpha) * 1.2 - 0.1, clipped: ln 3 -> 0.8, 0 -> 0.5, -3 -> 0, 3 -> 1.
# P(z != 0) = sigmoid(log alpha - (2/3) ln(1/11)): 11^(2/3) / (1 + 11^(2/3)) at 0, 0.5 at -(2/3) ln 11.

P_AT_0 = 11 ** (2 / 3) / (1 + 11 ** (2 / 3))


def test_the_hard_concrete_gates_by_hand():
    log_alpha = torch.zeros(3, dtype=torch.float64)
    u = torch.tensor([0.5, 0.75, 0.1], dtype=torch.float64)
    assert sampled_gate(log_alpha, u).tolist() == pytest.approx([0.5, 0.906332, 0.0], abs=1e-6)
    assert sampled_gate(torch.tensor([2.0]), torch.tensor([0.9])).item() == 1.0
    gates = deterministic_gate(torch.tensor([math.log(3), 0.0, -3.0, 3.0], dtype=torch.float64))
    assert gates.tolist() == pytest.approx([0.8, 0.5, 0.0, 1.0])
    probabilities = open_probability(torch.tensor([0.0, -2 / 3 * math.log(11)], dtype=torch.float64))
    assert probabilities.tolist() == pytest.approx([P_AT_0, 0.5])


def l0(hp: dict | None = None, **training):
    return make_method("l0", {"l0_reg": 2.0, "ema": 0.0, **(hp or {})}, None, batch_size=4, weight_decay=0.1,
                       **training)


def l0_network(method, log_alpha, rows, bias) -> nn.Sequential:
    """A node layer of the given rows and bias (gates log_alpha), then a linear output layer."""
    net = nn.Sequential(nn.Linear(len(rows[0]), len(rows)), nn.ReLU(), nn.Linear(len(rows), 2)).double()
    method.setup(net, steps_per_epoch=1)  # N = 1 batch of 4 examples
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(rows))
        net[0].bias.copy_(torch.tensor(bias))
        net[0].log_alpha.copy_(torch.tensor(log_alpha))
    return net


def test_the_expected_l0_penalty_by_hand():
    # lambda / N = 2 / 4, lambda_2 = 0.1. Node 0: rows (3, 4), bias 1, P = 0.5: its weights less its
    # bias count 1, its squares 26: 0.5 (0.5 + 0.05 * 26) = 0.9. Node 1: (0, 1), bias 0, P = P_AT_0:
    # P_AT_0 (0.5 + 0.05). d/dlog alpha_0 = P (1 - P) 1.8 = 0.45; d/dw_0 = P 0.1 w = (0.15, 0.2).
    method = l0()
    net = l0_network(method, [-2 / 3 * math.log(11), 0.0], [[3.0, 4.0], [0.0, 1.0]], [1.0, 0.0])
    penalty = method.regularizer(net)
    assert penalty.item() == pytest.approx(0.9 + 0.55 * P_AT_0)
    penalty.backward()
    assert net[0].log_alpha.grad[0].item() == pytest.approx(0.45)
    assert net[0].weight.grad[0].tolist() == pytest.approx([0.15, 0.2]) and net[0].bias.grad[0] == pytest.approx(0.05)
    assert net[2].weight.grad is None  # the output layer has no gates


def test_a_training_pass_draws_one_gate_per_node_for_the_batch_and_evaluation_takes_the_test_gate():
    method = l0()
    net = l0_network(method, [math.log(3), 0.0], [[1.0, 0.0], [0.0, 2.0]], [0.5, -1.0])
    x = torch.tensor([[1.0, 1.0], [2.0, -1.0]], dtype=torch.float64)
    torch.manual_seed(3)
    hidden = net[0](x)
    torch.manual_seed(3)
    u = torch.rand(2, dtype=torch.float64) * (1 - 2e-6) + 1e-6
    assert torch.allclose(hidden, (x @ net[0].weight.T + net[0].bias) * sampled_gate(net[0].log_alpha, u))
    net.eval()
    assert torch.allclose(net[0](x), (x @ net[0].weight.T + net[0].bias) * torch.tensor([0.8, 0.5]).double())


def test_log_alpha_is_clipped_after_every_step_and_the_evaluation_takes_the_corrected_average():
    # ema 0.5: one step after p_0 to p_1, the average is (0.5 p_0 + 0.5 p_1) / (1 - 0.5) = p_0 + p_1
    method = l0({"ema": 0.5})
    net = l0_network(method, [0.0, 0.0], [[1.0, 0.0], [0.0, 2.0]], [0.0, 0.0])
    start = {name: average.clone() for name, average in method.averages.items()}  # the parameters at setup
    with torch.no_grad():
        net[0].log_alpha.copy_(torch.tensor([9.0, -9.0]))
        net[2].weight.add_(1.0)
    method.after_step(net, torch.optim.SGD(net.parameters(), lr=0.1))
    assert net[0].log_alpha.tolist() == pytest.approx([math.log(100), math.log(0.01)])
    expected = {name: start[name] + p for name, p in net.named_parameters()}
    assert all(torch.allclose(method.averaged()[name], value) for name, value in expected.items())
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    net.eval()
    with torch.no_grad():
        through_average = method.forward(net, x)
        for name, p in net.named_parameters():
            p.copy_(expected[name])
        assert torch.allclose(through_average, net(x))


def test_log_alpha_is_trained_without_decay_and_only_the_output_layer_decays():
    method = l0()
    net = l0_network(method, [0.0, 0.0], [[1.0, 0.0], [0.0, 2.0]], [0.0, 0.0])
    groups = method.optimizer_groups(net)
    assert [(len(g["params"]), g.get("weight_decay")) for g in groups] == [(2, 0.0), (2, None), (1, 0.0)]
    assert groups[2]["params"][0] is net[0].log_alpha


def test_the_final_masks_compute_the_gated_network():
    # test gates 0.8, 1 and 0: node 2 goes with the output layer's column reading it
    method = with_batches(l0(), (torch.ones(1, 3, dtype=torch.float64),))
    net = l0_network(method, [math.log(3), 3.0, -3.0], [[1.0, -1.0, 0.5], [0.5, 2.0, 1.0], [2.0, 1.0, 1.0]],
                     [0.5, -0.5, 1.0])
    net.eval()
    x = torch.tensor([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]], dtype=torch.float64)
    gated = net(x)
    method.prune(net, None)
    assert torch.allclose(net(x), gated) and not hasattr(net[0], "log_alpha")
    assert [pruned_rows(m) for m in node_layers(net)] == [[2]] and not masks(net)[1][0][2]
    assert net[0].weight[0].tolist() == pytest.approx([0.8, -0.8, 0.4]) and net[0].bias[0].item() == pytest.approx(0.4)
    assert method.regularizer(net) is None and method.forward(net, x).equal(net(x))


def test_l0_trains_then_turns_its_gates_into_masks_through_the_loop(train_tiny):
    runs = [train_tiny("l0", {"l0_reg": reg, "ema": 0.0}, goal=None, epochs=2) for reg in (1e-6, 100.0)]
    nets = [build_model("resnet1d", 10, 1) for _ in runs]
    for net, run in zip(nets, runs):
        load_state(net, run.state_dict)
        assert run.record["status"] == "ok" and [row["phase"] for row in run.history] == ["train", "train"]
        assert not any("log_alpha" in key for key in run.state_dict)
    assert node_sparsity(nets[0]) == 0 < node_sparsity(nets[1])
    assert make_method("l0", {"l0_reg": 1.0}, None).sparsity_control == ("l0_reg", "log")
