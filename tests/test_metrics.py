"""Theoretical speedup, sparsity and compression of tiny networks against hand counts; the
SNIP-it paper's node sparsity, CSR disk size, training FLOPs, RAM and inference throughput."""

import math
import statistics
import time

import pytest
import torch
from torch import nn

from bench.metrics import csr_bits, disk_bits, flops, node_sparsity, pruning_stability, sparsity_report
from bench.train import build_run, cached_dataset, load_state, make_record
from methods.core.masks import mask_of
from models import build_model

from conftest import tiny_spec


def hand_net():
    net = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(16, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
        net[0].weight.view(-1)[:3] = 0  # conv: 3 of 6 weights zero -> density 1/2
        net[2].weight.view(-1)[:48] = 0  # linear: 48 of 64 zero -> density 1/4
    return net


def test_speedup_sparsity_and_compression_by_hand():
    # conv: C_in * C_out * k * positions = 1 * 2 * 3 * 8 = 48 FLOPs; linear: 16 * 4 = 64 FLOPs.
    # nonzero: 48 / 2 + 64 / 4 = 40; speedup 112 / 40 = 2.8.
    report = sparsity_report(hand_net(), torch.randn(5, 1, 10))
    assert report["theoretical_speedup"] == pytest.approx(2.8)
    assert report["sparsity"] == pytest.approx(51 / 70)
    assert report["sparsity_overall"] == pytest.approx(51 / 76)  # 6 biases, all nonzero
    assert report["compression_ratio"] == pytest.approx(70 / 19)


def test_conv_flops_count_groups_stride_and_padding():
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
    # C_in / groups * C_out * 3 * 3 * (4 * 4 output positions) = 2 * 8 * 9 * 16
    assert flops(conv, torch.randn(3, 4, 8, 8)) == (2304, 2304.0)


def test_dense_network_has_speedup_one():
    report = sparsity_report(nn.Sequential(nn.Conv1d(1, 4, 3), nn.Flatten(), nn.Linear(32, 2)), torch.randn(1, 1, 10))
    assert report["theoretical_speedup"] == pytest.approx(1.0)
    assert report["compression_ratio"] == pytest.approx(1.0)


def test_pruning_stability_definition_a1():
    assert pruning_stability(0.9, 0.9) == 1.0
    assert pruning_stability(0.8, 0.6) == pytest.approx(0.75)
    assert math.isnan(pruning_stability(math.nan, math.nan))


# --- the SNIP-it paper's measures -------------------------------------------------------------

def test_node_sparsity_counts_masked_or_zero_units_of_every_layer_but_the_last():
    net = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 5), nn.ReLU(), nn.Linear(5, 2))
    with torch.no_grad():
        mask_of(net[0])[1] = False  # a filter masked (its weights not yet zeroed)
        net[3].weight[3] = 0  # a unit whose weights are all zero, without a mask
        net[3].weight[0, :31] = 0  # one weight left: kept
        net[5].weight[1] = 0  # a class: no node
    assert node_sparsity(net) == pytest.approx(2 / 9)  # 4 filters + 5 units
    assert not hasattr(net[3], "weight_mask")  # measuring made no mask


def test_csr_size_of_a_hand_matrix():
    # 4 nonzeros: 4 * (32 + 2) bits, and 2-bit pointers for the 3 rows plus one = 144 bits.
    matrix = torch.tensor([[0, 1.5, 0, 0], [2, 0, 0, 3], [0, 0, 0, 4]])
    assert csr_bits(int(matrix.count_nonzero()), *matrix.shape) == 144
    assert csr_bits(3, 4, 2) == 3 * 34 + 2 * 3  # more rows than columns: pointers per column
    linear, norm = nn.Linear(4, 3, bias=False), nn.BatchNorm1d(3)
    with torch.no_grad():
        linear.weight.copy_(matrix)
        norm.weight.copy_(torch.tensor([1.0, 0.0, 1.0]))
    net = nn.Sequential(linear, norm).eval()
    # the BatchNorm's weight is a 3 x 1 matrix: 2 * 34 + 2 * (1 + 1) = 72 bits (dense 106); its bias not counted
    assert disk_bits(net, torch.randn(2, 4)) == (12 * 34 + 8 + 106, 144 + 72)
    report = sparsity_report(net, torch.randn(2, 4))
    assert report["disk_bytes"] == 27.0
    assert report["disk_reduction"] == pytest.approx(522 / 216)


def test_structured_csr_size_drops_the_readers_and_the_batchnorm_of_a_removed_filter():
    net = nn.Sequential(nn.Conv1d(1, 2, 3, bias=False), nn.BatchNorm1d(2), nn.ReLU(), nn.Flatten(),
                        nn.Linear(16, 2, bias=False)).eval()
    with torch.no_grad():
        mask_of(net[0])[0] = False
        net[0].weight[0] = 0
    example = torch.randn(1, 1, 10)
    conv, dense_linear = 3 * 34 + 2 * 3, 32 * 34 + 2 * 3  # 3 nonzeros in 2 x 3; all 32 of 2 x 16
    assert disk_bits(net, example)[1] == conv + (2 * 34 + 4) + dense_linear
    # filter 0 removed: its BatchNorm weight and the 8 columns of each linear unit reading it go
    assert disk_bits(net, example, structured=True) == (6 * 34 + 6 + 2 * 34 + 4 + dense_linear,
                                                        conv + (34 + 4) + (16 * 34 + 2 * 3))
    assert node_sparsity(net) == 0.5


def test_a_run_records_training_flops_memory_and_inference_throughput(train_tiny, data_root):
    def model_flops(result):
        data = cached_dataset(result.record["dataset"], str(data_root), 0.1, 0)  # the default split
        model = build_model(result.record["model"], data.num_classes, data.in_channels)
        load_state(model, result.state_dict)
        return data.train_size, flops(model, next(data.eval_batches("test", 1, "cpu"))[0])

    dense = train_tiny("dense", epochs=2)
    samples, (dense_flops, _) = model_flops(dense)
    assert dense.record["train_flops"] == pytest.approx(2 * samples * dense_flops)
    assert dense.record["train_flops_reduction"] == pytest.approx(1.0)
    assert dense.record["node_sparsity"] == 0.0
    memory = [row["ram_bytes"] for row in dense.history]
    assert len(memory) == 2 and min(memory) > 0 and dense.record["ram_bytes"] == statistics.median(memory)
    assert dense.record["inference_images_per_second"] > 0
    pruned = train_tiny("random-init", goal=0.9, epochs=2)  # pruned before training, the mask kept
    _, (_, nonzero) = model_flops(pruned)
    assert pruned.record["train_flops"] == pytest.approx(2 * samples * nonzero)
    assert pruned.record["train_flops_reduction"] == pytest.approx(pruned.record["theoretical_speedup"])
    assert pruned.record["disk_reduction"] > 1


def test_a_pruned_run_adds_its_parents_training_flops(data_root):
    spec = tiny_spec("imp", {"cycles": 1, "retrain_epochs": 1}, epochs=3)
    data = cached_dataset(spec.training["dataset"], str(data_root), spec.training["val_fraction"],
                          spec.training["split_seed"])
    run = build_run(spec, data, torch.device("cpu"))
    dense_flops = flops(run.model, next(data.eval_batches("test", 1, "cpu"))[0])[0]
    record = make_record(run, {"epochs": 3, "train_flops": 7.0}, 0.5, 0.5, time.perf_counter(), 1.0)
    assert record["train_flops"] == 7.0  # nothing trained yet: the parent's
    # a parent recorded before the column existed is a dense run: 3 epochs at the dense FLOPs
    record = make_record(run, {"epochs": 3}, 0.5, 0.5, time.perf_counter(), 1.0)
    assert record["train_flops"] == 3 * data.train_size * dense_flops
    assert record["train_flops_reduction"] == pytest.approx(1.0)  # T = 3 epochs, all dense
    assert record["inference_images_per_second"] == data.test_size
