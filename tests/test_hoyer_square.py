"""HoyerSquare and Group-HS (the SNIP-it paper's baselines): the regularisers' values and
gradients by hand, the thresholds, their phases, the sparsity search, and runs through the loop.

The hand network: Linear(2, 1) with weights (3, -4) and a bias, then Linear(1, 2) with
weights (1, 2). With S = sum |w| and Q = sum w^2, H_S = S^2 / Q and dH_S/dw_i =
2 S sign(w_i) / Q - 2 S^2 w_i / Q^2:
    (3, -4): S = 7, Q = 25, H_S = 1.96, gradient (14/25 - 294/625, -14/25 + 392/625) = (0.0896, 0.0672);
    (1, 2):  S = 3, Q = 5,  H_S = 1.8,  gradient (6/5 - 18/25, 6/5 - 36/25) = (0.48, -0.24).
"""

import math
import random

import pytest
import torch
from torch import nn

from bench.manifest import load
from bench.search import expand
from bench.store import RunStore
from bench.synthetic import synthetic_record
from bench.train import load_state
from methods.core.masks import mask_of
from methods.core.nodes import node_sparsity
from models import build_model
from schema import ConfigError

from conftest import make_method


def hand_network() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(2, 1), nn.Linear(1, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[3.0, -4.0]]))
        model[1].weight.copy_(torch.tensor([[1.0], [2.0]]))
    return model


def entered(hp: dict, phase: int = 0, name: str = "hoyer-square", **training):
    method = make_method(name, hp, None, **training)
    method.setup(nn.Linear(1, 1), steps_per_epoch=10)
    method.enter(method.phases()[phase])
    return method


def test_the_regulariser_is_lambda_times_the_layers_hoyer_squares_by_hand():
    model, method = hand_network(), entered({"hoyer_reg": 0.5})
    penalty = method.regularizer(model)
    assert penalty.item() == pytest.approx(0.5 * (1.96 + 1.8), rel=1e-6)
    penalty.backward()
    assert model[0].weight.grad.flatten().tolist() == pytest.approx([0.5 * 0.0896, 0.5 * 0.0672], rel=1e-5)
    assert model[1].weight.grad.flatten().tolist() == pytest.approx([0.5 * 0.48, 0.5 * -0.24], rel=1e-5)
    assert model[0].bias.grad is None  # biases are not regularised


def test_the_regulariser_falls_silent_after_the_threshold():
    assert entered({"hoyer_reg": 0.5}, phase=1).regularizer(hand_network()) is None


def test_the_threshold_prunes_exactly_the_weights_at_or_below_it():
    t = torch.tensor(1e-3)  # 1e-3 in float32, as the weights hold it
    above = torch.nextafter(t, torch.tensor(1.0))
    model = nn.Sequential(nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.stack([torch.tensor(0.5), -t, above, torch.tensor(-9e-4),
                                           torch.tensor(0.0), -above]).view(2, 3))
    event = entered({"hoyer_reg": 0.5}, phase=1).prune(model, None)
    assert mask_of(model[0]).flatten().tolist() == [True, False, True, False, False, True]
    assert model[0].weight.flatten().tolist() == [0.5, 0.0, above.item(), 0.0, 0.0, -above.item()]
    assert event.sparsity == pytest.approx(0.5)


def test_the_authors_80_epochs_are_71_regularised_then_9_with_the_masks_on_the_same_schedule():
    method = entered({"hoyer_reg": 0.5}, epochs=80, lr=0.1, lr_schedule={"kind": "stepped", "milestones": [75]})
    regular, finetune = method.phases()
    assert (regular.epochs, finetune.epochs) == (71, 9)
    assert finetune.prunes and finetune.keeps_optimizer and not regular.prunes
    schedule = finetune.schedule(None)
    assert schedule(3.9) == pytest.approx(0.1) and schedule(4.0) == pytest.approx(0.01)  # epoch 75 of the training


@pytest.mark.parametrize("hp, epochs, key", [({}, 2, "hoyer_reg"),
                                             ({"hoyer_reg": 1.0, "finetune_fraction": 0.9}, 1, "finetune_fraction"),
                                             ({"hoyer_reg": 0.0}, 2, "hoyer_reg")])
def test_it_refuses_what_it_cannot_do(hp, epochs, key):
    with pytest.raises(ConfigError) as error:
        make_method("hoyer-square", hp, None, epochs=epochs).phases()
    assert error.value.key == key


def test_its_lambda_is_searched_on_a_log_scale(write_manifest, tmp_path):
    """Fake runs whose logit sparsity is log10(lambda) + 3: lambda 1e-4 and 1e-2 give 26.9% and
    73.1%; the goals 50% and 90% are reached at log10 lambda = -3 and ln 9 - 3 = -0.803."""
    def edit(data):
        data["rows"] = [{"label": "HS", "method": "hoyer-square", "search": {"rounds": 1},
                         "grid": {"hoyer_reg": [1e-4, 1e-2]}}]
    manifest, store = load(str(write_manifest(edit)), "base"), RunStore(tmp_path / "results")
    first = expand(manifest, store)
    for spec in first:
        sparsity = 1 / (1 + math.exp(-(math.log10(spec.hp["hoyer_reg"]) + 3)))
        store.write_run(spec, synthetic_record(spec, random.Random(0)) | {"sparsity": sparsity}, [{"epoch": 1}], {}, "fake")
    assert sorted(spec.hp["hoyer_reg"] for spec in expand(manifest, store)) == [1e-4, 0.001, 1e-2, 0.157]


def test_a_stronger_regulariser_prunes_more_through_the_loop(train_tiny):
    weak, strong = (train_tiny("hoyer-square", {"hoyer_reg": reg, "finetune_fraction": 0.5}, goal=None, epochs=2)
                    for reg in (1e-6, 1e-2))
    assert weak.record["status"] == strong.record["status"] == "ok"
    assert weak.record["sparsity"] < strong.record["sparsity"]
    assert [row["phase"] for row in strong.history] == ["train", "finetune"]


# --- Group-HS --------------------------------------------------------------------------------
# W = [[0, 3], [0, 4]]: row norms 3 and 4 (R = 7), column norms 0 and 5 (C = 5), Q = ||W||^2 = 25,
# G = (R^2 + C^2) / Q = 74 / 25. dG/dw = 2 (R w / ||row|| + C w / ||column||) / Q - 2 (R^2 + C^2) w / Q^2:
#     w_01 = 3: 2 (7 + 3) / 25 - 444 / 625 = 0.0896;  w_11 = 4: 2 (7 + 4) / 25 - 592 / 625 = -0.0672;
#     the zero column's entries: 0 (the norm's gradient at zero is taken as 0).


def group_entered(hp: dict, phase: int = 0, **training):
    return entered(hp, phase, "group-hs", **training)


def test_the_group_regulariser_adds_the_row_and_column_measures_by_hand():
    model = nn.Sequential(nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.0, 3.0], [0.0, 4.0]]))
    penalty = group_entered({"hoyer_reg": 0.5}).regularizer(model)
    assert penalty.item() == pytest.approx(0.5 * 74 / 25, rel=1e-6)
    penalty.backward()
    assert model[0].weight.grad.flatten().tolist() == pytest.approx([0.0, 0.5 * 0.0896, 0.0, 0.5 * -0.0672], rel=1e-5)


def test_a_convolutions_columns_are_its_input_channels_over_all_kernel_positions():
    # filter 0 reads channel 0 with (3, 4) and channel 1 with (0, 12), filter 1 is zero:
    # rows 13 and 0, columns 5 and 12, ||W||^2 = 169: G = (13^2 + 17^2) / 169
    conv = nn.Conv1d(2, 2, 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0] = torch.tensor([[3.0, 4.0], [0.0, 12.0]])
    assert group_entered({"hoyer_reg": 1.0}).measure(conv.weight).item() == pytest.approx(458 / 169, rel=1e-6)


def threshold_network(rows) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(rows))
    return net


def pruned(net) -> list[list[bool]]:
    return [mask_of(m).tolist() for m in (net[0], net[3])]


def test_the_node_threshold_removes_the_nodes_whose_every_weight_is_at_most_t_and_their_readers():
    # node 0's weights are all within 1e-3, node 1 has one above it: only node 0 goes, with
    # the output layer's column reading it; node 1's small weights stay (no weight is pruned alone)
    net = threshold_network([[1e-3, -5e-4, 0.0], [2e-3, 1e-4, -1e-4], [0.5, -0.3, 0.2]])
    method = group_entered({"hoyer_reg": 0.5}, phase=1)
    method.use_training_data(lambda: iter([(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))]))
    event = method.prune(net, None)
    assert pruned(net) == [[[False] * 3, [True] * 3, [True] * 3], [[False, True, True]] * 2]
    assert net[0].weight[1].tolist() == pytest.approx([2e-3, 1e-4, -1e-4])
    assert event.sparsity == pytest.approx(5 / 15)


def test_a_layer_all_below_the_threshold_keeps_its_node_of_largest_weight():
    net = threshold_network([[1e-3, 0.0, 0.0], [-9e-4, 0.0, 0.0], [5e-4, 1e-4, 0.0]])
    method = group_entered({"hoyer_reg": 0.5}, phase=1)
    method.use_training_data(lambda: iter([(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))]))
    method.prune(net, None)
    assert mask_of(net[0]).any(dim=1).tolist() == [True, False, False]


def test_group_hs_trains_as_hoyer_square_but_fine_tunes_with_a_fresh_optimizer():
    regular, finetune = group_entered({"hoyer_reg": 0.5}, epochs=80).phases()
    assert (regular.epochs, finetune.epochs, finetune.prunes, finetune.keeps_optimizer) == (71, 9, True, False)
    assert make_method("group-hs", {"hoyer_reg": 0.5}, None).structured
    assert make_method("group-hs", {"hoyer_reg": 0.5}, None).sparsity_control == ("hoyer_reg", "log")
    assert group_entered({"hoyer_reg": 0.5}, phase=1).regularizer(threshold_network([[1.0] * 3] * 3)) is None


def test_a_stronger_group_regulariser_removes_more_nodes_through_the_loop(train_tiny):
    # at t = 0.05 after one regularised epoch (1e-3 would need a longer training)
    runs = [train_tiny("group-hs", {"hoyer_reg": reg, "threshold": 0.05, "finetune_fraction": 0.5}, goal=None,
                       epochs=2) for reg in (1e-6, 1.0)]
    nets = [build_model("resnet1d", 10, 1) for _ in runs]
    for net, run in zip(nets, runs):
        load_state(net, run.state_dict)
        assert run.record["status"] == "ok" and [row["phase"] for row in run.history] == ["train", "finetune"]
    assert node_sparsity(nets[0]) == 0 < node_sparsity(nets[1]) < 1
    assert runs[0].record["sparsity"] == 0 < runs[1].record["sparsity"]
