"""What a run does not repeat: a worker reads a dense parent once, and a run's final
accuracies are those its last epoch measured, not measured twice."""

import os

import pandas as pd
import torch

import bench.train
from bench import store as store_module
from bench.store import MODEL, RECORD, RunStore
from bench.train import build_run, cached_dataset, evaluate, load_state, train_run

from conftest import tiny_spec


def stored_parent(store: RunStore, run_id: str, value: float) -> None:
    folder = store.run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.full((3,), value)}, "stored": {2: {"w": torch.full((3,), value - 1)}}},
               folder / MODEL)
    pd.DataFrame([{"run_id": run_id}]).to_parquet(folder / RECORD)


def test_a_parent_is_read_once_per_worker_and_handed_out_as_copies(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "_parents_read", {})
    reads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: reads.append(args[0]) or real_load(*args, **kwargs))
    store = RunStore(tmp_path)
    stored_parent(store, "p1", 5.0)
    first = store.load_parent("p1")
    first.state_dict["w"].zero_()
    first.stored[2]["w"].zero_()
    second = store.load_parent("p1")
    assert len(reads) == 1
    assert second.state_dict["w"].tolist() == [5.0] * 3 and second.stored[2]["w"].tolist() == [4.0] * 3
    stored_parent(store, "p1", 7.0)  # the run written again: read afresh
    os.utime(store.run_dir("p1") / MODEL, ns=(1, 1))
    assert store.load_parent("p1").state_dict["w"].tolist() == [7.0] * 3 and len(reads) == 2
    for i in range(store_module.PARENTS_KEPT):
        stored_parent(store, f"q{i}", float(i))
        store.load_parent(f"q{i}")
    assert len(store_module._parents_read) == store_module.PARENTS_KEPT  # the oldest, p1, let go
    store.load_parent("p1")
    assert len(reads) == 3 + store_module.PARENTS_KEPT


def final_accuracies_measured(data_root, monkeypatch, spec) -> list[str]:
    """Train ``spec`` and check its record's final accuracies are those of its final model;
    returns the splits evaluated, in order."""
    measured = []

    def counted(method, model, data, split, device):
        measured.append(split)
        return evaluate(method, model, data, split, device)
    monkeypatch.setattr(bench.train, "evaluate", counted)
    result = train_run(spec, data_root, log=lambda line: None)
    monkeypatch.undo()
    data = cached_dataset("mnist1d", str(data_root), spec.training["val_fraction"], spec.training["split_seed"])
    run = build_run(spec, data, torch.device("cpu"))
    load_state(run.model, result.state_dict)
    for split in ("test", "val"):
        assert result.record[f"{split}_accuracy"] == evaluate(run.method, run.model, data, split, torch.device("cpu"))
    return measured


def test_a_run_ending_with_an_epoch_takes_its_final_accuracies_from_it(data_root, monkeypatch):
    measured = final_accuracies_measured(data_root, monkeypatch, tiny_spec("dense", goal=None, epochs=2))
    assert measured == ["val", "val", "test"]  # each epoch's validation and the phase's end; nothing after


def test_a_run_ending_with_a_pruning_step_measures_its_final_model(data_root, monkeypatch):
    measured = final_accuracies_measured(data_root, monkeypatch, tiny_spec("gmp", goal=0.9, epochs=2))
    assert measured[-2:] == ["test", "val"]  # GMP's final prune is a phase of no epochs
