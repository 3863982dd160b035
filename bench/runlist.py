"""The runs a target's profile expands to, kept beside the results, so that rendering a
report from stored runs imports neither the methods nor torch.

Expanding a manifest needs every method's hyperparameters and defaults, and so the
``methods`` package and torch (seconds). Whoever expands a manifest (``run``, ``validate``,
or a ``report`` that finds no list) writes ``results/runlists/<target>/<profile>.json``: the
(run id, row label) of every run, the points of a sparsity search included, and the ids of
the parents they need, under a fingerprint of all it was computed from: the manifest's
text (with what it extends), the profile, and the source files of the code that expands it
(``bench/manifest.py``, ``bench/runspec.py``, ``bench/search.py``, ``schema/``,
``methods/``). A list whose fingerprint no longer matches is ignored and written anew;
with ``$PRUNEBENCH_PLUGINS`` set, lists are neither read nor written.

Beside the lists, ``results/runlists/methods.json`` describes every registered method (its
docstrings, paper and hyperparameters, as ``prunebench describe`` prints them), written with
each list, for the site (``prunebench site``), which imports no method either.
"""

import hashlib
import importlib.util
import inspect
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .manifest import Manifest, load, read_raw
from .runspec import RunSpec, canonical_json, with_parents
from .search import expand
from .store import RunStore

CODE = ("bench/manifest.py", "bench/runspec.py", "bench/runlist.py", "bench/search.py")
PACKAGES = ("schema", "methods")


@dataclass(frozen=True)
class RunList:
    """``runs``: (run id, row label) of every run of the rows; ``needed``: every run id the
    grid needs, parents included."""

    runs: list[tuple[str, str]]
    needed: list[str]

    @classmethod
    def of(cls, specs: list[RunSpec]) -> "RunList":
        return cls([(spec.run_id, spec.label) for spec in specs], [spec.run_id for spec in with_parents(specs)])


def _sources() -> list[Path]:
    root = Path(__file__).parent.parent
    files = [root / name for name in CODE]
    for package in PACKAGES:  # found without importing them
        for location in importlib.util.find_spec(package).submodule_search_locations:
            files += sorted(Path(location).rglob("*.py"))
    return files


def fingerprint(raw: dict, profile: str) -> str:
    """What the expansion of ``raw`` under ``profile`` depends on, hashed."""
    digest = hashlib.sha256(canonical_json({"manifest": raw, "profile": profile}).encode())
    for path in _sources():
        digest.update(path.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _path(results: Path, target: str, profile: str) -> Path:
    return Path(results) / "runlists" / target / f"{profile}.json"


def _methods_path(results: Path) -> Path:
    return Path(results) / "runlists" / "methods.json"


def _write_json(path: Path, data) -> None:
    """Write ``data`` aside and move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _usable() -> bool:
    return not os.environ.get("PRUNEBENCH_PLUGINS")


def read(results: Path, target: str, profile: str, key: str) -> RunList | None:
    """The stored list if it was computed from exactly this manifest and code, else None."""
    path = _path(results, target, profile)
    if not _usable() or not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if stored.get("fingerprint") != key:
        return None
    return RunList([tuple(run) for run in stored["runs"]], stored["needed"])


def write(results: Path, target: str, profile: str, key: str, runs: RunList) -> None:
    """Store the list (written aside and moved into place)."""
    if not _usable():
        return
    _write_json(_path(results, target, profile), {"fingerprint": key, "runs": runs.runs, "needed": runs.needed})


def method_description(cls) -> dict:
    """A method class as plain values: name, source file, paper, class and module docstrings,
    each hyperparameter's one-line description, what sets a learned sparsity and the record
    column the search fits it on."""
    return {"name": cls.name, "file": cls.__module__.replace(".", "/") + ".py", "paper": cls.paper,
            "doc": inspect.cleandoc(cls.__doc__ or ""),
            "module_doc": inspect.cleandoc(sys.modules[cls.__module__].__doc__ or ""),
            "params": {name: param.describe() for name, param in cls.params.items()},
            "sparsity_control": list(cls.sparsity_control) if cls.sparsity_control else None,
            "sparsity_column": cls.sparsity_column}


def write_methods(results: Path) -> None:
    """Store the description of every registered method (``methods.json``)."""
    if not _usable():
        return
    from methods import METHODS

    _write_json(_methods_path(results), {name: method_description(cls) for name, cls in sorted(METHODS.items())})


def read_methods(results: Path) -> dict[str, dict]:
    """Method name -> ``method_description``, as the last run list written stored them; {} before any."""
    try:
        return json.loads(_methods_path(results).read_text())
    except (OSError, ValueError):
        return {}


def remember(manifest: Manifest, specs: list[RunSpec], results: Path) -> RunList:
    """The list of ``specs``, the expansion of ``manifest`` (search points included), stored
    for later reports."""
    runs = RunList.of(specs)
    write(results, manifest.target, manifest.profile, fingerprint(read_raw(manifest.path), manifest.profile), runs)
    write_methods(results)
    return runs


def current_runs(manifest: Manifest, results: Path) -> RunList | None:
    """The runs of ``manifest`` from its stored list if that is current, else None; never
    expanding. A manifest without rows (a figure that trains nothing) has no runs."""
    if not manifest.rows:
        return RunList([], [])
    return read(results, manifest.target, manifest.profile, fingerprint(read_raw(manifest.path), manifest.profile))


def runs_for(manifest: Manifest, results: Path) -> RunList:
    """The runs of ``manifest`` (loaded with or without its registries): the stored list when
    it is current, else the manifest expanded afresh with the search points its stored records
    give (importing the methods) and stored."""
    stored = current_runs(manifest, results)
    if stored is not None:
        return stored
    complete = manifest if manifest.complete else load(str(manifest.path), manifest.profile)
    return remember(complete, expand(complete, RunStore(results)), results)
