"""The ``prunebench`` command: run, report, claims, site, validate, list, describe, status, clean.

Exit codes: 0 success, 1 some run failed (after rendering what exists), 2 bad input
(manifest, command line, data root), with nothing submitted and nothing written.
"""

import argparse
import sys
from pathlib import Path

from schema import ConfigError, closest

DEFAULT_RESULTS, DEFAULT_REPORTS = "results", "reports"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="prunebench", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)

    def target_command(name: str, help: str, all_option: bool = False, several: bool = False) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help, description=help)
        command.add_argument("target", nargs="*" if several else "?" if all_option else None,
                             help="a manifest name from `prunebench list` or a path to a .toml file"
                             + (" (several: one grid, shared runs trained once)" if several else ""))
        if all_option:
            command.add_argument("--all", action="store_true", help="every manifest")
        return command

    def locations(command: argparse.ArgumentParser, profile: bool = True):
        if profile:
            command.add_argument("--profile", help="profile of the manifest (default: the manifest's default)")
        command.add_argument("--results", default=DEFAULT_RESULTS, help="results directory (default: ./results)")
        command.add_argument("--reports", default=DEFAULT_REPORTS, help="reports directory (default: ./reports)")

    run = target_command("run", "run a target's grid (only what is missing), then render its report",
                         all_option=True, several=True)
    locations(run)
    run.add_argument("--executor", default="local", help="inline, local (default) or slurm")
    run.add_argument("--jobs", type=int, help="parallel local jobs (default: cores / threads per run, "
                     "fewer if the machine's memory does not hold that many runs of [slurm] mem_gb)")
    run.add_argument("--data-root", help="dataset directory (default: $PRUNEBENCH_DATA or ./data)")
    run.add_argument("--dry-run", action="store_true", help="print what would run and exit")
    run.add_argument("--no-report", action="store_true", help="do not render the report afterwards")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--no-wait", action="store_true",
                     help="with --executor slurm: submit every stage, chained by SLURM dependencies, and return")
    for option, kind in (("partition", str), ("time-min", int), ("cpus-per-task", int), ("gpus-per-node", int),
                         ("mem-gb", float), ("array-parallelism", int)):
        run.add_argument(f"--{option}", type=kind, help=f"SLURM {option} (overrides the manifest's [slurm])")

    report = target_command("report", "render a target's report from the stored runs", all_option=True)
    locations(report)
    target_command("validate", "validate a manifest under every profile, running nothing", all_option=True)
    status = target_command("status", "count a target's runs: done, failed, running, queued")
    locations(status)
    claims = commands.add_parser("claims", help="every claim of every target with its verdict, from the reports",
                                 description="every claim of every target with its verdict, from the reports")
    claims.add_argument("--profile", default="cpu", help="profile (default: cpu)")
    claims.add_argument("--reports", default=DEFAULT_REPORTS, help="reports directory (default: ./reports)")
    site = commands.add_parser("site", help="a static HTML site of the reports, from the stored runs and reports",
                               description="a static HTML site of the reports, from the stored runs and reports: "
                                           "reports/site/<profile>/index.html")
    site.add_argument("target", nargs="*", help="manifest names or paths (default: every target with the profile)")
    site.add_argument("--profile", default="cpu", help="profile (default: cpu)")
    locations(site, profile=False)
    site.add_argument("--quiet", action="store_true", help="no progress")
    clean = commands.add_parser("clean", help="remove submitit's files and checkpoints of finished runs, never records",
                                description="remove submitit's files and checkpoints of finished runs, never records")
    clean.add_argument("--results", default=DEFAULT_RESULTS, help="results directory (default: ./results)")
    commands.add_parser("list", help="list targets, methods, models and datasets")
    describe = commands.add_parser("describe", help="what a method is: its paper and hyperparameters",
                                   description="what a method is: its paper and hyperparameters")
    describe.add_argument("methods", nargs="*", metavar="METHOD", help="method names (default: every method)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:
        print(f"prunebench: error: {error}", file=sys.stderr)
        return 2


def chosen_targets(args) -> list[str]:
    from .manifest import targets

    if getattr(args, "all", False):
        return targets()
    if not args.target:
        raise ConfigError("name a target or pass --all", key="target")
    return args.target if isinstance(args.target, list) else [args.target]


def cmd_list(args) -> int:
    from methods import METHODS
    from models import MODELS

    from .data import DATASETS
    from .manifest import targets

    for title, names in (("targets", targets()), ("methods", METHODS), ("models", MODELS), ("datasets", DATASETS)):
        print(f"{title}: {', '.join(sorted(names))}")
    return 0


def cmd_describe(args) -> int:
    from methods import METHODS

    for name in args.methods:
        if name not in METHODS:
            raise ConfigError(f"unknown method {name!r}; {closest(name, METHODS)}", key="METHOD")
    for name in args.methods or sorted(METHODS):
        print(describe_method(METHODS[name]))
    return 0


def describe_method(cls) -> str:
    """A method's name, family, paper, summary and hyperparameters, as ``describe`` prints them."""
    from .runlist import method_description

    method = method_description(cls)
    lines = [f"{method['name']} ({method['file']}; {method['paper']}): {method['doc'].splitlines()[0]}"]
    lines += [f"  {name}: {text}" for name, text in method["params"].items()] or ["  no hyperparameters"]
    if method["sparsity_control"]:
        lines.append("  sparsity set by: {} (searched on a {} scale, fitting {})".format(
            *method["sparsity_control"], method["sparsity_column"]))
    return "\n".join(lines)


def cmd_validate(args) -> int:
    from .execute import plan
    from .manifest import load_all_profiles
    from .store import RunStore

    for target in chosen_targets(args):
        for manifest in load_all_profiles(target):
            grid = plan(manifest.expand(), RunStore(DEFAULT_RESULTS))
            print(f"{target} [{manifest.profile}]: ok, {grid.total} runs")
    return 0


def slurm_settings(args, manifest) -> dict:
    from .manifest import SLURM, Checker

    overrides = {name: getattr(args, name) for name in SLURM if getattr(args, name, None) is not None}
    return Checker(Path("command line")).table("slurm", {**manifest.slurm, **overrides}, SLURM)


def cmd_run(args) -> int:
    """One grid of every run the targets need, each trained once however many targets share it;
    then each target's report."""
    from .data import default_data_root, load_dataset
    from .execute import check_executor, default_jobs, plan, run_plan, submit_plan
    from .manifest import load
    from .runlist import remember
    from .store import RunStore
    from .train import checkpoint_seconds

    manifests = [load(target, args.profile) for target in chosen_targets(args)]
    check_executor(args.executor)
    checkpoint_seconds()  # a bad $PRUNEBENCH_CHECKPOINT_SECONDS is an error before anything runs
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"must be at least 1, got {args.jobs}", key="--jobs")
    if args.no_wait and args.executor != "slurm":
        raise ConfigError(f"needs --executor slurm (a {args.executor} grid lives as long as this command)",
                          key="--no-wait")
    slurm = most_demanding([slurm_settings(args, manifest) for manifest in manifests])
    store = RunStore(args.results)
    targets = expand_all(manifests, store)
    if not args.dry_run:
        discard_corrupt([spec for specs in targets.values() for spec in specs], store)
        targets = expand_all(manifests, store)
    grid = plan(unique(targets), store)
    rounds = max((row.search_rounds for manifest in manifests for row in manifest.rows), default=0)
    searched = search_plan(manifests[0], rounds) if len(manifests) == 1 and rounds else ""
    print(grid_summary(manifests, targets, grid) + searched)
    if args.dry_run:
        return 0
    data_root = str(Path(args.data_root) if args.data_root else default_data_root())
    if Path(data_root).exists() and not Path(data_root).is_dir():
        raise ConfigError(f"{data_root} is not a directory", key="--data-root (or $PRUNEBENCH_DATA)")
    datasets = {(s.training["dataset"], s.training["val_fraction"], s.training["split_seed"]) for s in grid.pending}
    for name, val_fraction, split_seed in sorted(datasets):  # checked, and generated once, before any run
        load_dataset(name, data_root, val_fraction, split_seed)
    if args.no_wait and grid.pending:
        arrays = submit_plan(grid, store, data_root=data_root, slurm=slurm)
        where = f" --results {args.results}" if args.results != DEFAULT_RESULTS else ""
        follow = "; ".join(f"`prunebench status {manifest.target} --profile {manifest.profile}{where}`"
                           for manifest in manifests)
        print(f"submitted job arrays {', '.join(arrays)}; follow them with {follow}"
              + ("; once they end, `prunebench run` again submits the next search round" if rounds else ""))
        return 0
    jobs = args.jobs or default_jobs(max(m.training["threads"] for m in manifests), slurm["mem_gb"])
    for _ in range(rounds + 1):  # the grid, then one pass per search round
        run_plan(grid, store, executor=args.executor, jobs=jobs, data_root=data_root, slurm=slurm,
                 progress=not args.quiet)
        before = {spec.run_id for spec in unique(targets)}
        targets = expand_all(manifests, store)
        if {spec.run_id for spec in unique(targets)} <= before:
            break
        grid = plan(unique(targets), store)
        print(f"search: {len(grid.pending)} more runs ({grid.epochs} epochs)")
    failed = {}
    for manifest in manifests:
        runs = remember(manifest, targets[manifest.target], Path(args.results))
        failed.update(store.failures(runs.needed))
        if not args.no_report:
            print(f"report: {render(manifest, runs, store, Path(args.reports))}")
    for run_id, error in failed.items():
        print(f"run {run_id} failed: {error.strip().splitlines()[-1] if error.strip() else error}", file=sys.stderr)
    return 1 if failed else 0


def expand_all(manifests, store) -> dict:
    """Target -> its runs, search points included."""
    from .search import expand

    return {manifest.target: expand(manifest, store) for manifest in manifests}


def unique(targets: dict) -> list:
    """The runs of every target, each once."""
    return list({spec.run_id: spec for specs in targets.values() for spec in specs}.values())


def most_demanding(settings: list[dict]) -> dict:
    """The [slurm] settings of one target, or for several the largest of each resource (the
    partition of the first): every job of the shared grid gets what the neediest asks for."""
    merged = dict(settings[0])
    for other in settings[1:]:
        for key, value in other.items():
            if isinstance(value, (int, float)) and isinstance(merged.get(key), (int, float)):
                merged[key] = max(merged[key], value)
    return merged


def grid_summary(manifests, targets: dict, grid) -> str:
    """E.g. "fig-x [cpu]: 12 runs, 4 done, 8 to run (96 epochs)"; for several targets their
    count and the runs they share."""
    from .runspec import with_parents

    counts = f"{grid.total} runs, {grid.done} done, {len(grid.pending)} to run ({grid.epochs} epochs)"
    if len(manifests) == 1:
        return f"{manifests[0].target} [{manifests[0].profile}]: {counts}"
    needs: dict[str, int] = {}
    for specs in targets.values():
        for run_id in {spec.run_id for spec in with_parents(specs)}:
            needs[run_id] = needs.get(run_id, 0) + 1
    shared = sum(n > 1 for n in needs.values())
    profiles = ", ".join(sorted({manifest.profile for manifest in manifests}))
    return f"{len(manifests)} targets [{profiles}]: {counts}; {shared} runs are shared between targets"


def search_plan(manifest, rounds: int) -> str:
    """E.g. " + up to 3 search rounds (at most 162 more runs, 14.7% of the searched rows' first grid)"."""
    from .search import most_added

    added, first = most_added(manifest)
    return (f" + up to {rounds} search rounds (at most {added} more runs, {100 * added / first:.1f}% of the "
            "searched rows' first grid)")


def discard_corrupt(specs, store) -> None:
    """Move aside the unreadable records of the runs (and parents), so that they run again."""
    from .runspec import with_parents

    for spec in with_parents(specs):
        problem = store.discard_corrupt(spec.run_id)
        if problem:
            print(f"unreadable record, run {spec.run_id} will run again: {problem}", file=sys.stderr)


def render(manifest, runs, store, reports: Path) -> Path:
    from .report.build import render_report

    return render_report(manifest, runs, store, reports)


def cmd_report(args) -> int:
    """Reports from stored runs: the manifest is read without the registries and the runs come
    from the stored run list, so neither the methods nor torch are imported."""
    from .manifest import load
    from .runlist import runs_for
    from .store import RunStore

    for target in chosen_targets(args):
        manifest = load(target, args.profile, registries=False)
        runs = runs_for(manifest, Path(args.results))
        print(f"report: {render(manifest, runs, RunStore(args.results), Path(args.reports))}")
    return 0


def with_profile(profile: str, names: list[str] | None = None) -> list:
    """The manifests (loaded without the registries) of the targets named, or of every target
    that declares ``profile``, under it."""
    from .manifest import load, targets

    names = names or [target for target in targets() if profile in load(target, "base", registries=False).profiles]
    return [load(target, profile, registries=False) for target in names]


def cmd_claims(args) -> int:
    """Print every claim with its verdict and write reports/claims-<profile>.csv."""
    from .report.claims import all_claims, as_text

    claims = all_claims(with_profile(args.profile), Path(args.reports))
    Path(args.reports).mkdir(parents=True, exist_ok=True)
    out = Path(args.reports) / f"claims-{args.profile}.csv"
    claims.to_csv(out, index=False)
    print(as_text(claims))
    print(f"written: {out}")
    return 0


def cmd_site(args) -> int:
    """The static site of the targets' reports: stored run lists, records and reports only,
    so neither the methods nor torch are imported."""
    from .report.site import render_site

    out = render_site(with_profile(args.profile, args.target), Path(args.results), Path(args.reports), args.profile,
                      quiet=args.quiet)
    print(f"site: {out / 'index.html'}")
    return 0


def cmd_status(args) -> int:
    from .execute import scheduler_states, status
    from .manifest import load
    from .search import expand
    from .store import RunStore

    manifest, store = load(args.target, args.profile), RunStore(args.results)
    counts = status(expand(manifest, store), store)
    print(f"{manifest.target} [{manifest.profile}]: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    states = scheduler_states(store)
    if states:
        print("SLURM tasks: " + ", ".join(f"{n} {state.lower()}" for state, n in sorted(states.items())))
    return 0


def cmd_clean(args) -> int:
    from .store import RunStore

    removed = RunStore(args.results).clean()
    print(f"removed {len(removed)} files and folders under {args.results}")
    return 0


COMMANDS = {"run": cmd_run, "report": cmd_report, "claims": cmd_claims, "site": cmd_site, "validate": cmd_validate,
            "list": cmd_list,
            "describe": cmd_describe, "status": cmd_status, "clean": cmd_clean}

if __name__ == "__main__":
    sys.exit(main())
