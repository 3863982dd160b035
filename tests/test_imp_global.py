"""IMP-global (the SNIP-it paper's reference): when it prunes, how much, globally by
magnitude, and the weights it rewinds to, on two 2x2 layers whose "training" the test
writes in by hand; then a run through the one loop."""

import pytest
import torch
from torch import nn

from methods.core.masks import mask_of
from schema import ConfigError

from conftest import assert_state_pruned_to, make_method

# d = 1, tau = 2, T = 8: pruning times after epochs 3, 5, 7 (counted from 0); goal 0.75 with
# s = 0: the sparsities 0.5 and 0.75, so the steps after epochs 3 and 5, a rewind alone after 7.
HP = {"steps": 0, "prune_delay": 1, "prune_interval": 2, "rewind_epoch": 1}
KEPT = ([[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]])  # the weights at the end of epoch 1


def two_layers() -> nn.Sequential:
    """Linear(2, 2) with bias, then Linear(2, 2) without: 8 prunable weights."""
    return nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, bias=False))


def trained_to(model: nn.Sequential, first, second, bias=(0.0, 0.0)) -> None:
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(first))
        model[1].weight.copy_(torch.tensor(second))
        model[0].bias.copy_(torch.tensor(bias))


def weights(model: nn.Sequential) -> tuple[list, list]:
    return model[0].weight.tolist(), model[1].weight.tolist()


def masks(model: nn.Sequential) -> tuple[list, list]:
    return mask_of(model[0]).int().tolist(), mask_of(model[1]).int().tolist()


@pytest.fixture
def pruned_twice():
    """(method, model) after the epochs 0 to 6 of a run of rewind_after_goal's choice."""
    def run(rewind_after_goal: bool):
        method = make_method("imp-global", {**HP, "rewind_after_goal": rewind_after_goal}, 0.75, epochs=8)
        method.phases()
        model = two_layers()
        trained_to(model, [[9.0, 9.0], [9.0, 9.0]], [[9.0, 9.0], [9.0, 9.0]])
        method.end_epoch(model, 0)
        assert not hasattr(model[0], "weight_mask") and weights(model)[0] == [[9.0, 9.0], [9.0, 9.0]]
        trained_to(model, *KEPT)
        method.end_epoch(model, 1)  # kept to rewind to
        trained_to(model, [[0.8, -0.1], [0.6, 0.2]], [[-0.4, 0.3], [0.7, 0.05]], bias=(0.5, -0.5))
        method.end_epoch(model, 2)
        assert not hasattr(model[0], "weight_mask")
        method.end_epoch(model, 3)  # 4 of 8 pruned: |w| 0.05, 0.1, 0.2, 0.3 over both layers
        assert masks(model) == ([[1, 0], [1, 0]], [[1, 0], [1, 0]])
        assert weights(model) == ([[1.0, 0.0], [3.0, 0.0]], [[5.0, 0.0], [7.0, 0.0]])
        assert model[0].bias.tolist() == [0.5, -0.5]  # biases are not rewound
        trained_to(model, [[0.9, 0.0], [-0.2, 0.0]], [[0.5, 0.0], [0.3, 0.0]])
        method.end_epoch(model, 4)
        method.end_epoch(model, 5)  # 6 of 8: the zeros and then |w| 0.2, 0.3
        assert masks(model) == ([[1, 0], [0, 0]], [[1, 0], [0, 0]])
        assert weights(model) == ([[1.0, 0.0], [0.0, 0.0]], [[5.0, 0.0], [0.0, 0.0]])
        trained_to(model, [[2.5, 0.0], [0.0, 0.0]], [[-1.5, 0.0], [0.0, 0.0]])
        method.end_epoch(model, 6)
        return method, model
    return run


def test_it_prunes_after_the_pruning_epochs_and_rewinds_to_the_kept_weights_masked(pruned_twice):
    method, model = pruned_twice(rewind_after_goal=True)
    assert method.pruning_times() == [3, 5, 7] and method.sparsities() == [0.5, 0.75]
    method.end_epoch(model, 7)  # the authors' trainer rewinds at every pruning time after the goal too
    assert masks(model) == ([[1, 0], [0, 0]], [[1, 0], [0, 0]])
    assert weights(model) == ([[1.0, 0.0], [0.0, 0.0]], [[5.0, 0.0], [0.0, 0.0]])


def test_the_papers_reading_rewinds_only_with_a_pruning_step(pruned_twice):
    method, model = pruned_twice(rewind_after_goal=False)
    method.end_epoch(model, 7)
    assert weights(model) == ([[2.5, 0.0], [0.0, 0.0]], [[-1.5, 0.0], [0.0, 0.0]])


def test_the_authors_defaults_prune_after_epochs_8_to_32_and_rewind_until_training_ends():
    method = make_method("imp-global", {}, 0.98, epochs=80)
    method.phases()
    assert method.pruning_times()[:7] == [8, 12, 16, 20, 24, 28, 32] and method.pruning_times()[-1] == 76
    assert len(method.sparsities()) == 7 and method.hp["rewind_epoch"] == 6


@pytest.mark.parametrize("hp, goal, epochs, key", [
    ({}, 0.4, 80, "goal_sparsity"),
    ({}, 0.9, 32, "prune_interval"),  # the 7th step would follow epoch 32
    ({"rewind_epoch": 8}, 0.9, 80, "rewind_epoch"),
])
def test_it_refuses_what_its_schedule_cannot_do(hp, goal, epochs, key):
    with pytest.raises(ConfigError) as error:
        make_method("imp-global", hp, goal, epochs=epochs).phases()
    assert error.value.key == key


def test_it_reaches_the_goal_through_the_loop(train_tiny):
    result = train_tiny("imp-global", {"steps": 0, "prune_delay": 0, "prune_interval": 1, "rewind_epoch": 0},
                        goal=0.9, epochs=3)
    assert result.record["status"] == "ok"
    assert_state_pruned_to(result, 0.9)
