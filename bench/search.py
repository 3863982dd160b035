"""The sparsity search of a learned-sparsity row (STR, CS, DST): configurations aimed at the goals.

These methods cannot be given a sparsity; it follows from one hyperparameter, the method's
``sparsity_control``. A row with ``search = { rounds = R }`` runs its grid, then R rounds:
each fits final sparsity (the record column the method's ``sparsity_column`` names, weight
sparsity or, for a structured method, ``node_sparsity``; a row's ``search.column`` overrides
it) against that hyperparameter within every group of the row's grid
points that agree on all other keys and, for each goal no configuration reaches yet, adds
the value predicted to land within LANDING_TOLERANCE of it in the most promising group
(Back to Basics, Figure 10: "additional hyperparameter searches"). A round is computed
from stored records only, so the search resumes like any grid, and a point proposed twice
is the same run.
"""

import math

from schema import ConfigError, Param

from .manifest import Manifest, Row, _methods, expand_row
from .runspec import RunSpec, canonical_json
from .store import RunStore

LANDING_TOLERANCE = 0.0025  # a configuration lands in a goal column within 0.25 points
SLACK = 1e-6  # float slack on the tolerance, as the report's GOAL_TOLERANCE
CLIP = 1e-4  # sparsities are kept this far from 0 and 1 before their logit is taken


def _logit(sparsity: float) -> float:
    s = min(max(sparsity, CLIP), 1 - CLIP)
    return math.log(s / (1 - s))


def propose(tried: list[tuple[float, float]], goals: list[float], scale: str,
            tolerance: float = LANDING_TOLERANCE, bounds: Param | None = None) -> list[float]:
    """Control values predicted to land on the goals that no (value, mean sparsity) of
    ``tried`` reaches within ``tolerance``: interpolated between the tried values whose
    sparsities bracket the goal most tightly, else extrapolated from the two nearest the goal,
    on the line through them in (value or log10 value, logit sparsity). Rounded to 3
    significant digits; values already tried or outside ``bounds`` are dropped."""
    points = {value: sparsity for value, sparsity in tried if math.isfinite(sparsity)}
    if len(points) < 2:
        return []
    x = (lambda v: math.log10(v)) if scale == "log" else (lambda v: v)
    back = (lambda u: 10 ** u) if scale == "log" else (lambda u: u)
    proposed = []
    for goal in goals:
        if any(abs(s - goal) <= tolerance + SLACK for s in points.values()):
            continue
        below = [(goal - s, v) for v, s in points.items() if s < goal]
        above = [(s - goal, v) for v, s in points.items() if s > goal]
        if below and above:
            pair = [min(below)[1], min(above)[1]]
        else:
            pair = [v for _, v in sorted((abs(s - goal), v) for v, s in points.items())[:2]]
        (x1, y1), (x2, y2) = ((x(v), _logit(points[v])) for v in pair)
        if y1 == y2:
            continue
        value = float(f"{back(x1 + (_logit(goal) - y1) * (x2 - x1) / (y2 - y1)):.3g}")
        if value in {v for v, _ in tried} or value in proposed or not _within(value, bounds):
            continue
        proposed.append(value)
    return proposed


def _within(value: float, bounds: Param | None) -> bool:
    try:
        bounds is None or bounds.check(value, "value")
    except ConfigError:
        return False
    return True


def expand(manifest: Manifest, store: RunStore) -> list[RunSpec]:
    """Every run of the manifest: each row's first grid, then for a row with a search the
    points of each round computed from the stored records of the row's runs so far, up to
    the first round whose inputs are not all finished."""
    check = manifest.checker()
    specs = []
    for i, row in enumerate(manifest.rows):
        points = row.points()
        for _ in range(row.search_rounds):
            new = search_round(manifest, row, points, store, f"rows[{i}]")
            if not new:
                break
            points += new
        specs += expand_row(manifest, row, check, f"rows[{i}]", points)
    return specs


def first_grid(manifest: Manifest) -> list[RunSpec]:
    """The runs of the searched rows' grids, before any search round."""
    check = manifest.checker()
    return [spec for i, row in enumerate(manifest.rows) if row.search_rounds
            for spec in expand_row(manifest, row, check, f"rows[{i}]")]


def most_added(manifest: Manifest) -> tuple[int, int]:
    """(the most runs the search rounds can add, the runs of the searched rows' first grid):
    one configuration per goal and round, run for every seed."""
    rounds = sum(row.search_rounds for row in manifest.rows)
    return rounds * len(manifest.goal_sparsities) * len(manifest.seeds), len(first_grid(manifest))


def search_round(manifest: Manifest, row: Row, points: list[dict], store: RunStore, key: str) -> list[dict] | None:
    """The grid points one round adds to ``points``, or None while some of their runs are
    neither done nor failed. Points are grouped by the keys other than the control and averaged over seeds;
    each goal no configuration reaches yet gets one proposal, from the group that can make
    one whose configuration nearest the goal in sparsity has the best mean validation score
    (the report's ``select_by``), so a round costs at most one configuration per goal."""
    method = _methods()[row.method]
    control, scale = method.sparsity_control
    column = row.search_column or method.sparsity_column
    check = manifest.checker()
    runs = {canonical_json(point): [spec.run_id for spec in expand_row(manifest, row, check, key, [point])]
            for point in points}
    run_ids = [run_id for ids in runs.values() for run_id in ids]
    if not all(store.is_done(run_id) or store.has_failed(run_id) for run_id in run_ids):
        return None  # a failed run is finished: the round goes on without it
    records, broken = store.collect(run_ids)
    if broken or records.empty:
        return None
    from .report.select import with_harmonic_means  # here: the report's selection imports this module
    records = with_harmonic_means(records).set_index("run_id")
    if column not in records:
        records[column] = math.nan  # records stored before the column existed fit nothing
    groups: dict[str, tuple[dict, list[tuple[float, float, float]]]] = {}
    for point in points:
        seeds = records.loc[records.index.intersection(runs[canonical_json(point)])]
        if control in point and len(seeds):  # a point the constraint removes has no runs
            others = {k: v for k, v in point.items() if k != control}
            tried = (point[control], seeds[column].astype(float).mean(),
                     seeds[manifest.report["select_by"]].astype(float).mean())
            groups.setdefault(canonical_json(others), (others, []))[1].append(tried)
    new = []
    for goal in manifest.goal_sparsities:
        if any(abs(s - goal) <= LANDING_TOLERANCE + SLACK for _, tried in groups.values() for _, s, _ in tried):
            continue
        offers = [(score_near(tried, goal), {**others, control: value}) for others, tried in groups.values()
                  for value in propose([(v, s) for v, s, _ in tried], [goal], scale, bounds=method.params[control])]
        if offers:
            point = max(offers, key=lambda offer: offer[0])[1]
            new += [point] if point not in new else []
    return new


def score_near(tried: list[tuple[float, float, float]], goal: float) -> float:
    """The validation score of the tried configuration whose sparsity is nearest ``goal``."""
    score = min(tried, key=lambda t: abs(t[1] - goal))[2]
    return score if math.isfinite(score) else -math.inf
