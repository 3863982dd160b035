"""Figures of the benchmark and how they are measured.

A timing is a ratio of two workloads measured side by side in one process: A and B run
alternately, ``repeats`` times each, and every pair gives one ratio B / A. A figure is the
median of those ratios with their min and max, so a noisy shared machine moves all of a
pair's timings together and the figure survives it.
"""

import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Figure:
    """One line of perf.md: ``median`` (``low`` to ``high``) in ``unit``, beside its goal.
    ``goal_is`` says whether the goal is a ceiling ('max') or a floor ('min')."""

    section: str
    name: str
    median: float
    low: float
    high: float
    unit: str
    repeats: int
    goal: float | None = None
    goal_is: str = "max"
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.median <= self.goal if self.goal_is == "max" else self.median >= self.goal

    def row(self) -> dict:
        return {**asdict(self), "met": self.met}


def seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def interleaved(a: Callable[[], object], b: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Ratios time(b) / time(a) of ``repeats`` interleaved pairs, after ``warmup`` unmeasured pairs."""
    for _ in range(warmup):
        a(), b()
    ratios = []
    for _ in range(repeats):
        before = seconds(a)
        ratios.append(seconds(b) / before)
    return ratios


def figure(section: str, name: str, values: list[float], unit: str, **extra) -> Figure:
    return Figure(section, name, statistics.median(values), min(values), max(values), unit, len(values), **extra)


def peak_gib() -> float:
    """This process's peak resident memory in GiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def in_fresh_process(function, *args):
    """``function(*args)`` in a new interpreter that imports only the function's module, so
    that its peak memory is its own; arguments and result travel as pickles."""
    with tempfile.TemporaryDirectory() as tmp:
        given, result = Path(tmp) / "args.pickle", Path(tmp) / "result.pickle"
        given.write_bytes(pickle.dumps(args))
        code = (f"import pickle, pathlib; from {function.__module__} import {function.__name__} as f; "
                f"pathlib.Path({str(result)!r}).write_bytes(pickle.dumps(f(*pickle.loads("
                f"pathlib.Path({str(given)!r}).read_bytes()))))")
        subprocess.run([sys.executable, "-c", code], check=True)
        return pickle.loads(result.read_bytes())
