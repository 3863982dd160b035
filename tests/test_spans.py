"""bench.spans: a worker's time split into categories that never overlap, and nothing at all when off."""

import itertools
import json
from types import SimpleNamespace

from bench import spans
from methods.core.base import Method


def test_time_is_charged_to_the_innermost_span_and_adds_up_to_the_work(tmp_path, monkeypatch):
    ticks = itertools.count()  # a clock that advances one second at every reading
    monkeypatch.setattr(spans, "time", SimpleNamespace(perf_counter=lambda: next(ticks), time=lambda: 0.0,
                                                       time_ns=lambda: 0))
    monkeypatch.setenv(spans.FOLDER, str(tmp_path))
    method = Method({}, {}, None)
    with spans.recording():  # reads 0
        with spans.span("outer"):  # 1: harness
            with spans.span("inner"):  # 2: outer
                pass  # 3: inner
        # 4: outer
        assert list(spans.timed_batches([1, 2])) == [1, 2]  # 5 harness, 6 batching, 7, 8, 9, 10 (the end)
        spans.timed_hooks(method).end_epoch(None, 0)  # 11 harness, 12 hooks
    # 13: harness
    (written,) = tmp_path.glob("*.json")
    seconds = json.loads(written.read_text())["seconds"]
    assert seconds == {spans.HARNESS: 6, "outer": 2, "inner": 1, spans.BATCHING: 3, spans.HOOKS: 1}
    assert sum(seconds.values()) == 13


def test_off_nothing_is_wrapped_timed_or_written(tmp_path, monkeypatch):
    monkeypatch.delenv(spans.FOLDER, raising=False)
    method, batches = Method({}, {}, None), iter([1])
    with spans.recording():
        assert spans.timed_hooks(method) is method and not set(vars(method)) & set(spans.METHOD_HOOKS)
        assert spans.timed_batches(batches) is batches
        assert spans.span("outer") is spans.span("inner")  # one shared do-nothing context
    assert spans.recorder() is None and not list(tmp_path.iterdir())
