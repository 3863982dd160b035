"""Renda et al.'s retraining techniques and AIMP against their definitions: which weights a
retraining starts from, its learning rates and its epochs; iterative pruning's iterations;
the dense run's stored rewind points; AIMP's mask-dynamics indicators by hand."""

import math

import pytest
import torch
from torch import nn

from bench.train import Parent, build_run, cached_dataset, enter_phase, train_run
from methods.core.dynamics import MaskDynamics
from schema import ConfigError

from conftest import make_method, tiny_spec

T = 4
# S: 0.1 for epochs [0, 2), 0.01 for [2, 3), 0.001 for [3, 4]
TRAINING = {"epochs": T, "lr_schedule": {"milestones": [2, 3]}}
POINTS = [0, 1, 2, 3]


def quiet(line):
    pass


@pytest.fixture(scope="module")
def dense(data_root):
    """A 4-epoch dense run storing its weights after every epoch but the last."""
    spec = tiny_spec("dense", {"rewind_points": POINTS}, goal=None, **TRAINING)
    return train_run(spec, data_root, log=quiet)


def started(data_root, dense, hp, goal=0.5, phase=0):
    """The run of ``hp`` right after it entered its phase ``phase`` (its pruning step and
    rewind done, nothing trained in it), and that phase."""
    spec = tiny_spec("rewinding", hp, goal, **TRAINING)
    data = cached_dataset("mnist1d", str(data_root), 0.1, 0)
    run = build_run(spec, data, torch.device("cpu"), Parent(dense.state_dict, dense.record, dense.stored))
    phases = run.method.phases()
    for index in range(phase + 1):
        enter_phase(run, phases[index], quiet)
    return run, phases[phase]


def masked(weights: dict, model: nn.Module) -> dict:
    """``weights`` with the model's masks applied to the weights they cover."""
    state = model.state_dict()
    return {key: value * state[key + "_mask"] if key + "_mask" in state else value for key, value in weights.items()}


def assert_starts_from(model: nn.Module, weights: dict) -> None:
    state = model.state_dict()
    for key, value in masked(weights, model).items():
        assert torch.equal(state[key], value), key


S = {0: 0.1, 1: 0.1, 2: 0.01, 3: 0.001}  # the LR of training epoch g; S[g > T] = S[T] = 0.001


# (technique, t): (epoch of the dense run whose weights it starts from ("final": W_T), g, epochs)
DEFINITIONS = {
    ("ft", 3): ("final", T, 3),
    ("wr", 3): (1, 1, 3),
    ("lrr", 3): ("final", 1, 3),
    ("lowlr_wr", 3): (1, T, 3),
    ("wr", 1): (3, 3, 1),
    ("lrr", 2): ("final", 2, 2),
}


@pytest.mark.parametrize("technique, t", DEFINITIONS)
def test_each_technique_is_train_t_from_its_definition(data_root, dense, technique, t):
    start, g, epochs = DEFINITIONS[technique, t]
    run, phase = started(data_root, dense, {"technique": technique, "retrain_epochs": t})
    assert phase.epochs == epochs
    assert_starts_from(run.model, dense.state_dict if start == "final" else dense.stored[start])
    for k in range(epochs):  # the LR of retraining epoch k is S[g + k], S[T] past T
        assert run.schedule(k + 0.5) == pytest.approx(S[min(g + k, T - 1)])


def test_reinitialisation_trains_fresh_weights_for_T_plus_t(data_root, dense):
    run, phase = started(data_root, dense, {"technique": "reinit", "retrain_epochs": 2})
    assert phase.epochs == T + 2
    state = run.model.state_dict()
    for epoch in POINTS:  # neither the initialisation nor any later weights of the dense run
        assert not torch.equal(state["fc.weight"], masked(dense.stored[epoch], run.model)["fc.weight"])
    assert [run.schedule(k) for k in range(T + 2)] == pytest.approx([0.1, 0.1, 0.01, 0.001, 0.001, 0.001])
    assert torch.equal(state["fc.weight_mask"], run.model.fc.weight_mask)
    assert (state["fc.weight"][~state["fc.weight_mask"]] == 0).all()


def test_iterative_weight_rewinding_rewinds_every_iteration_to_the_same_weights(data_root, dense):
    hp = {"technique": "wr", "retrain_epochs": 2, "prune_fraction": 0.2}
    goal = 1 - 0.8 ** 2
    first, _ = started(data_root, dense, hp, goal, phase=0)
    second, _ = started(data_root, dense, hp, goal, phase=1)
    assert_starts_from(second.model, dense.stored[2])
    masks = [run.model.fc.weight_mask for run in (first, second)]
    assert masks[0].float().mean() > masks[1].float().mean()  # the second iteration pruned more


def test_iterative_pruning_takes_the_papers_iterations():
    """20% of the remaining weights per iteration: density 0.8^k after iteration k, so 0.8^20
    in 20 iterations (AIMP Table II: 12 at 30%, 9 at 40% to about 98.5-98.9%)."""
    for fraction, iterations in ((0.2, 20), (0.3, 12), (0.4, 9)):
        goal = 1 - (1 - fraction) ** iterations
        method = make_method("rewinding", {"technique": "wr", "retrain_epochs": 3, "prune_fraction": fraction},
                             goal, **TRAINING)
        phases = method.phases()
        assert len(phases) == iterations
        assert [p.sparsity for p in phases] == pytest.approx([1 - (1 - fraction) ** k for k in range(1, iterations + 1)])
    one_shot = make_method("rewinding", {"technique": "ft", "retrain_epochs": 3}, 0.9, **TRAINING).phases()
    assert [p.sparsity for p in one_shot] == [0.9]


def retraining_epochs(hp, goal, epochs) -> list[int]:
    method = make_method("rewinding", hp, goal, epochs=epochs, lr_schedule={"milestones": [80, 120]})
    return [phase.epochs for phase in method.phases()]


def test_aimp_trains_intermediate_iterations_up_to_tau():
    """AIMP section V: T = 160, 20 iterations of 20%; WR rewinds to epoch 1 (t = 159), so an
    intermediate iteration of AIMP_50 trains 50 - 1 epochs and the last 159; LRR (t = T)
    trains tau = 50, then 160."""
    goal = 1 - 0.8 ** 20
    wr = {"technique": "wr", "retrain_epochs": 159, "prune_fraction": 0.2}
    assert retraining_epochs(wr, goal, 160) == [159] * 20
    assert retraining_epochs({**wr, "partial_epochs": 50}, goal, 160) == [49] * 19 + [159]
    lrr = {"technique": "lrr", "retrain_epochs": 160, "prune_fraction": 0.2, "partial_epochs": 50}
    assert retraining_epochs(lrr, goal, 160) == [50] * 19 + [160]
    method = make_method("rewinding", lrr, goal, epochs=160, lr_schedule={"milestones": [80, 120]})
    method.steps_per_epoch = 10
    schedule = method.phases()[0].schedule(None)
    assert [schedule(k) for k in (0, 49.9)] == pytest.approx([0.1, 0.1])  # LRR: from the start of S


@pytest.mark.parametrize("hp, key", [
    ({"technique": "wr", "retrain_epochs": 5}, "retrain_epochs"),  # t > T
    ({"technique": "reinit", "retrain_epochs": 2, "prune_fraction": 0.2}, "prune_fraction"),
    ({"technique": "wr", "retrain_epochs": 3, "partial_epochs": 2}, "partial_epochs"),  # one-shot
    ({"technique": "wr", "retrain_epochs": 3, "prune_fraction": 0.2, "partial_epochs": 1}, "partial_epochs"),
    ({"technique": "wr", "retrain_epochs": 3, "prune_fraction": 0.2, "partial_epochs": 4}, "partial_epochs"),
    ({"technique": "ft", "retrain_epochs": 3, "mask_dynamics": True}, "mask_dynamics"),
])
def test_plans_that_do_not_fit_name_the_key(hp, key):
    with pytest.raises(ConfigError) as error:
        make_method("rewinding", hp, 0.5, **TRAINING).phases()
    assert error.value.key == key


def test_the_dense_run_stores_its_weights_at_the_rewind_points(data_root, dense):
    assert sorted(dense.stored) == POINTS
    torch.manual_seed(0)
    initial = build_run(tiny_spec("dense", goal=None, **TRAINING), cached_dataset("mnist1d", str(data_root), 0.1, 0),
                        torch.device("cpu")).model.state_dict()
    for key, value in initial.items():
        assert torch.equal(dense.stored[0][key], value), key
    stopped = train_run(tiny_spec("dense", {"stop_epoch": 2}, goal=None, **TRAINING), data_root, log=quiet)
    assert stopped.record["own_epochs"] == 2
    for key, value in stopped.state_dict.items():  # the run cut short after 2 epochs is the full run's W_2
        assert torch.equal(dense.stored[2][key], value), key


def test_gradient_clipping_bounds_the_norm_of_the_gradient_that_trains():
    """Weights (2x3, the last column pruned) and bias (2) all have gradient 10: the gradient
    that trains has 4 + 2 entries of 10, norm 10 sqrt(6), scaled to norm 1."""
    method = make_method("rewinding", {"technique": "lrr", "retrain_epochs": 2, "clip_grad_norm": 1.0}, 0.5,
                         **TRAINING)
    model = nn.Linear(3, 2)
    model.register_buffer("weight_mask", torch.tensor([[True, True, False], [True, True, False]]))
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    method.after_backward(model)
    assert model.weight.grad[:, 2].eq(0).all()
    assert model.bias.grad == pytest.approx(torch.full((2,), 1 / math.sqrt(6)))
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    assert norm == pytest.approx(1.0, rel=1e-5)


def test_mask_dynamics_by_hand():
    """Ten weights, one pruned; p = 0.2 keeps round(0.8 * 9) = 7 of the 9 that remain."""
    layer = nn.Linear(10, 1, bias=False)
    layer.register_buffer("weight_mask", torch.ones(1, 10, dtype=torch.bool))
    layer.weight_mask[0, 9] = False
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1., 2., 3., 4., 5., 6., 7., 8., 9., 0.]]))
    dynamics = MaskDynamics(0.2, top_k=3)
    dynamics.start(layer)  # potential mask: 3..9 kept, 1, 2 (and the pruned weight) not
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[10., 2., 0.5, 4., 5., 6., 7., 8., 9., 0.]]))
    measures = dynamics.measure(layer)  # now 1 and 3 swap places: two entries change
    assert measures["mask_change"] == pytest.approx(2 / 9)
    assert measures["mask_change_of_all"] == pytest.approx(2 / 10)
    assert measures["weight_linf"] == 10.0
    assert measures["weight_l1_top"] == pytest.approx(10 + 9 + 8)
    assert dynamics.measure(layer)["mask_change"] == 0.0


def test_an_iterative_run_records_every_iteration_and_its_mask_dynamics(data_root, dense):
    hp = {"technique": "lrr", "retrain_epochs": 1, "prune_fraction": 0.2, "mask_dynamics": True}
    spec = tiny_spec("rewinding", hp, 1 - 0.8 ** 3, **TRAINING)
    result = train_run(spec, data_root, Parent(dense.state_dict, dense.record, dense.stored), log=quiet)
    ends = [row for row in result.history if not math.isnan(row.get("test_accuracy", math.nan))]
    assert [row["phase"] for row in ends] == ["retrain 1", "retrain 2", "retrain 3"]
    assert [row["sparsity"] for row in ends] == pytest.approx([0.2, 0.36, 0.488], abs=2e-3)
    assert ends[-1]["test_accuracy"] == result.record["test_accuracy"]
    assert all(0 <= row["mask_change"] <= 1 for row in result.history)
    assert result.record["own_epochs"] == 3



def test_structured_rewinding_prunes_li_filters_then_rewinds(data_root, dense):
    spec = tiny_spec("rewinding-filters", {"technique": "wr", "retrain_epochs": 2, "filter_rates": "resnet1d-b",
                                           "rate_level": 2}, None, **TRAINING)
    data = cached_dataset("mnist1d", str(data_root), 0.1, 0)
    run = build_run(spec, data, torch.device("cpu"), Parent(dense.state_dict, dense.record, dense.stored))
    phase = run.method.phases()[0]
    enter_phase(run, phase, quiet)
    assert phase.epochs == 2
    assert_starts_from(run.model, dense.stored[T - 2])
    pruned = [int((~mask.flatten(1).any(1)).sum()) for mask in
              (run.model.stages[b].conv1.weight_mask for b in range(3))]
    assert pruned == [27, 32, 24]  # 1 - (1 - d)^2 of 32/64/128 filters, rounded as li_rates says
    with pytest.raises(ConfigError) as error:
        make_method("rewinding-filters", {"technique": "ft", "retrain_epochs": 1, "filter_rates": "resnet56-b"},
                    None, **TRAINING).phases()
    assert error.value.key == "filter_rates"


def test_a_manifest_rewinds_only_to_the_epochs_its_dense_runs_store(write_manifest):
    from bench.manifest import load

    def edit(data, t=(1, "50%"), row_dense=None):
        data["dense"] = {"rewind_points": ["50%"]}  # of T = 2 epochs: epoch 1
        row = {"label": "WR", "method": "rewinding", "params": {"technique": "wr"}, "grid": {"retrain_epochs": list(t)}}
        if row_dense:
            row["dense"] = row_dense
        data["rows"].append(row)

    specs = load(str(write_manifest(edit)), "base").expand()
    parents = {spec.parent.run_id for spec in specs if spec.parent is not None}
    assert len(parents) == 1  # IMP and WR prune the same dense run, which stores epoch 1
    assert {s.run_id for s in specs if s.label == "Dense"} == parents  # and it is the Dense row's
    assert next(s for s in specs if s.parent).parent.hp == {"rewind_points": [1]}
    assert {s.hp["retrain_epochs"] for s in specs if s.label == "WR"} == {1}
    stopped = load(str(write_manifest(lambda d: edit(d, row_dense={"stop_epoch": 1}))), "base").expand()
    assert {s.parent.hp.get("stop_epoch") for s in stopped if s.label == "WR"} == {1}
    assert {s.parent.hp.get("stop_epoch") for s in stopped if s.label == "IMP"} == {None}
    with pytest.raises(ConfigError) as error:
        load(str(write_manifest(lambda d: edit(d, t=(2,)))), "base").expand()  # rewinds to epoch 0
    assert error.value.key.endswith("dense.rewind_points") and "[0]" in error.value.message
