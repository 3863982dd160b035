"""The training options of the SNIP-it paper (its section 4, "Optimisation"): Adam with an
L2 weight decay, and the clipping of the gradients' global norm, each against an update
computed by hand."""

import copy
import math

import pytest
import torch
from torch import nn

from bench.manifest import training_config
from bench.train import make_optimizer, train_step
from methods.core.masks import clip_gradient_norm, mask_of
from schema import ConfigError

from conftest import TINY_TRAINING, make_method

X, Y = [1.0, 2.0], 0  # one example, of class 0
W = [[0.5, -1.0], [0.25, 0.75]]


def linear(bias: bool = False) -> nn.Linear:
    """Linear(2, 2) with weights W (and biases 0.1, -0.2)."""
    model = nn.Linear(2, 2, bias=bias)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(W))
        if bias:
            model.bias.copy_(torch.tensor([0.1, -0.2]))
    return model


def cross_entropy_gradient(w: list[list[float]], b: list[float]) -> tuple[list[list[float]], list[float]]:
    """d CE / d(W, b) of softmax(W x + b) at (X, Y): (p - e_Y) x^T and p - e_Y."""
    z = [sum(wi * xi for wi, xi in zip(row, X)) + bi for row, bi in zip(w, b)]
    p = [math.exp(zi) / sum(math.exp(zj) for zj in z) for zi in z]
    delta = [pi - (i == Y) for i, pi in enumerate(p)]
    return [[d * xi for xi in X] for d in delta], delta


def flat(values) -> list[float]:
    """A tensor's or a nested list's numbers, in order (``pytest.approx`` compares flat lists)."""
    if isinstance(values, torch.Tensor):
        return values.detach().flatten().tolist()
    return [x for row in values for x in row]


def step(method, model, optimizer):
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    train_step(method, model, torch.tensor([X]), torch.tensor([Y]), optimizer, scaler)


def test_adam_takes_two_steps_as_computed_by_hand_with_the_weight_decay_in_the_gradient():
    lr, decay, beta1, beta2, eps = 0.1, 0.01, 0.9, 0.999, 1e-8
    method = make_method("dense", optimizer="adam", lr=lr, weight_decay=decay)
    model = linear()
    optimizer = make_optimizer(method, model)
    assert isinstance(optimizer, torch.optim.Adam)
    w = [row[:] for row in W]
    m = [[0.0, 0.0], [0.0, 0.0]]
    v = [[0.0, 0.0], [0.0, 0.0]]
    for t in (1, 2):
        step(method, model, optimizer)
        g = cross_entropy_gradient(w, [0.0, 0.0])[0]
        for i in range(2):
            for j in range(2):
                gradient = g[i][j] + decay * w[i][j]  # L2: the decay enters the moments (not AdamW)
                m[i][j] = beta1 * m[i][j] + (1 - beta1) * gradient
                v[i][j] = beta2 * v[i][j] + (1 - beta2) * gradient**2
                m_hat, v_hat = m[i][j] / (1 - beta1**t), v[i][j] / (1 - beta2**t)
                w[i][j] -= lr * m_hat / (math.sqrt(v_hat) + eps)
        assert flat(model.weight) == pytest.approx(flat(w), rel=1e-6, abs=1e-7), f"step {t}"


def test_clipping_scales_every_gradient_by_the_clip_over_their_global_norm():
    clip = 0.1
    method = make_method("dense", lr=1.0, momentum=0.0, weight_decay=0.0, grad_clip=clip)
    model = linear(bias=True)
    step(method, model, make_optimizer(method, model))
    g_w, g_b = cross_entropy_gradient(W, [0.1, -0.2])
    norm = math.sqrt(sum(x**2 for row in g_w for x in row) + sum(x**2 for x in g_b))
    assert norm > clip  # so the clipping acts
    scale = clip / (norm + 1e-6)
    assert flat(model.weight) == pytest.approx([w - scale * g for w, g in zip(flat(W), flat(g_w))], rel=1e-6)
    assert flat(model.bias) == pytest.approx([0.1 - scale * g_b[0], -0.2 - scale * g_b[1]], rel=1e-6)


def test_a_gradient_within_the_clip_is_left_as_it_is():
    method = make_method("dense", lr=1.0, momentum=0.0, weight_decay=0.0, grad_clip=10.0)
    model = linear()
    step(method, model, make_optimizer(method, model))
    g = cross_entropy_gradient(W, [0.0, 0.0])[0]
    assert flat(model.weight) == pytest.approx([w - gw for w, gw in zip(flat(W), flat(g))], rel=1e-6)


def pruned_layer_with_gradient() -> nn.Linear:
    """Linear(2, 1) whose second weight is pruned; gradients 3 and 4 on the weights, 0 on the bias."""
    model = nn.Linear(2, 1)
    mask_of(model).copy_(torch.tensor([[True, False]]))
    model.weight.grad = torch.tensor([[3.0, 4.0]])
    model.bias.grad = torch.tensor([0.0])
    return model


def test_the_loop_clips_the_gradient_as_it_is_and_rewinding_the_gradient_that_trains():
    as_it_is, that_trains = pruned_layer_with_gradient(), pruned_layer_with_gradient()
    clip_gradient_norm(as_it_is, 1.0)  # norm 5: the authors' trainer counts the pruned weight's 4
    clip_gradient_norm(that_trains, 1.0, masked=True)  # norm 3
    assert flat(as_it_is.weight.grad) == pytest.approx([0.6, 0.8], rel=1e-6)
    assert flat(that_trains.weight.grad) == pytest.approx([1.0, 0.0], rel=1e-6)


@pytest.mark.parametrize("values, key", [({"optimizer": "adamw"}, "training.optimizer"),
                                         ({"optimizer": "adam", "nesterov": True}, "training.nesterov"),
                                         ({"grad_clip": 0.0}, "training.grad_clip"),
                                         ({"augment": "authors"}, "training.augment")])
def test_bad_optimizer_settings_name_the_key(values, key):
    with pytest.raises(ConfigError) as error:
        training_config({**TINY_TRAINING, **values})
    assert error.value.key == key


def test_the_defaults_are_sgd_without_clipping_on_the_datasets_own_pipeline():
    training = training_config(TINY_TRAINING)
    assert training["optimizer"] == "sgd" and training["grad_clip"] is None and training["augment"] is None


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_optimizers_update_all_tensors_at_once_bitwise_as_one_at_a_time(optimizer):
    """``make_optimizer``'s one-call update (``foreach``) gives the per-tensor loop's weights."""
    method = make_method("dense", optimizer=optimizer, lr=0.1, weight_decay=5e-4, nesterov=optimizer == "sgd")
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    loop = copy.deepcopy(ours)
    optimizers = [make_optimizer(method, ours), make_optimizer(method, loop)]
    for group in optimizers[1].param_groups:
        group["foreach"] = False
    inputs, targets = torch.randn(32, 8), torch.randint(0, 3, (32,))
    for _ in range(5):
        for model, opt in zip((ours, loop), optimizers):
            opt.zero_grad()
            nn.functional.cross_entropy(model(inputs), targets).backward()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), loop.parameters()))
    assert optimizers[0].param_groups[0]["foreach"] is True
