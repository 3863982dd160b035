"""Run ids are the identity of results: rewriting a manifest or the code that expands it must
not change the ids of the shipped manifests' runs (fixture recorded before issue 10's rework)."""

import hashlib
import json
from pathlib import Path

import pytest

from bench.manifest import load

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "run_ids.json").read_text())


def expanded(target: str, profile: str) -> list[str]:
    specs = load(target, profile).expand()
    return sorted({f"{s.label} {s.run_id} {s.parent.run_id if s.parent else '-'}" for s in specs})


@pytest.mark.parametrize("target, profile", [(t, p) for t in sorted(FIXTURE) for p in sorted(FIXTURE[t])])
def test_expanded_run_ids_are_unchanged(target, profile):
    lines, recorded = expanded(target, profile), FIXTURE[target][profile]
    if "runs" in recorded:
        assert lines == recorded["runs"]
    assert len(lines) == recorded["count"]
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == recorded["sha256"]

