"""Collapsed layers (no remaining weight) are found in the loop and named in the record."""

import torch
from torch import nn

from bench.metrics import collapsed_layers

IMP_ONE_CYCLE = {"schedule": "ft", "cycles": 1, "retrain_epochs": 1}


def test_a_layer_collapses_when_its_mask_or_its_weight_has_nothing_left():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].register_buffer("weight_mask", torch.zeros_like(model[0].weight, dtype=torch.bool))
    with torch.no_grad():
        model[2].weight.zero_()
    assert collapsed_layers(model) == ["0", "2"]
    assert collapsed_layers(model, {model[3]: torch.zeros(2, 3)}) == ["0", "2", "3"]


def test_imp_at_999_percent_global_empties_the_last_stage_and_the_classifier(train_tiny):
    record = train_tiny("imp", {**IMP_ONE_CYCLE, "selection": "global"}, goal=0.999, epochs=1).record
    assert record["collapsed_layers"] == "stages.2.conv1;stages.2.conv2;fc"
    assert record["n_collapsed_layers"] == 3
    assert record["collapsed_at"] == ("stages.2.conv1@retrain 1 epoch 0;stages.2.conv2@retrain 1 epoch 0;"
                                      "fc@retrain 1 epoch 0")


def test_dnw_is_caught_collapsing_in_training_through_its_top_k(train_tiny):
    """DNW has no mask in regular training: only the weights of its forward pass show the collapse."""
    record = train_tiny("dnw", {"finetune_fraction": 0.5}, goal=0.999, epochs=2).record
    layers = record["collapsed_layers"].split(";")
    assert record["n_collapsed_layers"] == len(layers) > 0
    assert record["collapsed_at"] == ";".join(f"{layer}@train epoch 1" for layer in layers)


def test_a_run_without_collapse_has_empty_columns(train_tiny):
    record = train_tiny("imp", {**IMP_ONE_CYCLE, "selection": "uniform"}, goal=0.9, epochs=1).record
    assert (record["collapsed_layers"], record["n_collapsed_layers"], record["collapsed_at"]) == ("", 0, "")
