"""The README's "Adding a method", as a user follows it: the example method is written into a
package of its own outside the checkout, named in $PRUNEBENCH_PLUGINS, described, and run
with the README's one-row manifest through `prunebench run` (with a local worker process)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).parents[1] / "README.md"


def readme_blocks(language: str) -> list[str]:
    section = README.read_text().split("## Adding a method", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


@pytest.fixture
def plugin_env(tmp_path):
    package = tmp_path / "plugins" / "my_methods"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "oneshot.py").write_text(readme_blocks("python")[0])
    path = os.pathsep.join(filter(None, [str(tmp_path / "plugins"), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PRUNEBENCH_PLUGINS": "my_methods.oneshot"}


def prunebench(*argv, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *argv], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_the_readme_method_runs_from_a_package_of_its_own(plugin_env, tmp_path, data_root):
    described = prunebench("describe", "oneshot_ft", env=plugin_env, cwd=tmp_path)
    assert described.returncode == 0, described.stderr
    assert "oneshot_ft (my_methods/oneshot.py; Han et al. (2015))" in described.stdout
    assert "retrain_epochs: int, default 2; > 0 [T_rt]: epochs of FT retraining" in described.stdout

    manifest = tmp_path / "oneshot.toml"
    manifest.write_text(readme_blocks("toml")[0])
    run = prunebench("run", str(manifest), "--jobs", "2", "--quiet", "--results", str(tmp_path / "results"),
                     "--reports", str(tmp_path / "reports"), "--data-root", str(data_root),
                     env=plugin_env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "3 runs, 0 done, 3 to run" in run.stdout  # the dense parent and two goal sparsities
    records = pd.concat(pd.read_parquet(path) for path in (tmp_path / "results" / "runs").glob("*/record.parquet"))
    pruned = records[records["method"] == "oneshot_ft"].set_index("goal_sparsity")
    assert sorted(pruned.index) == [0.5, 0.9]
    assert pruned.loc[0.9, "sparsity"] == pytest.approx(0.9, abs=1e-4)
    assert pruned.loc[0.9, "epochs"] == 3  # two of the dense parent, one of FT


def test_a_method_the_readme_way_rejects_a_budget_it_cannot_run(plugin_env, tmp_path):
    manifest = tmp_path / "oneshot.toml"
    manifest.write_text(readme_blocks("toml")[0].replace("retrain_epochs = [1]", "retrain_epochs = [1, 3]"))
    checked = prunebench("validate", str(manifest), env=plugin_env, cwd=tmp_path)
    assert checked.returncode == 2
    assert f"{manifest}: rows[0].grid.retrain_epochs: 3 is longer than the training budget 2" in checked.stderr
