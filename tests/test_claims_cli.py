"""`prunebench claims`: every claim of every target with its verdict, from the reports."""

import pandas as pd

from bench.cli import main
from bench.manifest import load, targets


def claimed_targets(profile: str) -> dict[str, list[str]]:
    found = {}
    for target in targets():
        if profile in load(target, "base", registries=False).profiles:
            manifest = load(target, profile, registries=False)
            if manifest.claims:
                found[target] = [claim["text"] for claim in manifest.claims]
    return found


def test_claims_lists_every_claim_with_the_verdict_its_report_gives(tmp_path, capsys):
    reports = tmp_path / "reports"
    expected = claimed_targets("smoke")
    judged = "table-aimp"
    texts = expected[judged]
    verdicts = (["agree", "disagree", "cannot tell"] * len(texts))[: len(texts)]
    (reports / judged / "smoke").mkdir(parents=True)
    pd.DataFrame({"claim": texts, "better": "a", "worse": "b", "metric": "test_accuracy", "verdict": verdicts,
                  "evidence": "98.8%: +0.10 (agree)", "collapse": "", "belief": "", "belief_verdict": "",
                  "belief_evidence": ""}).to_csv(reports / judged / "smoke" / "claims.csv", index=False)

    assert main(["claims", "--profile", "smoke", "--reports", str(reports)]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(reports / "claims-smoke.csv", keep_default_na=False)
    assert sorted(zip(table["target"], table["claim"])) == sorted(
        (target, text) for target, claims in expected.items() for text in claims)
    ours = table[table["target"] == judged]
    assert ours["verdict"].tolist() == verdicts
    assert set(table.loc[table["target"] != judged, "verdict"]) == {"not run"}
    counts = {verdict: verdicts.count(verdict) for verdict in set(verdicts)}
    assert f"{len(table)} claims: " in out and f"{counts['agree']} agree" in out
    assert f"{len(table) - len(texts)} not run" in out
    assert f"[disagree] {texts[1]}: 98.8%: +0.10 (agree)" in out
    assert "no report: `prunebench run table-imp-vs-stable --profile smoke`" in out
