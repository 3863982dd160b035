"""Run ids are the identity of results: a change that renames runs must mean to. The ids of
the shipped manifests' runs are recorded in fixtures/run_ids.json (in full for the smoke and
cpu profiles, as a count and hash for the paper profile); a change of the code or the
manifests that changes what runs compute raises a method's ``revision`` or a setting, and
then records the ids anew with ``python tests/test_run_ids.py``."""

import hashlib
import json
from pathlib import Path

import pytest

from bench.manifest import load, targets

FIXTURE_PATH = Path(__file__).parent / "fixtures" / "run_ids.json"
FIXTURE = json.loads(FIXTURE_PATH.read_text())
PROFILES = ("smoke", "cpu", "paper")


def expanded(target: str, profile: str) -> list[str]:
    specs = load(target, profile).expand()
    return sorted({f"{s.label} {s.run_id} {s.parent.run_id if s.parent else '-'}" for s in specs})


def entry(lines: list[str], profile: str) -> dict:
    digest = {"count": len(lines), "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest()}
    return digest if profile == "paper" else {**digest, "runs": lines}


@pytest.mark.parametrize("target, profile", [(t, p) for t in sorted(FIXTURE) for p in sorted(FIXTURE[t])])
def test_expanded_run_ids_are_the_recorded_ones(target, profile):
    assert entry(expanded(target, profile), profile) == FIXTURE[target][profile]


if __name__ == "__main__":
    recorded = {t: {p: entry(expanded(t, p), p) for p in PROFILES} for t in targets()}
    FIXTURE_PATH.write_text(json.dumps(recorded, indent=1, sort_keys=True))
    print({t: {p: e["count"] for p, e in profiles.items()} for t, profiles in recorded.items()})
