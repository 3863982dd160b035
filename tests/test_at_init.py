"""Pruning at initialisation (SNIP, SNIP-it, GraSP, random) against hand computations on a
two-layer linear network, SNIP-it's schedule by hand, and runs through the one loop.

The hand network: h = W1 x, z = W2 h, no biases, with
    W1 = [[1, 0], [1, -1]],  W2 = [[1, 1], [1, 3]],
and the examples A = (x = (1, 1), y = 0) and B = (x = (0, 1), y = 1). On A: h = (1, 0),
z = (1, 1). With two classes the cross-entropy on A is softplus(d), d = z_1 - z_0 = v . h,
v = W2[1] - W2[0] = (0, 2); d = 0, so sigma(d) = 1/2. Its gradient:
    dd/dW1[j, i] = v_j x_i           -> [[0, 0], [2, 2]]
    dd/dW2[1, j] = h_j, dd/dW2[0, j] = -h_j -> [[-1, 0], [1, 0]]      |grad d|^2 = 10
and the only second derivatives of d couple W2[k, j] with W1[j, i]: +x_i for k = 1, -x_i
for k = 0, so (grad^2 d) u for u = grad d is
    on W1[j, i]: x_i (u_W2[1, j] - u_W2[0, j]) = 2 x_i h_j -> [[2, 2], [0, 0]]
    on W2[1, j]: sum_i x_i u_W1[j, i] = v_j |x|^2 = (0, 4), on W2[0, j]: (0, -4).
"""

import copy

import pytest
import torch
from torch import nn

from bench.train import build_run, cached_dataset, enter_phase
from methods.at_init.sensitivity import connection_sensitivity, gradient_flow, keep_top
from methods.at_init.snip import snip_it_sparsities
from methods.core.masks import apportion, mask_of, prunable_modules
from schema import ConfigError

from conftest import assert_state_pruned_to, make_method, tiny_spec

A = (torch.tensor([[1.0, 1.0]], dtype=torch.float64), torch.tensor([0]))
B = (torch.tensor([[0.0, 1.0]], dtype=torch.float64), torch.tensor([1]))


def quiet(line):
    pass


def hand_network() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [1.0, -1.0]]))
        net[1].weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 3.0]]))
    return net


def assert_per_layer(scores, expected) -> None:
    for score, values in zip(scores, expected, strict=True):
        assert torch.allclose(score, torch.tensor(values, dtype=torch.float64), rtol=0, atol=1e-12)


def masks(model) -> list[torch.Tensor]:
    return [mask_of(m).clone() for m in prunable_modules(model)]


def with_batches(method, *batches):
    """The method given ``batches`` as the training data, each call a new pass."""
    method.use_training_data(lambda: iter(batches))
    return method


# --- the statistics by hand --------------------------------------------------------------

def test_snip_is_g_times_w_of_the_cross_entropy_by_hand():
    # grad L = sigma(d) grad d = grad d / 2: W1 [[0, 0], [1, 1]], W2 [[-0.5, 0], [0.5, 0]];
    # |g * w|: W1 [[0, 0], [1 * 1, 1 * |-1|]], W2 [[0.5 * 1, 0], [0.5 * 1, 0]]
    scores = connection_sensitivity(hand_network(), [A], "cross-entropy")
    assert_per_layer(scores, [[[0, 0], [1, 1]], [[0.5, 0], [0.5, 0]]])


def test_snip_of_the_authors_loss_is_the_mean_over_batches_of_minus_the_target_logit_by_hand():
    # A: L = -z_0 = -W2[0] . h: dL/dW2 = [[-1, 0], [0, 0]], dL/dh = -W2[0] = (-1, -1),
    #    dL/dW1 = dL/dh x^T = [[-1, -1], [-1, -1]].
    # B: h = (0, -1), L = -z_1 = -W2[1] . h: dL/dW2 = [[0, 0], [0, 1]], dL/dh = -W2[1] = (-1, -3),
    #    dL/dW1 = [[0, -1], [0, -3]].
    # g = the mean of the two: W1 [[-0.5, -1], [-0.5, -2]], W2 [[-0.5, 0], [0, 0.5]];
    # |g * w|: W1 [[0.5, 0], [0.5, 2]], W2 [[0.5, 0], [0, 1.5]]
    net = hand_network()
    assert_per_layer(connection_sensitivity(net, [A], "target-logit"), [[[1, 0], [1, 1]], [[1, 0], [0, 0]]])
    assert_per_layer(connection_sensitivity(net, [A, B], "target-logit"), [[[0.5, 0], [0.5, 2]], [[0.5, 0], [0, 1.5]]])


@pytest.mark.parametrize("temperature, hg", [
    # T = 1: g = grad d / 2, H = sigma (1 - sigma) grad d grad d^T + sigma grad^2 d, so
    # Hg = (1/4)(grad d . g) grad d + (1/2) grad^2 d g = (5/4) grad d + (1/4) grad^2 d grad d:
    # W1 (5/4)[[0, 0], [2, 2]] + (1/4)[[2, 2], [0, 0]], W2 (5/4)[[-1, 0], [1, 0]] + (1/4)[[0, -4], [0, 4]]
    (1.0, [[[0.5, 0.5], [2.5, 2.5]], [[-1.25, -1], [1.25, 1]]]),
    # T = 2: d / T keeps sigma = 1/2 and divides grad d and grad^2 d by T:
    # Hg = (5/4) grad d / T^3 + (1/4) grad^2 d grad d / T^2 = (5/32) grad d + (1/16) grad^2 d grad d
    (2.0, [[[0.125, 0.125], [0.3125, 0.3125]], [[-0.15625, -0.25], [0.15625, 0.25]]]),
])
def test_grasp_is_minus_w_times_the_hessian_gradient_product_by_hand(temperature, hg):
    net = hand_network()
    w = [m.weight.detach() for m in prunable_modules(net)]
    expected = [(-wl * torch.tensor(h, dtype=torch.float64)).tolist() for wl, h in zip(w, hg)]
    assert_per_layer(gradient_flow(net, [A], temperature), expected)


def test_grasp_sums_the_gradients_of_chunks_of_twenty_examples():
    # 21 copies of A make two chunks (20 and 1), each of mean loss L(A): g = 2 grad L and
    # Hg = sum_c H g = 2 H (2 grad L) = 4 times the T = 1 values above
    net, copies = hand_network(), (A[0].repeat(21, 1), A[1].repeat(21))
    single = gradient_flow(net, [A], 1.0)
    assert_per_layer(gradient_flow(net, [copies], 1.0), [(4 * s).tolist() for s in single])


def test_the_statistics_are_taken_in_evaluation_mode_leaving_training_mode_and_the_gradients_as_they_were():
    # a fresh BatchNorm (eps 0) in evaluation mode is the identity: running mean 0, variance 1
    # (in training mode, one example per channel would be refused)
    plain, net = hand_network(), hand_network()
    net.insert(1, nn.BatchNorm1d(2, eps=0.0).double())
    net.train()
    for ours, theirs in ((connection_sensitivity(net, [A], "cross-entropy"),
                          connection_sensitivity(plain, [A], "cross-entropy")),
                         (gradient_flow(net, [A], 1.0), gradient_flow(plain, [A], 1.0))):
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert net.training and all(p.grad is None for p in net.parameters())


# --- the masks they select ---------------------------------------------------------------

def test_snip_prunes_the_lowest_sensitivities_over_all_layers_and_zeroes_them():
    # cross-entropy scores: W1 [[0, 0], [1, 1]], W2 [[0.5, 0], [0.5, 0]]; half of the 8 weights
    # go: the four zeros
    net = hand_network()
    method = with_batches(make_method("snip", {"score_loss": "cross-entropy", "score_batches": 1}, goal=0.5), A)
    event = method.prune(net, 0.5)
    assert [m.tolist() for m in masks(net)] == [[[False, False], [True, True]], [[True, False], [True, False]]]
    assert net[1].weight.tolist() == [[1, 0], [1, 0]] and event.sparsity == 0.5 and event.fraction == 0.5


@pytest.mark.parametrize("removes, expected", [
    # T = 1 scores -w * Hg: W1 [[-0.5, 0], [-2.5, 2.5]], W2 [[1.25, 1], [-1.25, -3]]; 2 of 8 go
    ("lowest", [[[True, True], [False, True]], [[True, True], [True, False]]]),  # -2.5 and -3
    ("highest", [[[True, True], [True, False]], [[False, True], [True, True]]]),  # 2.5 and 1.25
])
def test_grasp_removes_the_lowest_scores_as_the_snip_it_authors_or_the_highest_as_wang_et_al(removes, expected):
    net = hand_network()
    hp = {"temperature": 1.0, "score_batches": 1, "removes": removes}
    with_batches(make_method("grasp", hp, goal=0.25), A).prune(net, 0.25)
    assert [m.tolist() for m in masks(net)] == expected


# --- SNIP-it's schedule ------------------------------------------------------------------

@pytest.mark.parametrize("goal, steps, expected", [
    # kappa - (kappa - 1/2) / 2^i, i = 0..5, then kappa: the gap 0.4 halved each step
    (0.9, 5, [0.5, 0.7, 0.8, 0.85, 0.875, 0.8875, 0.9]),
    (0.98, 5, [0.5, 0.74, 0.86, 0.92, 0.95, 0.965, 0.98]),  # gap 0.48
    (0.75, 1, [0.5, 0.625, 0.75]),
    (0.75, 0, [0.5, 0.75]),
])
def test_snip_it_sparsities_by_hand(goal, steps, expected):
    assert snip_it_sparsities(goal, steps) == pytest.approx(expected, abs=1e-12)


def test_snip_it_during_training_prunes_after_the_authors_epochs():
    # e - 4 a positive multiple of 4: after epochs 8, 12, ..., 32 (from 0), one step each
    method = make_method("snip-it", {"timing": "during"}, goal=0.9, epochs=80)
    assert method.pruning_epochs() == pytest.approx(dict(zip(range(8, 33, 4), [0.5, 0.7, 0.8, 0.85, 0.875, 0.8875,
                                                                                0.9])))
    assert [(p.name, p.epochs, p.prunes) for p in method.phases()] == [("train", 80, False)]


def random_network_and_batches():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    return net, [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(2)]


def test_snip_it_before_training_scores_every_step_on_fresh_batches_and_the_network_pruned_so_far():
    net, batches = random_network_and_batches()
    calls = []

    def alternating():
        calls.append(len(calls))
        return iter([batches[len(calls) % 2]])

    method = make_method("snip-it", {"steps": 1, "score_batches": 1}, goal=0.75)
    method.use_training_data(alternating)
    pruned = copy.deepcopy(net)
    event = method.prune(pruned, 0.75)
    assert len(calls) == 3 and event.sparsity == 0.75

    by_steps = copy.deepcopy(net)
    for step, sparsity in enumerate([0.5, 0.625, 0.75], start=1):
        keep_top(by_steps, connection_sensitivity(by_steps, [batches[step % 2]]), sparsity)
    assert all(torch.equal(a, b) for a, b in zip(masks(pruned), masks(by_steps)))

    same_batch = copy.deepcopy(net)
    with_batches(make_method("snip-it", {"steps": 1, "score_batches": 1}, goal=0.75), batches[1]).prune(same_batch, 0.75)
    assert not all(torch.equal(a, b) for a, b in zip(masks(pruned), masks(same_batch)))


@pytest.mark.parametrize("hp, goal, key", [
    ({}, 0.4, "goal_sparsity"),
    ({"prune_interval": 2}, 0.9, "prune_interval"),
    ({"timing": "during"}, 0.9, "prune_interval"),  # the last step would follow epoch 32 of 2
])
def test_snip_it_refuses_what_its_schedule_cannot_do(hp, goal, key):
    with pytest.raises(ConfigError) as error:
        make_method("snip-it", hp, goal=goal).phases()
    assert error.value.key == key


# --- on a real network and the training split ---------------------------------------------

def built(data_root, method, hp=None, goal=0.9, seed=0, epochs=1):
    spec = tiny_spec(method, hp, goal, epochs=epochs, seed=seed)
    return build_run(spec, cached_dataset("mnist1d", str(data_root), 0.1, 0), torch.device("cpu"))


def pruned_at_start(data_root, method, hp=None, goal=0.9, seed=0):
    """A run right after its first phase opened: pruned at epoch 0, nothing trained."""
    run = built(data_root, method, hp, goal, seed)
    enter_phase(run, run.method.phases()[0], quiet)
    return run


def test_the_training_batches_are_of_the_training_split(data_root):
    run = built(data_root, "snip")
    inputs, targets = next(run.method.training_batches())
    data = run.data
    train = data.normalise(data.inputs["train"]).flatten(1)
    assert len(targets) == run.method.training["batch_size"]
    for x, y in zip(inputs.flatten(1), targets):
        rows = (train == x).all(dim=1)
        assert (data.labels["train"][rows] == y).any()


def test_random_init_draws_from_the_run_seed_each_layer_its_share(data_root):
    first, again, other = (pruned_at_start(data_root, "random-init", seed=seed).model for seed in (0, 0, 1))
    assert all(torch.equal(a, b) for a, b in zip(masks(first), masks(again)))
    assert not all(torch.equal(a, b) for a, b in zip(masks(first), masks(other)))
    sizes = [m.weight.numel() for m in prunable_modules(first)]
    assert [int((~mask_of(m)).sum()) for m in prunable_modules(first)] == apportion(round(0.9 * sum(sizes)), sizes)


def test_random_init_bernoulli_keeps_each_weight_with_probability_one_minus_s(data_root):
    # the largest layer's kept share lies within 5 standard deviations of 1 - s = 0.1
    model = pruned_at_start(data_root, "random-init", {"draw": "bernoulli"}).model
    largest = max(prunable_modules(model), key=lambda m: m.weight.numel())
    n = largest.weight.numel()
    assert abs(float(mask_of(largest).double().mean()) - 0.1) < 5 * (0.1 * 0.9 / n) ** 0.5
    again = pruned_at_start(data_root, "random-init", {"draw": "bernoulli"}).model
    assert all(torch.equal(a, b) for a, b in zip(masks(model), masks(again)))


def test_snip_it_during_training_prunes_one_step_after_each_pruning_epoch(data_root):
    hp = {"timing": "during", "steps": 1, "prune_delay": 0, "prune_interval": 1}  # after epochs 1, 2, 3
    run = built(data_root, "snip-it", hp, goal=0.75, epochs=4)
    enter_phase(run, run.method.phases()[0], quiet)
    n = sum(m.weight.numel() for m in prunable_modules(run.model))
    pruned = []
    for epoch in range(4):
        run.method.end_epoch(run.model, epoch)
        pruned.append(sum(int((~mask_of(m)).sum()) for m in prunable_modules(run.model)))
    assert pruned == [0, round(0.5 * n), round(0.625 * n), round(0.75 * n)]


ONE_BATCH = {"score_batches": 1}


@pytest.mark.parametrize("method, hp", [("snip", ONE_BATCH), ("snip-it", ONE_BATCH), ("grasp", ONE_BATCH),
                                        ("random-init", {})])
def test_each_method_prunes_to_the_goal_at_epoch_zero_and_trains_with_those_masks(data_root, train_tiny, method, hp):
    start = pruned_at_start(data_root, method, hp)
    assert start.progress.epochs_done == 0 and start.progress.event.sparsity == 0.9
    result = train_tiny(method, hp, goal=0.9, epochs=1)
    assert result.record["status"] == "ok"
    assert_state_pruned_to(result, 0.9)  # exactly round(0.9 n) masked weights, all zero
    chosen = start.model.state_dict()
    for key, mask in result.state_dict.items():
        if key.endswith("weight_mask"):
            assert torch.equal(mask, chosen[key]), key


def test_snip_it_during_training_reaches_the_goal_through_the_loop(train_tiny):
    hp = {"timing": "during", "steps": 1, "prune_delay": 0, "prune_interval": 1, **ONE_BATCH}
    result = train_tiny("snip-it", hp, goal=0.75, epochs=4)
    assert result.record["status"] == "ok"
    assert_state_pruned_to(result, 0.75)
