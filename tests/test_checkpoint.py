"""Epoch checkpoints: a run interrupted anywhere resumes to the record it would have had."""

import pytest

from bench.train import train_run

from conftest import tiny_spec


class Interrupt(Exception):
    pass


def interrupt_after(lines: int):
    """A log callback that stops the run at its ``lines``-th log line (an epoch or a prune)."""
    seen = []

    def log(line):
        seen.append(line)
        if len(seen) == lines:
            raise Interrupt(line)
    return log


COMPARED = ("test_accuracy", "val_accuracy", "sparsity", "accuracy_before_prune", "accuracy_after_prune",
            "epochs", "theoretical_speedup")


@pytest.mark.parametrize("method, hp, stops", [
    ("bimp", {"initial_epochs": 1, "cycles": 2}, [2, 4]),  # right after a prune, then in the next cycle
    ("gmp", {"steps": 4, "finetune_fraction": 0.5}, [2, 3]),   # GMP's schedule state survives
    ("str", {"s_init": -3.0, "finetune_fraction": 0.5}, [2]),  # a pruned-away threshold tensor survives
])
def test_interrupted_runs_resume_to_the_same_record(data_root, tmp_path, method, hp, stops):
    spec = tiny_spec(method, hp, goal=0.9, epochs=3)
    reference = train_run(spec, data_root, log=lambda line: None)
    checkpoint = tmp_path / "run.pt"
    for stop in stops:
        with pytest.raises(Interrupt):
            train_run(spec, data_root, log=interrupt_after(stop), checkpoint=checkpoint)
        assert checkpoint.exists()
    lines = []
    resumed = train_run(spec, data_root, log=lines.append, checkpoint=checkpoint)
    assert any(line.startswith("resumed from") for line in lines)
    for key in COMPARED:
        assert resumed.record[key] == reference.record[key] or (
            resumed.record[key] != resumed.record[key] and reference.record[key] != reference.record[key]), key
    for key, value in reference.state_dict.items():
        assert (resumed.state_dict[key] == value).all(), key
    assert [h["val_accuracy"] for h in resumed.history] == [h["val_accuracy"] for h in reference.history]
