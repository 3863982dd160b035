"""Bad input through the command line: every malformed manifest and command line exits 2
with a message naming the file and the key, submits nothing and writes nothing under results/."""

import pytest

from bench.cli import main
from manifest_edits import append, remove, set_in

MANIFESTS = [
    # (edit, key in the message, words in the message)
    (set_in(["training", "epocs"], 3), "training.epocs", "did you mean 'epochs'"),
    (set_in(["colour"], "red"), "colour", "unknown key"),
    (set_in(["rows", 1, "method"], "imq"), "rows[1].method", "did you mean 'imp'"),
    (set_in(["training", "model"], "resnet1e"), "training.model", "did you mean 'resnet1d'"),
    (set_in(["training", "dataset"], "mnist1"), "training.dataset", "did you mean 'mnist1d'"),
    (set_in(["training", "epochs"], 0), "training.epochs", "must be positive"),
    (set_in(["training", "epochs"], -3), "training.epochs", "must be positive"),
    (set_in(["training", "epochs"], "ten"), "training.epochs", "expected int"),
    (set_in(["training", "lr"], True), "training.lr", "boolean"),
    (set_in(["goal_sparsities"], [0.5, 1.0]), "goal_sparsities[1]", "must be below 1"),
    (set_in(["goal_sparsities"], [-0.1]), "goal_sparsities[0]", "at least 0"),
    (set_in(["goal_sparsities"], []), "goal_sparsities", "must not be empty"),
    (set_in(["seeds"], []), "seeds", "must not be empty"),
    (set_in(["rows", 1, "grid", "cycles"], []), "rows[1].grid.cycles", "non-empty list"),
    (set_in(["rows", 1, "grid", "cycles"], 2), "rows[1].grid.cycles", "non-empty list"),
    (set_in(["rows", 1, "grid", "cycles"], [0]), "rows[1].grid.cycles[0]", "must be positive"),
    (set_in(["rows", 1, "params", "schedule"], "slow"), "rows[1].params.schedule", "did you mean 'slr'"),
    (set_in(["rows", 1, "grid", "retrain_epoch"], [1]), "rows[1].grid.retrain_epoch", "did you mean 'retrain_epochs'"),
    (set_in(["rows", 1, "constraint"], "cycles * retrain <= epochs"), "rows[1].constraint", "unknown name 'retrain'"),
    (set_in(["rows", 1, "constraint"], "cycles * <= epochs"), "rows[1].constraint", "invalid expression"),
    (set_in(["rows", 1, "search"], {"rounds": 1}), "rows[1].search", "only a method that learns it"),
    (set_in(["rows", 1, "search"], {"rounds": 11}), "rows[1].search.rounds", "at most 10"),
    (set_in(["rows", 1, "search"], {"round": 1}), "rows[1].search.round", "did you mean 'rounds'"),
    (set_in(["rows", 1, "constraint"], "__import__('os')"), "rows[1].constraint", "not allowed"),
    (remove(["rows", 1, "grid", "retrain_epochs"]), "rows[1].params.retrain_epochs", "required by method"),
    (set_in(["rows", 0, "label"], "IMP"), "rows[1].label", "duplicate label"),
    (remove(["training", "model"]), "training.model", "missing required key"),
    (set_in(["training", "lr_schedule", "kind"], "steped"), "training.lr_schedule.kind", "did you mean 'stepped'"),
    (set_in(["training", "momentum"], 1.5), "training.momentum", "must be below 1"),
    (set_in(["report"], {"columns": ["acuracy"]}),
     "report.columns[0]", "did you mean 'accuracy'"),
    (set_in(["profiles", "quick", "training"], {"epocs": 3}), "profiles.quick: training.epocs", "unknown key"),
    (set_in(["profiles", "quick", "rows"], {"IMQ": {"grid": {"cycles": [1]}}}), "profiles.quick.rows.IMQ",
     "no row labelled"),
    (set_in(["profiles", "quick", "goal_sparsities"], [1.2]), "profiles.quick: goal_sparsities[0]", "below 1"),
    (set_in(["claims"], [{"text": "x", "better": "IMQ", "worse": "Dense"}]), "claims[0].better", "did you mean 'IMP'"),
    (set_in(["claims"], [{"text": "x", "better": "IMP", "worse": "Dense", "metric": "acc"}]), "claims[0].metric",
     "unknown value 'acc'"),
    (set_in(["claims"], [{"text": "x", "better": "IMP", "worse": "Dense",
                          "belief": {"text": "y", "better": "Dense", "worse": "IMQ"}}]),
     "claims[0].belief.worse", "did you mean 'IMP'"),
    (set_in(["claims"], [{"text": "x", "better": "IMP", "worse": "Dense", "belief": "y"}]), "claims[0].belief",
     "expected dict"),
    (set_in(["rows", 1, "diagnostic"], "yes"), "rows[1].diagnostic", "expected bool"),
    (set_in(["extends"], "table-imp-vs-stabel"), "extends", "did you mean 'table-imp-vs-stable'"),
    (set_in(["report"], {"kind": "figure"}), "report.kind", "unknown value 'figure'"),
    (set_in(["report"], {"select_by": "test_accuracy"}), "report.select_by", "unknown value 'test_accuracy'"),
    (set_in(["report"], {"kind": "rewinding", "figures": ["speedups"]}), "report.figures[0]", "did you mean 'speedup'"),
    (set_in(["report"], {"kind": "trade_off", "groups": {"before_training": ["IMQ"]}}),
     "report.groups.before_training[0]", "did you mean 'IMP'"),
    (set_in(["report"], {"kind": "trade_off", "groups": {"before_training": "IMP"}}), "report.groups.before_training",
     "must be a list of row labels"),
    # What a method rejects while planning is bad input too, found before anything runs.
    (append(["rows"], {"label": "BIMP", "method": "bimp", "grid": {"initial_epochs": [1, 2], "cycles": [1]}}),
     "rows[2].grid.initial_epochs", "2 leaves 0 epochs of the 2-epoch budget for 1 cycles"),
    (set_in(["rows", 1, "params", "cycles"], 0), "rows[1].params.cycles", "must be positive"),
    (set_in(["rows", 1, "params", "cycles"], 5000), "rows[1].params.cycles", "must be at most 1000"),
    (set_in(["params"], {"finetune_fraction": 0.3}), "params.finetune_fraction", "not a parameter of any row"),
    # Nothing takes unbounded time or memory to evaluate.
    (set_in(["rows", 1, "constraint"], "9 ** 9 ** 9 ** 9 > cycles"), "rows[1].constraint", "cannot be evaluated"),
    (set_in(["rows", 1, "constraint"], "'ab' * 10 ** 12 == schedule"), "rows[1].constraint", "no arithmetic on"),
    (set_in(["rows", 1, "constraint"], "cycles < " + "1 + " * 200 + "1"), "rows[1].constraint", "longer than 500"),
    (set_in(["rows", 1, "grid"], {"retrain_epochs": list(range(1, 101)), "cycles": list(range(1, 101)),
                                  "lr": [0.1 * i for i in range(1, 101)]}),
     "rows[1].grid", "more than 200,000 runs"),
]




COMMAND_LINES = [
    # (arguments after `prunebench`, words in the message)
    (["run", "table-imp-vs-stabel"], "did you mean 'table-imp-vs-stable'"),
    (["status", "fig-stabilty"], "did you mean 'fig-stability'"),
    (["run", "table-imp-vs-stable", "--profile", "gpu"], "unknown profile 'gpu'"),
    (["run", "table-imp-vs-stable", "--executor", "slurmm"], "--executor: unknown executor 'slurmm'"),
    (["run", "table-imp-vs-stable", "--jobs", "0"], "--jobs: must be at least 1"),
    (["run", "table-imp-vs-stable", "--no-wait"], "--no-wait: needs --executor slurm"),
    (["run", "table-imp-vs-stable", "--profile", "smoke", "--time-min", "0"], "command line: slurm.time_min"),
    (["run", "table-imp-vs-stable", "--profile", "smoke", "--cpus-per-task", "-2"], "slurm.cpus_per_task"),
    (["run", "table-imp-vs-stable", "--profile", "smoke", "--array-parallelism", "0"], "slurm.array_parallelism"),
    (["run", "table-imp-vs-stable", "--time-min", "an hour"], "argument --time-min: invalid int value"),
    (["run", "table-imp-vs-stable", "--profile", "smoke", "--executor", "slurm", "--partition", "gpu"],
     "--executor: executor 'slurm' needs SLURM, but sbatch is not on this machine's PATH"),
    (["run", "table-imp-vs-stable", "--profile", "paper", "--executor", "inline"], "cifar-10-batches-py"),
    (["report"], "target: name a target or pass --all"),
    (["run", "table-imp-vs-stable", "--profile", "smoke", "--data-root", "/etc/hostname"],
     "--data-root (or $PRUNEBENCH_DATA): /etc/hostname is not a directory"),
]


@pytest.fixture
def no_slurm(monkeypatch, tmp_path):
    """A PATH without sbatch: whatever the machine has, nothing can be submitted."""
    (tmp_path / "empty-path").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))


def prunebench(argv: list[str], tmp_path, data_root, capsys) -> tuple[int, str]:
    """Exit code and standard error of `prunebench <argv>` with results and reports under tmp_path."""
    where = {"run": ["--results", str(tmp_path / "results"), "--reports", str(tmp_path / "reports"),
                     "--data-root", str(data_root)],
             "report": ["--results", str(tmp_path / "results"), "--reports", str(tmp_path / "reports")],
             "status": ["--results", str(tmp_path / "results")]}[argv[0]]
    try:
        code = main([argv[0], *where, *argv[1:]])  # options in argv come last, so they win
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    return code, capsys.readouterr().err


def assert_nothing_written(tmp_path):
    assert not (tmp_path / "results").exists() and not (tmp_path / "reports").exists()


@pytest.mark.parametrize("edit, key, words", MANIFESTS)
def test_a_bad_manifest_exits_2_naming_file_and_key(write_manifest, tmp_path, data_root, capsys, no_slurm,
                                                    edit, key, words):
    path = write_manifest(edit)
    code, error = prunebench(["run", str(path), "--profile", "quick"], tmp_path, data_root, capsys)
    assert code == 2 and str(path) in error and key in error and words in error, error
    assert_nothing_written(tmp_path)


def test_invalid_toml_exits_2_naming_the_file(tmp_path, data_root, capsys, no_slurm):
    path = tmp_path / "broken.toml"
    path.write_text("title = \n")
    code, error = prunebench(["run", str(path)], tmp_path, data_root, capsys)
    assert code == 2 and f"{path}: not valid TOML" in error, error
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("argv, words", COMMAND_LINES)
def test_a_bad_command_line_exits_2_naming_the_option(tmp_path, data_root, capsys, no_slurm, argv, words):
    code, error = prunebench(argv, tmp_path, data_root, capsys)
    assert code == 2 and words in error, error
    assert_nothing_written(tmp_path)


def test_a_huge_manifest_file_is_refused_before_it_is_parsed(tmp_path, data_root, capsys, no_slurm):
    path = tmp_path / "huge.toml"
    path.write_text("# padding\n" * 200_000)
    code, error = prunebench(["run", str(path)], tmp_path, data_root, capsys)
    assert code == 2 and f"{path}: larger than 1,000,000 bytes" in error, error
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("value", ["soon", "-5", "nan"])
def test_a_bad_checkpoint_interval_exits_2_naming_the_variable(tmp_path, data_root, capsys, no_slurm, monkeypatch,
                                                               value):
    monkeypatch.setenv("PRUNEBENCH_CHECKPOINT_SECONDS", value)
    code, error = prunebench(["run", "table-imp-vs-stable", "--profile", "smoke"], tmp_path, data_root, capsys)
    assert code == 2 and "$PRUNEBENCH_CHECKPOINT_SECONDS" in error and repr(value) in error, error
    assert_nothing_written(tmp_path)
