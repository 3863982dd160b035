"""Run the benchmark sections, store the figures as parquet and render perf.md."""

import argparse
import os
import platform
import socket
import sys
from datetime import datetime
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from ..execute import machine_memory_gb
from .harness import end_to_end, harness, scaling
from .memory import memory
from .reporting import reporting
from .split import HEADLINE, time_split, whole_targets
from .steps import layers_1d, masking, per_method
from .timing import in_fresh_process

SECTIONS = {"masking": masking, "methods": per_method, "harness": harness, "scaling": scaling,
            "reporting": lambda quick: in_fresh_process(reporting, quick), "end-to-end": end_to_end, "memory": memory,
            "layers-1d": layers_1d, "time-split": time_split, "targets": whole_targets}
OPT_IN = {"targets"}  # hours: run only when named
FINDINGS = Path(__file__).with_name("findings.md")


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"host": socket.gethostname(), "cpu": model, "cores": os.cpu_count(),
            "memory_gib": round(machine_memory_gb(), 1), "torch": torch.__version__,
            "python": platform.python_version()}


def markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(value) for value in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def number(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def render(figures: pd.DataFrame, before: pd.DataFrame | None) -> str:
    """perf.md: the machine, then a table per section; with ``before``, the earlier figures beside."""
    first = figures.iloc[0]
    kind = "QUICK=1 (a fast check, not for goals)" if first["quick"] else "full"
    out = ["# prunebench performance\n",
           f"Measured {' and '.join(sorted(set(figures['date'])))} ({kind}) on `{first['host']}`: {first['cpu']}, "
           f"{first['cores']} cores, "
           f"{first['memory_gib']} GiB, torch {first['torch']}, Python {first['python']}.\n",
           "Timings are ratios of A and B measured side by side in one process, interleaved; each figure is "
           "the median over its repetitions, with min and max. Regenerate with `make bench-perf`.\n"]
    if before is not None:
        out.append(f"The *before* column is the run of {before['date'].iloc[0]} on the same host.\n")
        figures = figures.merge(before[["section", "name", "median"]].rename(columns={"median": "before"}),
                                on=["section", "name"], how="left")
    for section in sorted(set(figures["section"]), key=lambda name: int(name.split(".")[0])):
        rows = figures[figures["section"] == section]
        table = pd.DataFrame({
            "figure": rows["name"],
            **({"before": rows["before"].map(number)} if before is not None else {}),
            "median": rows["median"].map(number),
            "min – max": [f"{number(low)} – {number(high)}" for low, high in zip(rows["low"], rows["high"])],
            "unit": rows["unit"], "n": rows["repeats"],
            "goal": [("" if pd.isna(goal) else ("≤ " if kind_ == "max" else "≥ ") + number(goal))
                     for goal, kind_ in zip(rows["goal"], rows["goal_is"])],
            "met": rows["met"].map({True: "yes", False: "**no**"}).fillna(""),
            "note": rows["note"]})
        out += [f"## {section}\n", markdown_table(table), ""]
    if FINDINGS.exists():
        out.append(FINDINGS.read_text())
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast variant that checks everything runs")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS),
                        default=[name for name in SECTIONS if name not in OPT_IN],
                        help="run only these; the others' figures are carried over from the last full run "
                             f"(default: all but {', '.join(sorted(OPT_IN))}, which take hours)")
    parser.add_argument("--target", default=HEADLINE, help=f"the target of time-split (default: {HEADLINE})")
    parser.add_argument("--results", default="results", help="writes <results>/perf/<date>-<host>.parquet")
    parser.add_argument("--reports", default="reports", help="writes <reports>/perf/perf.md")
    args = parser.parse_args(argv)

    stamp = datetime.now().strftime("%Y-%m-%dT%H%M")
    sections = {**SECTIONS, "time-split": partial(time_split, target=args.target)}
    rows = []
    for name in args.sections:
        print(f"bench-perf: {name}", file=sys.stderr, flush=True)
        rows += [figure.row() for figure in sections[name](args.quick)]
    host = machine()
    figures = pd.DataFrame(rows).assign(date=stamp, quick=args.quick, **host)
    store = Path(args.results) / "perf"
    store.mkdir(parents=True, exist_ok=True)
    full_runs = [frame for frame in map(pd.read_parquet, sorted(store.glob(f"*-{host['host']}.parquet")))
                 if not frame["quick"].iloc[0]]
    if full_runs and not args.quick:  # figures of sections not run now are carried over from the last run
        last = full_runs[-1]
        kept = ~last.set_index(["section", "name"]).index.isin(figures.set_index(["section", "name"]).index)
        figures = pd.concat([figures, last[kept]], ignore_index=True)
    stored = store / f"{stamp}-{host['host']}.parquet"
    figures.to_parquet(stored)
    report = Path(args.reports) / "perf" / "perf.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render(figures, full_runs[0] if full_runs and not args.quick else None))
    print(f"bench-perf: wrote {stored} and {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
