"""GMP (hard and soft), DPF and DNW: the cubic schedule, revival, error feedback, top-k forward."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from methods.core.masks import mask_of, prunable_modules
from methods.pruning_stable.gmp import recompute_masks
from schema import ConfigError

from conftest import assert_state_pruned_to, make_method

S4 = [0.5203125, 0.7875, 0.8859375, 0.9]  # 0.9 (1 - (1 - k/4)^3): 0.9 * (1 - 27/64), (1 - 1/8), (1 - 1/64), 1


def make(name, hp=None, goal=0.9, epochs=1, steps_per_epoch=10, model=None):
    """A method with its defaults, set up on ``model`` and in its regular training phase."""
    method = make_method(name, hp, goal, epochs=epochs)
    method.setup(model, steps_per_epoch)
    method.enter(method.phases()[0])
    return method


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(40, 25), nn.ReLU(), nn.Linear(25, 10))  # 1250 prunable weights


def iterate(method, model, optimizer, iterations, seed=1):
    """Regular training iterations on random data as the loop runs them; yields after each."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(iterations):
        inputs = torch.randn(32, model[0].in_features, generator=generator)
        targets = torch.randint(0, model[-1].out_features, (32,), generator=generator)
        loss = F.cross_entropy(method.forward(model, inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        method.after_backward(model)
        optimizer.step()
        method.after_step(model, optimizer)
        yield


def flat_mask(model):
    return torch.cat([mask_of(m).flatten() for m in prunable_modules(model)])


def flat_weight(model):
    return torch.cat([m.weight.detach().flatten() for m in prunable_modules(model)])


def assert_top_by_magnitude(mask, weight):
    """Every kept weight is at least as large in magnitude as every pruned one."""
    assert weight[mask].abs().min() >= weight[~mask].abs().max()


def assert_pruned_exactly(model, goal, selection="global"):
    """round(goal * n) masked weights over the model (global) or in every layer (uniform), all zero."""
    masks = [flat_mask(model)] if selection == "global" else [mask_of(m) for m in prunable_modules(model)]
    for mask in masks:
        assert int((~mask).sum()) == round(goal * mask.numel())
    for module in prunable_modules(model):
        assert not module.weight[~mask_of(module)].any()


# GMP ---------------------------------------------------------------------------------------


def test_gmp_follows_the_cubic_schedule_at_the_hand_computed_iterations():
    model = mlp()
    # I = 2 epochs * 11 = 22 iterations, n = 4: step k after round(22 k / 5) = 4.4, 8.8, 13.2, 17.6.
    method = make("gmp", {"steps": 4}, goal=0.9, epochs=2, steps_per_epoch=11, model=model)
    assert list(method.step_sparsity) == [4, 9, 13, 18]
    assert list(method.step_sparsity.values()) == pytest.approx(S4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    zeros = [int((flat_weight(model) == 0).sum()) for _ in iterate(method, model, optimizer, 22)]
    # round(s_k * 1250): 650.39 -> 650, 984.4 -> 984, 1107.4 -> 1107, 1125.
    expected = [0] * 3 + [650] * 5 + [984] * 4 + [1107] * 5 + [1125] * 5
    assert zeros == expected


def test_gmp_hard_never_revives_a_pruned_weight():
    model = mlp()
    method = make("gmp", {"steps": 4}, goal=0.9, epochs=2, steps_per_epoch=11, model=model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)
    previous = flat_mask(model).clone()
    for _ in iterate(method, model, optimizer, 22):
        mask = flat_mask(model)
        assert not (mask & ~previous).any()
        assert not flat_weight(model)[~mask].any()
        previous = mask.clone()


def single_layer(values):
    layer = nn.Linear(len(values), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([values]))
    return nn.Sequential(layer)


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_gmp_soft_revives_a_weight_hard_does_not(mode):
    model = single_layer([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    # I = 3, n = 2: steps after iterations 1 and 2 to s_1 = 0.5 (1 - 1/8) = 0.4375 (round(3.5) = 4
    # of 8 pruned) and s_2 = 0.5 (4 pruned).
    method = make("gmp", {"steps": 2, "mode": mode}, goal=0.5, steps_per_epoch=3, model=model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    weight = model[0].weight
    method.after_step(model, optimizer)  # step 1 prunes 0.1 .. 0.4
    assert mask_of(model[0]).tolist() == [[False] * 4 + [True] * 4]
    x = torch.randn(5, 8)
    kept = torch.tensor([0.0] * 4 + [0.5, 0.6, 0.7, 0.8])
    assert torch.allclose(method.forward(model, x), x @ kept[:, None])
    if mode == "soft":  # the pruned values are kept aside in the stored weight
        assert weight[0].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    with torch.no_grad():
        weight[0, 4] = 0.01  # training shrinks an active weight below the pruned 0.4
    method.after_step(model, optimizer)  # step 2
    if mode == "soft":  # from scratch over 0.1, 0.2, 0.3, 0.4, 0.01, 0.6, 0.7, 0.8: 0.4 is back
        assert mask_of(model[0]).tolist() == [[False, False, False, True, False, True, True, True]]
        assert weight[0, 3].item() == pytest.approx(0.4)
    else:  # 4 of 8 already pruned: nothing changes, 0.4 stays pruned at zero
        assert mask_of(model[0]).tolist() == [[False] * 4 + [True] * 4]
        assert weight[0, :4].tolist() == [0.0] * 4


def test_gmp_soft_kept_values_get_no_gradient_but_weight_decay():
    model = single_layer([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    method = make("gmp", {"steps": 2, "mode": "soft"}, goal=0.5, steps_per_epoch=3, model=model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    method.after_step(model, optimizer)  # step 1 prunes 0.1 .. 0.4
    x = torch.randn(5, 8)
    method.forward(model, x).sum().backward()
    weight = model[0].weight
    before = weight.detach().clone()
    assert weight.grad[0, :4].tolist() == [0.0] * 4 and torch.allclose(weight.grad[0, 4:], x.sum(0)[4:])
    optimizer.step()
    # First SGD step, buffer = grad + wd w: a pruned weight becomes w - 0.1 * 0.01 w = 0.999 w.
    assert weight[0, :4].tolist() == pytest.approx((0.999 * before[0, :4]).tolist())
    assert torch.allclose(weight[0, 4:], before[0, 4:] * 0.999 - 0.1 * x.sum(0)[4:])


@pytest.mark.parametrize("mode", ["hard", "soft"])
@pytest.mark.parametrize("selection", ["global", "uniform"])
def test_gmp_final_prune_hits_the_goal_with_zeros_in_place(mode, selection):
    model = mlp()
    method = make("gmp", {"steps": 5, "mode": mode, "selection": selection}, goal=0.93, epochs=2,
                  steps_per_epoch=9, model=model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9, weight_decay=5e-4)
    for _ in iterate(method, model, optimizer, 18):
        pass
    method.prune(model, 0.93)
    method.enter(method.phases()[1])
    assert_pruned_exactly(model, 0.93, selection)
    for _ in iterate(method, model, optimizer, 3):  # fine-tuning keeps pruned weights at zero
        assert_pruned_exactly(model, 0.93, selection)


def test_gmp_soft_recomputes_uniform_plus_masks_from_scratch():
    model = mlp()  # 1000 + 250 weights; the first layer is linear, so it is pruned too
    recompute_masks(model, 0.9, "uniform+")
    # round(0.9 * 1250) = 1125: uniform would prune 225 of the last 250, capped at 250 - round(50) = 200
    assert [int((~mask_of(m)).sum()) for m in prunable_modules(model)] == [925, 200]
    recompute_masks(model, 0.5, "uniform+")
    # 625 at f = 0.5, 125 <= 200 of the last layer: round(625 * 1000/1250) = 500, then 125; no weight was zeroed
    assert [int((~mask_of(m)).sum()) for m in prunable_modules(model)] == [500, 125]
    assert_top_by_magnitude(mask_of(model[0]).flatten(), model[0].weight.detach().flatten())


def test_gmp_pruning_every_m_epochs_as_the_authors_code():
    model = mlp()
    # T = 7, m = 2: n = 7 // 2 - 1 = 2 steps, at the ends of epochs 2 and 4 (3 iterations each): after
    # iterations 6 and 12, to 0.9 (1 - 1/8) = 0.7875 and 0.9; epochs 5 to 7 recover (T - n m = 3).
    method = make("gmp", {"pruning_interval": 2}, goal=0.9, epochs=7, steps_per_epoch=3, model=model)
    assert method.step_sparsity == pytest.approx({6: 0.7875, 12: 0.9})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    zeros = [int((flat_weight(model) == 0).sum()) for _ in iterate(method, model, optimizer, 21)]
    # round(0.7875 * 1250) = round(984.375) = 984, round(0.9 * 1250) = 1125
    assert zeros == [0] * 5 + [984] * 6 + [1125] * 10
    # m dividing T is the equally spaced schedule: T = 8, m = 2 is steps = 8/2 - 1 = 3, round(24 k / 4) = 6k
    assert list(make("gmp", {"pruning_interval": 2}, epochs=8, steps_per_epoch=3, model=mlp()).step_sparsity) == \
        list(make("gmp", {"steps": 3}, epochs=8, steps_per_epoch=3, model=mlp()).step_sparsity) == [6, 12, 18]


@pytest.mark.parametrize("hp, key", [({"pruning_interval": 4}, "pruning_interval"),  # 2 * 4 > 7: no step
                                     ({"pruning_interval": 2, "steps": 5}, "steps")])
def test_gmp_pruning_interval_refuses_what_it_cannot_plan(hp, key):
    with pytest.raises(ConfigError) as error:
        make_method("gmp", hp, epochs=7).phases()
    assert error.value.key == key


def test_gmp_cyclic_learning_rate_restarts_after_every_pruning_step():
    # T = 7, m = 2, 3 iterations per epoch, eta_1 = 0.1: steps after iterations 6 and 12, that is at
    # t = 2 and 4 epochs; cycles [0, 2), [2, 4), [4, 7) decay linearly from 0.1 to zero at their end.
    method = make("gmp", {"pruning_interval": 2, "schedule": "cyclic"}, epochs=7, steps_per_epoch=3, model=mlp())
    lr = method.phases()[0].schedule(None)
    at_iteration = {  # iteration j (from 0) runs at t = j / 3
        0: 0.1,  # start of the first cycle
        3: 0.1 * (1 - 1 / 2),  # t = 1, its midpoint: 0.05
        5: 0.1 * (1 - (5 / 3) / 2),  # last iteration before the first step: 0.1 / 6
        6: 0.1,  # the first after it: restart
        11: 0.1 * (1 - (11 / 3 - 2) / 2),  # last before the second step: 0.1 / 6
        12: 0.1,  # after the last step the last cycle runs to the end of training
        15: 0.1 * (1 - (5 - 4) / 3),  # t = 5: 0.1 * 2/3
        20: 0.1 * (1 - (20 / 3 - 4) / 3),  # the last iteration: 0.1 / 9
    }
    assert [lr(j / 3) for j in at_iteration] == pytest.approx(list(at_iteration.values()))


def test_gmp_linear_learning_rate_decays_over_the_whole_training():
    method = make("gmp", {"schedule": "linear"}, epochs=7, steps_per_epoch=3, model=mlp())
    lr = method.phases()[0].schedule(None)
    assert [lr(0), lr(3.5), lr(20 / 3)] == pytest.approx([0.1, 0.05, 0.1 / 21])  # 0.1 (1 - t / 7)


# DPF ---------------------------------------------------------------------------------------


def test_dpf_refreshes_the_mask_every_16_iterations_and_at_schedule_steps():
    model = mlp()
    # I = 64, n = 4: steps after round(64 k / 5) = 12.8, 25.6, 38.4, 51.2 -> 13, 26, 38, 51.
    method = make("dpf", {"steps": 4}, goal=0.9, steps_per_epoch=64, model=model)
    assert list(method.step_sparsity) == [13, 26, 38, 51]
    target = dict(zip([13, 26, 38, 51], S4))
    refreshes = {13, 16, 26, 32, 38, 48, 51, 64}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    previous, sparsity, changed_on_interval = flat_mask(model).clone(), 0.0, 0
    for i, _ in enumerate(iterate(method, model, optimizer, 64), start=1):
        mask, weight = flat_mask(model), flat_weight(model)
        sparsity = target.get(i, sparsity)
        if i in refreshes:  # recomputed from the dense magnitudes at the scheduled sparsity
            assert int((~mask).sum()) == round(sparsity * 1250)
            assert_top_by_magnitude(mask, weight)
            changed_on_interval += i % 16 == 0 and i not in target and not torch.equal(mask, previous)
        else:
            assert torch.equal(mask, previous)
        if i > 13:  # the dense weights are never zeroed
            assert weight[~mask].abs().min() > 0
        previous = mask.clone()
    assert changed_on_interval


def test_dpf_gradient_of_the_pruned_model_updates_the_dense_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4))
    # I = 32, n = 1: the single step after round(32 / 2) = 16 prunes to the goal 0.5.
    method = make("dpf", {"steps": 1}, goal=0.5, steps_per_epoch=32, model=model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in iterate(method, model, optimizer, 16):
        pass
    layer, mask = model[0], mask_of(model[0]).clone()
    assert int((~mask).sum()) == 12
    x = torch.randn(8, 6)
    effective = (layer.weight * mask).detach().requires_grad_()
    expected = x @ effective.T + layer.bias
    output = method.forward(model, x)
    assert torch.allclose(output, expected)
    optimizer.zero_grad()
    output.pow(2).sum().backward()
    expected.pow(2).sum().backward()
    # straight-through: every dense weight receives d loss / d (w * m), masked ones included
    assert torch.allclose(layer.weight.grad, effective.grad) and layer.weight.grad[~mask].abs().min() > 0
    before = layer.weight.detach().clone()
    optimizer.step()
    method.after_step(model, optimizer)
    assert (layer.weight[~mask] != before[~mask]).all()


def test_dpf_final_prune_applies_the_mask_in_use():
    model = mlp()
    method = make("dpf", {"steps": 4}, goal=0.95, steps_per_epoch=40, model=model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in iterate(method, model, optimizer, 37):  # 37: the mask was last refreshed at 32
        pass
    dense, in_use = flat_weight(model), flat_mask(model)
    assert not torch.equal(in_use, flat_top_mask(dense, 0.95)), "the dense weights moved since the refresh"
    method.prune(model, 0.95)
    assert_pruned_exactly(model, 0.95)
    assert torch.equal(flat_mask(model), in_use)
    assert torch.equal(flat_weight(model)[in_use], dense[in_use])


@pytest.mark.parametrize("selection, emptied", [("global", True), ("uniform", False)])
def test_dpf_global_selection_can_empty_a_layer_of_small_weights_uniform_cannot(selection, emptied):
    model = mlp()
    with torch.no_grad():
        model[2].weight.mul_(1e-3)  # 250 weights, all smaller than the 1000 of the first layer
    method = make("dpf", {"steps": 1, "selection": selection}, goal=0.75, steps_per_epoch=4, model=model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    for _ in iterate(method, model, optimizer, 2):  # the single step after round(4 / 2) = 2 iterations
        pass
    kept = [int(mask_of(m).sum()) for m in prunable_modules(model)]
    # 0.75 * 1250 = 937.5 -> 938 pruned: globally every one of the 250 small weights and 688 large ones
    assert kept == ([312, 0] if emptied else [250, 62])  # uniform: round(0.75 * 1000), round(0.75 * 250) pruned
    method.prune(model, 0.75)
    assert [int(mask_of(m).sum()) for m in prunable_modules(model)] == kept


def flat_top_mask(weights, sparsity):
    keep = torch.zeros_like(weights, dtype=torch.bool)
    keep[weights.abs().argsort(descending=True)[:weights.numel() - round(sparsity * weights.numel())]] = True
    return keep


# DNW ---------------------------------------------------------------------------------------


def top_k_reference(model, x, k):
    """Two linear layers by hand with only the k largest |w| of both: (output, effective weights, keep)."""
    first, second = model
    weights = torch.cat([first.weight.detach().flatten(), second.weight.detach().flatten()])
    keep = torch.zeros_like(weights, dtype=torch.bool)
    keep[weights.abs().argsort(descending=True)[:k]] = True
    e1 = (weights * keep)[:12].view(3, 4).requires_grad_()
    e2 = (weights * keep)[12:].view(2, 3).requires_grad_()
    return (x @ e1.T + first.bias) @ e2.T + second.bias, (e1, e2), keep


def test_dnw_forward_uses_exactly_the_global_top_k_and_a_dense_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))  # 12 + 6 = 18 weights
    method = make("dnw", goal=0.6, model=model)
    k = 18 - round(0.6 * 18)  # 18 - round(10.8) = 7 weights take part
    x = torch.randn(5, 4)
    expected, (e1, e2), keep = top_k_reference(model, x, k)
    output = method.forward(model, x)
    assert torch.allclose(output, expected)
    output.square().sum().backward()
    expected.square().sum().backward()
    # straight-through: every weight gets the gradient of its effective weight, left-out ones too
    w1, w2 = model[0].weight, model[1].weight
    assert torch.allclose(w1.grad, e1.grad) and torch.allclose(w2.grad, e2.grad)
    assert w1.grad.flatten()[~keep[:12]].abs().min() > 0
    # the top k is chosen afresh at every forward: a left-out weight grown large takes part at once
    left_out = (~keep[:12]).nonzero()[0].item()
    with torch.no_grad():
        w1.view(-1)[left_out] = 10.0
    expected, _, keep = top_k_reference(model, x, k)
    assert keep[left_out]
    assert torch.allclose(method.forward(model, x), expected)


def test_dnw_final_prune_hits_the_goal_and_changes_nothing():
    model = mlp()
    method = make("dnw", goal=0.9, model=model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    for _ in iterate(method, model, optimizer, 5):
        pass
    x = torch.randn(16, 40)
    with torch.no_grad():
        before = method.forward(model, x)
        method.prune(model, 0.9)
        method.enter(method.phases()[1])
        after = method.forward(model, x)
    assert_pruned_exactly(model, 0.9)
    assert torch.equal(before, after)


# Real runs through the one loop --------------------------------------------------------------


@pytest.mark.parametrize("method, hp", [("gmp", {}), ("gmp", {"mode": "soft"}), ("dpf", {}), ("dnw", {})])
def test_trains_to_the_exact_goal_through_the_loop(train_tiny, method, hp):
    result = train_tiny(method, {**hp, "finetune_fraction": 0.5}, goal=0.9, epochs=2)
    record = result.record
    assert record["status"] == "ok" and record["epochs"] == 3
    assert_state_pruned_to(result, 0.9)
    assert record["test_accuracy"] > 0.3
    if method in ("gmp", "dnw"):  # the hard prune only applies the mask already in use
        assert record["accuracy_before_prune"] == record["accuracy_after_prune"]
        assert record["pruning_stability"] == 1


@pytest.mark.parametrize("hp, epochs, lrs", [
    ({"selection": "uniform+", "mode": "soft"}, 2, [0.1, 0.1]),  # the tiny training's constant 0.1
    ({"pruning_interval": 1}, 2, [0.1, 0.1]),  # n = 2 // 1 - 1 = 1 step, at the end of epoch 1
    ({"schedule": "linear"}, 2, [0.1, 0.05]),  # 0.1 (1 - t / 2) at t = 0, 1
    ({"schedule": "cyclic", "pruning_interval": 2}, 4, [0.1, 0.05, 0.1, 0.05]),  # cycles [0, 2), [2, 4)
])
def test_gmp_variants_train_to_the_exact_goal_through_the_loop(train_tiny, hp, epochs, lrs):
    result = train_tiny("gmp", {**hp, "finetune_fraction": 0.5}, goal=0.9, epochs=epochs)
    assert result.record["status"] == "ok"
    assert_state_pruned_to(result, 0.9)
    assert [row["lr"] for row in result.history if row["phase"] == "train"] == pytest.approx(lrs)
    if hp.get("selection") == "uniform+":  # the stem convolution dense, the last layer keeps >= 20%
        masks = [mask for key, mask in result.state_dict.items() if key.endswith("weight_mask")]
        assert masks[0].all() and masks[-1].sum() >= round(0.2 * masks[-1].numel())
