"""Where a worker's time goes: its wall time split into categories, for ``make bench-perf``.

Recording is switched on by the environment variable ``PRUNEBENCH_SPANS``, a folder. Each
worker (``bench.execute.work``) then keeps a ``Recorder`` in its thread, and when it ends
writes to that folder a JSON file: the seconds of every category, its process's start and
the start and end of its work. A span charges its time to the innermost category open, so
the categories never overlap and add up to the work's wall time: what no span covers is
the worker's own ``HARNESS`` time. Off, which is the default, ``span`` hands out one shared
do-nothing context, and ``timed_hooks`` and ``timed_batches`` return what they are given.
Nothing recorded reaches a run's record or its id.
"""

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from functools import wraps
from pathlib import Path

FOLDER = "PRUNEBENCH_SPANS"
TRAINING = "training steps"
HOOKS = "masking and method hooks"
BATCHING = "data batching"
EVALUATION = "evaluation"
CHECKPOINTS = "checkpoints"
RECORDS = "records and run directories"
SET_UP = "run set-up"
HARNESS = "harness"
START_UP = "process start-up"
IDLE = "idle"
METHOD_HOOKS = ("setup", "use_training_data", "enter", "prune", "regularizer", "after_backward", "after_step",
                "end_epoch")  # ``forward`` is left out: it is the training step's forward pass

_OFF = nullcontext()
_threads = threading.local()


class Recorder:
    """Seconds by category of one thread; ``open`` holds the categories entered, innermost last."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.open = [HARNESS]
        self.since = time.perf_counter()

    def charge(self) -> None:
        """Charge the time since the last change to the innermost category."""
        now = time.perf_counter()
        self.seconds[self.open[-1]] = self.seconds.get(self.open[-1], 0.0) + now - self.since
        self.since = now

    @contextmanager
    def span(self, category: str) -> Iterator[None]:
        self.charge()
        self.open.append(category)
        try:
            yield
        finally:
            self.charge()
            self.open.pop()

    def batches(self, batches: Iterable, category: str) -> Iterator:
        """``batches``, the drawing of each charged to ``category``."""
        batches, end = iter(batches), object()
        while True:
            with self.span(category):
                batch = next(batches, end)
            if batch is end:
                return
            yield batch


def recorder() -> Recorder | None:
    """This thread's recorder, None when recording is off."""
    return getattr(_threads, "recorder", None)


def span(category: str):
    """A context charging its time to ``category`` (nothing when recording is off)."""
    here = recorder()
    return _OFF if here is None else here.span(category)


def timed(category: str):
    """Decorate a function so that its calls are spans of ``category``."""
    def decorate(function):
        @wraps(function)
        def spanned(*args, **kwargs):
            with span(category):
                return function(*args, **kwargs)
        return spanned
    return decorate


def timed_hooks(method):
    """The method with its hooks (``METHOD_HOOKS``) charged to ``HOOKS`` when recording; as it is otherwise."""
    if recorder() is not None:
        for name in METHOD_HOOKS:
            setattr(method, name, timed(HOOKS)(getattr(method, name)))
    return method


def timed_batches(batches: Iterable) -> Iterable:
    """The training batches, their drawing charged to ``BATCHING`` when recording."""
    here = recorder()
    return batches if here is None else here.batches(batches, BATCHING)


def process_started() -> float:
    """When this process started, in seconds since the epoch (Linux's /proc, to 10 ms)."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return time.time() - (uptime - ticks)


@contextmanager
def recording() -> Iterator[None]:
    """Around a worker's work: if ``PRUNEBENCH_SPANS`` names a folder, record this thread's
    spans and write them there at the end."""
    folder = os.environ.get(FOLDER)
    if not folder:
        yield
        return
    _threads.recorder = here = Recorder()
    start = time.time()
    try:
        yield
    finally:
        here.charge()
        del _threads.recorder
        end = time.time()
        path = Path(folder) / f"{os.getpid()}-{threading.get_ident()}-{time.time_ns()}.json"
        path.write_text(json.dumps({"pid": os.getpid(), "process_start": process_started(), "start": start,
                                    "end": end, "seconds": here.seconds}))
