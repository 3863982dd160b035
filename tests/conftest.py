"""Shared fixtures: a valid manifest written to a temporary file, edited per test."""

import copy
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from bench.manifest import manifest_dir
from slurm_fixtures import slurm_cluster  # noqa: F401  (session fixture of the tests marked slurm)

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one thread each
    torch.set_num_threads(1)

SMALL = {
    "title": "test table",
    "source": "tests",
    "goal_sparsities": [0.5, 0.9],
    "seeds": [0],
    "training": {
        "model": "resnet1d", "dataset": "mnist1d", "epochs": 2, "batch_size": 128, "lr": 0.1,
        "weight_decay": 5e-4, "lr_schedule": {"kind": "stepped", "milestones": [1], "gamma": 0.1},
    },
    "rows": [
        {"label": "Dense", "method": "dense"},
        {"label": "IMP", "method": "imp", "params": {"schedule": "slr"},
         "grid": {"retrain_epochs": [1], "cycles": [1, 2]}, "constraint": "cycles * retrain_epochs <= epochs"},
    ],
    "profiles": {"quick": {"seeds": [0, 1]}},
}


def dump_toml(data: dict) -> str:
    """A minimal TOML writer for the test manifests (tables, arrays of tables, scalars, lists)."""
    def scalar(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f'"{k}" = {scalar(x)}' for k, x in v.items()) + " }"
        return repr(v)

    lines = [f'"{k}" = {scalar(v)}' for k, v in data.items() if not isinstance(v, (dict, list)) or
             (isinstance(v, list) and not (v and isinstance(v[0], dict)))]
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f'["{key}"]')
            lines += [f'"{k}" = {scalar(v)}' for k, v in value.items()]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines.append(f'[["{key}"]]')
                lines += [f'"{k}" = {scalar(v)}' for k, v in item.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def write_manifest(tmp_path):
    """write_manifest(edit) -> path of a manifest: SMALL after ``edit(dict)`` (in place)."""
    def write(edit=None, name="small.toml") -> Path:
        data = copy.deepcopy(SMALL)
        if edit:
            edit(data)
        path = tmp_path / name
        path.write_text(dump_toml(data))
        assert edit or tomllib.loads(path.read_text()) == data
        return path
    return write


@pytest.fixture
def shipped_manifest():
    return lambda target: manifest_dir() / f"{target}.toml"


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """One data root per test session: MNIST-1D is generated there once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def small_data_root(tmp_path_factory, data_root):
    """A data root whose MNIST-1D is the full one's first 800 training and 200 test signals,
    for tests that train many runs and whose assertions hold at any size of the data (a resumed
    run ends as the uninterrupted one did): an epoch there takes a fifth of the time."""
    from bench.data import mnist1d_arrays, save_atomically

    full = mnist1d_arrays(data_root / "mnist1d")
    (cached,) = (data_root / "mnist1d").glob("*.npz")
    root = tmp_path_factory.mktemp("small-data")
    save_atomically(root / "mnist1d" / cached.name, {key: full[key][:800 if key in ("x", "y") else 200]
                                                     for key in ("x", "y", "x_test", "y_test")})
    return root


@pytest.fixture
def dirs(tmp_path, data_root):
    """A results and a reports folder, and the CLI flags that point at them and the data root."""
    results, reports = tmp_path / "results", tmp_path / "reports"
    return results, reports, ["--results", str(results), "--reports", str(reports), "--data-root", str(data_root)]


@pytest.fixture(scope="session")
def smoke_inline(tmp_path_factory, data_root):
    """(results, reports) of the headline table's smoke grid, run once per session through
    `prunebench run --executor inline` in a subprocess, for every test that needs its runs."""
    base = tmp_path_factory.mktemp("smoke-inline")
    results, reports = base / "results", base / "reports"
    done = subprocess.run([sys.executable, "-m", "bench.cli", "run", "table-imp-vs-stable", "--profile", "smoke",
                           "--executor", "inline", "--quiet", "--results", str(results), "--reports", str(reports),
                           "--data-root", str(data_root)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return results, reports


TINY_TRAINING = {"model": "resnet1d", "dataset": "mnist1d", "epochs": 2, "batch_size": 128, "lr": 0.1,
                 "weight_decay": 5e-4, "lr_schedule": {}}


def dry_run_every_profile(target: str, results: Path) -> None:
    """Validate ``target`` and dry-run each of its profiles through the CLI, the printed lines
    left for the caller's capsys."""
    from bench.cli import main
    from bench.manifest import load_all_profiles

    assert main(["validate", target]) == 0
    for manifest in load_all_profiles(target)[1:]:
        assert main(["run", target, "--profile", manifest.profile, "--dry-run", "--results", str(results)]) == 0


def tiny_training(**training) -> dict:
    """A full training configuration (every default filled in) for resnet1d on MNIST-1D."""
    from bench.manifest import training_config

    return training_config({**TINY_TRAINING, **training})


def make_method(name: str, hp: dict | None = None, goal: float | None = 0.9, **training):
    """Method ``name`` with its hyperparameters resolved from ``hp`` (defaults filled in, values
    checked), on a full training configuration; goal None for methods that take none."""
    from methods import METHODS

    cls = METHODS[name]
    return cls(cls.resolve(hp or {}), tiny_training(**training), goal if cls.takes_goal else None)


def tiny_spec(method: str, hp: dict | None = None, goal: float | None = 0.9, epochs: int = 2, seed: int = 0,
              **training):
    """A resolved RunSpec for ``method`` on resnet1d / MNIST-1D, its defaults filled in."""
    from bench.runspec import RunSpec

    built = make_method(method, hp, goal, epochs=epochs, **training)
    return RunSpec(method, seed, built.training, built.hp, built.goal_sparsity, revision=built.revision)


@pytest.fixture
def train_tiny(data_root):
    """train_tiny(method, hp, goal, epochs, **training) -> bench.train.RunResult of a real run
    through the one training loop (resnet1d on MNIST-1D; about half a second per epoch)."""
    from bench.train import train_run

    def train(method, hp=None, goal=0.9, epochs=2, **training):
        return train_run(tiny_spec(method, hp, goal, epochs, **training), data_root, log=lambda line: None)
    return train


def assert_state_pruned_to(result, goal: float) -> None:
    """A finished run's state dict has exactly round(goal * n) masked weights, all of them zero,
    and its record reports that sparsity."""
    state = result.state_dict
    masks = {key: mask for key, mask in state.items() if key.endswith("weight_mask")}
    n = sum(mask.numel() for mask in masks.values())
    zeros = sum(int((~mask).sum()) for mask in masks.values())
    assert zeros == round(goal * n) and result.record["sparsity"] == pytest.approx(zeros / n)
    for key, mask in masks.items():
        assert not state[key.replace("weight_mask", "weight")][~mask].any()
