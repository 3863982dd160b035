"""The package as users get it: a wheel built from the checkout, installed (not editable) into a
fresh virtual environment and run from a directory outside the checkout."""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from conftest import SMALL, dump_toml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "methods", "models", "schema")
# Every command runs without the checkout on its path (the suite may run with PYTHONPATH=<checkout>).
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PRUNEBENCH_DATA")}

# Two runs of two epochs each: a dense model and IMP pruning it to 90%.
TINY = {**SMALL, "title": "install check", "goal_sparsities": [0.9], "profiles": {},
        "rows": [SMALL["rows"][0], {**SMALL["rows"][1], "grid": {"retrain_epochs": [1], "cycles": [1]}}]}

# Run in the fresh venv: where the project's packages come from, and whether an editable finder is active.
WHERE = """
import json, sys, sysconfig
import bench, methods, models, schema
print(json.dumps({"site": sysconfig.get_path("purelib"),
                  "paths": {m.__name__: list(m.__path__) for m in (bench, methods, models, schema)},
                  "finders": [repr(f) for f in sys.meta_path],
                  "sys_path": sys.path}))
"""


def check(command: list, **kwargs) -> str:
    """Run ``command`` in ENV; fail with its output unless it exits 0; return stdout and stderr."""
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300, env=ENV, **kwargs)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{output[-4000:]}"
    return output


def build_wheel(tmp: Path) -> Path:
    """Copy the checkout's sources to ``tmp`` (the build leaves nothing in the checkout) and build a wheel,
    verbosely, so setuptools' warnings show."""
    src = tmp / "src"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "MANIFEST.in"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    output = check([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", tmp / "dist", src])
    assert not re.findall(r"\w+Warning\b.*", output), "the build warns"
    (wheel,) = (tmp / "dist").glob("prunebench-*.whl")
    return wheel


def fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A venv holding only the wheel; the dependencies come from this interpreter's site-packages through
    a .pth file, added after the install. A path in a .pth file is appended to sys.path after the venv's
    own site-packages and its .pth files are not processed, so the editable finder installed there for
    the checkout stays inactive."""
    venv = tmp / "venv"
    check([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    check([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel])
    site = Path(check([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip())
    deps = dict.fromkeys(sysconfig.get_path(key) for key in ("purelib", "platlib"))
    (site / "prunebench-deps.pth").write_text("".join(f"{path}\n" for path in deps))
    return venv


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path, data_root):
    wheel = build_wheel(tmp_path)
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in name}
    files = check(["git", "ls-files", "--cached", "--others", "--exclude-standard", *PACKAGES], cwd=ROOT).split()
    assert shipped == set(files), "the wheel holds exactly the checkout's modules and data files"

    venv = fresh_venv(tmp_path, wheel)
    work = tmp_path / "work"
    work.mkdir()
    run = dict(cwd=work)

    where = json.loads(check([venv / "bin" / "python", "-c", WHERE], **run))
    site = Path(where["site"])
    assert site.is_relative_to(venv)
    assert where["paths"] == {name: [str(site / name)] for name in PACKAGES}, "imported from the venv"
    assert not any("editable" in finder.lower() for finder in where["finders"])
    assert not any(Path(p).resolve() == ROOT for p in where["sys_path"] if p)

    prunebench = venv / "bin" / "prunebench"
    listing = check([prunebench, "list"], **run)
    assert "table-imp-vs-stable" in listing and "imp" in listing
    assert "table-imp-vs-stable [smoke]: ok" in check([prunebench, "validate", "--all"], **run)

    manifest = work / "tiny.toml"
    manifest.write_text(dump_toml(TINY))
    results, reports = work / "results", work / "reports"
    check([prunebench, "run", manifest, "--profile", "base", "--quiet", "--data-root", data_root,
           "--results", results, "--reports", reports], **run)
    records = pd.concat(pd.read_parquet(p) for p in (results / "runs").glob("*/record.parquet"))
    assert len(records) == 2 and (records["status"] == "ok").all()
    # The code that trained was not in a git checkout (the checkout's would record its commit).
    assert (records["code_version"] == "unknown").all()
    assert (reports / "tiny" / "base" / "table.tex").stat().st_size > 0  # the report templates were installed
