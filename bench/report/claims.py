"""Every claim of every target in one place: ``prunebench claims``.

Reads each target's rendered ``claims.csv`` (``reports/<target>/<profile>/``); nothing is
trained or rendered here. A claim whose target has no report for the profile yet is listed
as "not run", with the command that makes it.
"""

from pathlib import Path

import pandas as pd

from ..manifest import Manifest

COLUMNS = ["target", "profile", "source", "claim", "verdict", "evidence", "belief", "belief_verdict"]
VERDICTS = ("agree", "disagree", "cannot tell", "not run")


def claims_of(manifest: Manifest, reports: Path) -> pd.DataFrame:
    """The target's claims with their verdicts from its report, or "not run" without one."""
    path = Path(reports) / manifest.target / manifest.profile / "claims.csv"
    if path.exists():
        judged = pd.read_csv(path, keep_default_na=False)
    else:
        hint = f"no report: `prunebench run {manifest.target} --profile {manifest.profile}`"
        judged = pd.DataFrame({"claim": [claim["text"] for claim in manifest.claims], "verdict": "not run",
                               "evidence": hint, "belief": "", "belief_verdict": ""})
    judged = judged.assign(target=manifest.target, profile=manifest.profile, source=manifest.source)
    return judged.reindex(columns=COLUMNS, fill_value="")


def all_claims(manifests: list[Manifest], reports: Path) -> pd.DataFrame:
    frames = [claims_of(manifest, reports) for manifest in manifests if manifest.claims]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def summary(claims: pd.DataFrame) -> str:
    """E.g. "41 claims: 20 agree, 12 disagree, 5 cannot tell, 4 not run"."""
    counts = claims["verdict"].value_counts()
    parts = [f"{counts[verdict]} {verdict}" for verdict in VERDICTS if verdict in counts]
    return f"{len(claims)} claims: " + ", ".join(parts)


def as_text(claims: pd.DataFrame) -> str:
    """Claims grouped by target, one line each: verdict, claim, evidence."""
    lines = []
    for (target, source), group in claims.groupby(["target", "source"], sort=True):
        missing = group["verdict"].eq("not run").all()
        lines.append(f"{target} ({source})" + (f": {group['evidence'].iloc[0]}" if missing else ""))
        for claim in group.itertuples():
            evidence = "" if missing or not claim.evidence else f": {claim.evidence}"
            lines.append(f"  [{claim.verdict}] {claim.claim}{evidence}")
            if claim.belief:
                lines.append(f"      belief [{claim.belief_verdict or 'not judged'}]: {claim.belief}")
    return "\n".join(lines + [summary(claims)])
