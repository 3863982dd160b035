"""Manifests: one TOML file per paper table or figure, validated before anything runs.

A manifest declares the paper setting (training, rows of methods with fixed parameters and
grids, goal sparsities, seeds, report and SLURM settings) and named profiles that override
any of it. Every error names the file and the key.

How a profile overrides (most specific first): the profile's row (``[profiles.P.rows.LABEL]``),
then the profile's top level (its ``[training]`` and ``params``), then the manifest's row,
then the manifest's top level. So a key the profile fixes at its top level is no longer an
axis of any row's grid, unless the profile's row names it again. Tables merge key by key:
a row's ``grid`` table merges axis by axis (an axis named replaces that axis); a ``grid``
that is a list of tables (a union) replaces the row's grid whole; other values replace.
A top-level ``params`` table sets a method parameter on every row whose method has it.

An epoch count of a method (T_rt, T_0: a ``Param`` with ``of_budget``) may be given as a
share of the training budget T, ``"5%"``, so that one manifest serves profiles of different
T; it is resolved to round(p T / 100) epochs, at least 1, before the run id is computed.
A figure that trains nothing (``report.kind = "schedules"``) declares no rows; one whose runs
prune nothing (``"elasticity"``) declares no goal sparsities.
"""

import ast
import copy
import json
import math
import operator
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import resources
from itertools import product
from pathlib import Path

from schema import REQUIRED, ConfigError, Param, closest, resolve

from .runspec import RunSpec, canonical_json

DEFAULT_PROFILE = "cpu"
REPORT_COLUMNS = ("accuracy", "speedup", "sparsity")
REWINDING_FIGURES = ("best", "curves", "algorithm", "speedup")
NOTHING_TRAINED = ("schedules",)  # report kinds drawn from the manifest alone, with no rows
NOTHING_PRUNED = ("elasticity",)  # report kinds of runs that prune nothing, with no goal sparsities
MAX_RUNS = 200_000  # per manifest and profile: more would take minutes to expand, not seconds
MAX_MANIFEST_BYTES = 1_000_000
MAX_CONSTRAINT_CHARS = 500
OPTIMIZERS = ("sgd", "adam")


def manifest_dir() -> Path:
    return Path(str(resources.files("bench") / "manifests"))


def targets() -> list[str]:
    return sorted(p.stem for p in manifest_dir().glob("*.toml"))


# --- the schema -----------------------------------------------------------------------

def _methods():
    from methods import METHODS
    return METHODS


def _models():
    from models import MODELS
    return MODELS


def _datasets():
    from .data import DATASETS
    return DATASETS


def _training_kinds():
    from methods.core.schedules import TRAINING_KINDS
    return TRAINING_KINDS


def _fixed_retraining_kinds():
    from methods.core.schedules import FIXED_KINDS
    return FIXED_KINDS


TRAINING = {
    "model": Param(help="architecture (`prunebench list`)", type=str, choices=_models),
    "dataset": Param(help="dataset (`prunebench list`)", type=str, choices=_datasets),
    "epochs": Param(help="training budget", symbol="T", type=int, above=0, at_most=100_000),
    "batch_size": Param(help="training batch size", type=int, above=0),
    "optimizer": Param("sgd", "sgd (with momentum, nesterov) or adam (PyTorch's betas; the weight decay an L2 term "
                              "in its gradient, not AdamW's, as the SNIP-it authors' torch.optim.Adam)",
                       choices=OPTIMIZERS),
    "lr": Param(help="initial learning rate", symbol="eta_1", type=float, above=0),
    "momentum": Param(0.9, "SGD momentum", at_least=0, below=1),
    "nesterov": Param(False, "Nesterov momentum (SGD)"),
    "weight_decay": Param(0.0, "weight decay", at_least=0),
    "grad_clip": Param(None, "clip the global L2 norm of all gradients at this value in every step, before the "
                             "optimizer's (SNIP-it: 10); unset: no clipping", type=float, above=0),
    "lr_schedule": Param(help="learning-rate schedule of regular training", type=dict),
    "threads": Param(1, "CPU threads per run", above=0),
    "augment": Param(None, "training data pipeline: unset, the dataset's own (CIFAR: random crops, flips with "
                           "probability 1/2, CIFAR's statistics); snipit: the SNIP-it authors' (CIFAR-10: flips with "
                           "probability 0.2 without crops, ImageNet's mean and std; MNIST's and Imagenette's are "
                           "theirs already, MNIST-1D and the digits stay unaugmented)", type=str, choices=("snipit",)),
    "val_fraction": Param(0.1, "share of the training set held out for validation", above=0, below=1),
    "split_seed": Param(0, "seed of the train/validation split", at_least=0),
    "amp": Param(False, "mixed precision (on CUDA only)"),
}
TRAINING_AXES = {name: param for name, param in TRAINING.items() if param.kind is not dict}
LR_SCHEDULE = {
    "kind": Param("stepped", "stepped, linear, cosine or constant", choices=_training_kinds),
    "milestones": Param([], "epochs after which a stepped schedule decays"),
    "gamma": Param(0.1, "decay factor at each milestone", above=0),
    "warmup_epochs": Param(0.0, "epochs of linear warm-up", at_least=0),
}
ROW = {
    "label": Param(type=str),
    "method": Param(type=str, choices=_methods),
    "params": Param({}),
    "grid": Param({}, type=(dict, list)),
    "constraint": Param(None, type=str),
    "search": Param(None, type=dict),
    "dense": Param({}, "what this row's dense parents store or how they train, over the manifest's [dense]"),
    "diagnostic": Param(False, "a row that tests a belief about a claim (claims[].belief): run, selected and "
                               "judged like any row, but kept out of the paper's table and comparison"),
}
SEARCH_COLUMNS = ("sparsity", "node_sparsity")
SEARCH = {
    "rounds": Param(help="rounds of the search for configurations that land in the goal columns",
                    type=int, at_least=0, at_most=10),
    "column": Param(None, "the record's sparsity the search fits to the goals (default: the method's "
                          "sparsity_column)", type=str, choices=SEARCH_COLUMNS),
}

REPORT = {
    "kind": Param("table", choices=("table", "stability", "envelope", "initial_budget", "rewinding", "aimp",
                                    "mask_dynamics", "trade_off", *NOTHING_TRAINED, *NOTHING_PRUNED)),
    "columns": Param(list(REPORT_COLUMNS)),
    "time_column": Param("time", choices=("time", "throughput")),
    "select_by": Param("val_accuracy", "the validation score a configuration is selected by: accuracy, accuracy "
                                       "right after pruning, or the harmonic mean of accuracy and weight sparsity "
                                       "(the SNIP-it paper's HM) or node sparsity",
                       choices=("val_accuracy", "val_accuracy_after_prune", "val_harmonic_mean",
                                "val_node_harmonic_mean")),
    "measures": Param("unstructured", "kind trade_off: the table's columns: accuracy, weight sparsity and HM "
                                      "(unstructured, the paper's Tables 2 and 3), or accuracy, weight and node "
                                      "sparsity and the reductions of FLOPs, time, disk and RAM (structured, its "
                                      "Tables 1 and 4)", choices=("unstructured", "structured")),
    "bold": Param(2, at_least=0),
    "reference": Param(None, type=str),
    "schedules": Param(None, type=dict),  # kind "schedules": SCHEDULE_FIGURE
    "baselines": Param([], "kind envelope: rows drawn as horizontal lines at their best configuration; kind aimp: "
                           "the IMP rows every row of the same technique is compared with"),
    "envelope_by": Param(None, "kind envelope: also draw the envelope per value of this hyperparameter "
                               "(envelope-by-<name>.*), e.g. weight_decay", type=str),
    "split_by": Param([], "kind table: hyperparameters whose values split every goal column (e.g. retrain_epochs)"),
    "panel_columns": Param(2, "kind initial_budget: panels (one per row) side by side", type=int, above=0),
    "panels": Param({}, "kind table: the Pareto plots in panels, each a title and the row labels it draws"),
    "groups": Param({}, "kind trade_off: the table's groups of rows in order, each a phase of the reference (e.g. "
                        "before_training, titled \"Prunes before training\") and its row labels; the rows in no "
                        "group (the dense baseline) come first"),
    "reference_setting": Param({}, "kind trade_off: the reference table's column values (e.g. dataset and network) "
                                   "of the paper's numbers set beside ours"),
    "figures": Param(["best", "curves"], "kind rewinding: the figures drawn, of " + ", ".join(REWINDING_FIGURES)),
    "iterations": Param([], "kind mask_dynamics: the iterations of the first row whose mask changes Figure 4 "
                            "draws (none named: every intermediate one)"),
}
# The SNIP-it paper's structured measures (Tables 1 and 4), summarised and judged at the trade-off
# points only: the node sparsity and its HM with accuracy, and the reductions against the unpruned
# network.
TRADE_OFF_METRICS = ("node_sparsity", "node_harmonic_mean", "train_flops_reduction", "shrunk_inference_speedup",
                     "train_time_reduction", "disk_reduction", "train_memory_reduction")
CLAIM = {
    "text": Param(type=str),
    "better": Param(type=str),
    "worse": Param(type=str),
    "metric": Param("test_accuracy", "harmonic_mean (of test accuracy and sparsity) and the structured measures "
                                     "are judged at each row's "
                                     "trade-off point, the goal and configuration of highest validation HM; the "
                                     "others at each goal",
                    choices=("test_accuracy", "pruning_stability", "retrain_gain", "theoretical_speedup",
                             "harmonic_mean", *TRADE_OFF_METRICS)),
    "goals": Param(None, type=list),
    "where": Param(None, "hyperparameter values the claim is judged at (e.g. retrain_epochs = \"5%\"): cells "
                         "selected among those runs only", type=dict),
    "relation": Param("beats", "beats: better is ahead beyond the seed spread; matches: it is not behind beyond it",
                      choices=("beats", "matches")),
    "statistic": Param("mean", "the seeds' statistic compared (AIMP reports medians)", choices=("mean", "median")),
    "belief": Param(None, type=dict),
}
# What we believe causes a claim's disagreement, stated as an ordering our runs can test
# (for example a diagnostic row that keeps every layer alive against the collapsing one).
BELIEF = {name: param for name, param in CLAIM.items() if name != "belief"}
SLURM = {
    "partition": Param(None, type=str),
    "time_min": Param(24 * 60, above=0),
    "cpus_per_task": Param(1, above=0),
    "gpus_per_node": Param(0, at_least=0),
    "mem_gb": Param(4.0, above=0),
    "array_parallelism": Param(64, above=0),
}
TOP = {
    "title": Param(type=str),
    "source": Param(type=str),
    "description": Param(""),
    "default_profile": Param(DEFAULT_PROFILE),
    "training": Param(type=dict),
    "params": Param({}),
    "dense": Param({}, "the dense parents of the pruned runs: the hyperparameters of method dense (rewind_points, "
                       "stop_epoch, mask_dynamics)"),
    "goal_sparsities": Param([]),
    "seeds": Param([]),
    "rows": Param([]),
    "report": Param({}),
    "claims": Param([]),
    "slurm": Param({}),
    "profiles": Param({}),
}
GOAL = Param(type=float, at_least=0, below=1)
SEED = Param(type=int, at_least=0)
MILESTONE = Param(type=int, above=0)
SCHEDULE_FIGURE = {
    "kinds": Param(help="fixed retraining schedules drawn, in order (the tuned ones need an initial value)",
                   type=list),
    "retrain_epochs": Param(help="retraining budget drawn, in epochs or a share of T", symbol="T_rt",
                            type=(int, str)),
    "allr_d1": Param([0.0], "ALLR's d1 values drawn (its d = max(d1, d2) depends on the pruning step)"),
    "steps_per_epoch": Param(help="iterations per epoch: ceil(training examples / batch size)", type=int, above=0),
}


def budget_epochs(value, epochs: int, key: str) -> int:
    """An epoch count given as an int, or as a share ``"p%"`` of the budget T = ``epochs``:
    round(p T / 100) (halves up), at least 1."""
    if isinstance(value, int):
        return value
    text = value.strip()
    try:
        share = float(text[:-1]) if text.endswith("%") else math.nan
    except ValueError:
        share = math.nan
    if not 0 < share <= 10_000:
        raise ConfigError(f'expected epochs or a share of the budget T such as "5%", got {value!r}', key=key)
    return max(1, math.floor(share * epochs / 100 + 0.5))


def is_share(value) -> bool:
    """Is ``value`` a share of the budget T, such as "5%"?"""
    return isinstance(value, str) and value.strip().endswith("%")


def in_epochs(params: dict[str, Param], values: dict, epochs: int) -> dict:
    """``values`` with every share of T given for an ``of_budget`` parameter resolved to epochs."""
    return {name: budget_epochs(value, epochs, name) if name in params and params[name].of_budget
            and isinstance(value, str) else value for name, value in values.items()}


def unregistered(schema: dict[str, Param]) -> dict[str, Param]:
    """The schema without the choices that come from registries (methods, models, datasets,
    schedules), whose import costs torch: what a report checks a manifest with."""
    return {name: replace(p, choices=None) if callable(p.choices) else p for name, p in schema.items()}


def training_config(values: dict, where: str = "training", registries: bool = True) -> dict:
    """A training configuration from the values given, checked, with every default filled
    in (the manifest, the tests and the benchmarks all build theirs here)."""
    schema, schedule = (TRAINING, LR_SCHEDULE) if registries else (unregistered(TRAINING), unregistered(LR_SCHEDULE))
    training = resolve(schema, values, where)
    if training["optimizer"] != "sgd" and training["nesterov"]:
        raise ConfigError(f"Nesterov momentum is SGD's, not {training['optimizer']}'s", key=f"{where}.nesterov")
    training["lr_schedule"] = resolve(schedule, training["lr_schedule"], f"{where}.lr_schedule")
    for i, milestone in enumerate(training["lr_schedule"]["milestones"]):
        MILESTONE.check(milestone, f"{where}.lr_schedule.milestones[{i}]")
    return training


class Checker:
    """Validates one manifest (file + profile) and raises ConfigError naming file and key."""

    def __init__(self, path: Path, prefix: str = ""):
        self.path, self.prefix = path, prefix

    def fail(self, key: str, message: str):
        raise ConfigError(message, file=str(self.path), key=self.prefix + key)

    @contextmanager
    def placed(self, where: str = ""):
        """Errors raised inside without a file are placed in this manifest, under ``where``."""
        try:
            yield
        except ConfigError as error:
            if error.file is not None:
                raise
            raise error.within(str(self.path), self.prefix + where) from None

    def value(self, key: str, value, param: Param):
        with self.placed():
            return param.check(value, key)

    def table(self, key: str, table: dict, schema: dict[str, Param]) -> dict:
        """Check a table: no unknown keys, required keys present, defaults filled in."""
        with self.placed():
            return resolve(schema, table, key)


# --- the manifest ----------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    label: str
    method: str
    params: dict
    grids: list[dict]  # the row's grid is the union of these cartesian products
    constraint: str | None
    dense: dict = field(default_factory=dict)  # the parents' settings over the manifest's [dense]
    search_rounds: int = 0  # rounds of the sparsity search (bench/search.py) after the first grid
    search_column: str | None = None  # the record column it fits; None: the method's sparsity_column
    diagnostic: bool = False  # tests a claim's belief; not a row of the paper's table

    def points(self) -> list[dict]:
        """The row's grid points, each once (a list of grids is their union)."""
        points = [dict(zip(grid, values)) for grid in self.grids for values in product(*grid.values())]
        return [json.loads(point) for point in dict.fromkeys(canonical_json(p) for p in points)]


@dataclass(frozen=True)
class Manifest:
    path: Path
    target: str
    profile: str
    profiles: tuple[str, ...]
    title: str
    source: str
    description: str
    training: dict
    params: dict
    dense: dict
    goal_sparsities: list
    seeds: list
    rows: list[Row]
    report: dict
    claims: list[dict]
    slurm: dict
    complete: bool = True  # False when loaded without the registries: rows hold only label and method

    def checker(self) -> "Checker":
        return Checker(self.path, "" if self.profile == "base" else f"profiles.{self.profile}: ")

    def expand(self) -> list[RunSpec]:
        """Every run of every row; the dense parents are reachable through ``parent``. What a
        method rejects while planning (a budget that does not fit) is a ConfigError naming
        the row and the key."""
        if not self.complete:
            raise RuntimeError("a manifest loaded without the registries cannot be expanded")
        check = self.checker()
        return [spec for i, row in enumerate(self.rows) for spec in expand_row(self, row, check, f"rows[{i}]")]


def expand_row(manifest: Manifest, row: Row, check: Checker, key: str, points: list[dict] | None = None) \
        -> list[RunSpec]:
    """The runs of the row's grid points (default: its first grid, ``row.points()``)."""
    method = _methods()[row.method]
    shared = {name: value for name, value in manifest.params.items() if name in method.params}
    specs = []
    for point in row.points() if points is None else points:
        settings = {**shared, **row.params, **point}
        training = {**manifest.training, **{k: v for k, v in settings.items() if k in TRAINING_AXES}}
        with check.placed(f"{key}."):
            hp = method.resolve(in_epochs(method.params, {k: v for k, v in settings.items() if k in method.params},
                                          training["epochs"]))
        for goal in manifest.goal_sparsities if method.takes_goal else [None]:
            scope = {**training, **hp, "goal_sparsity": goal}
            if row.constraint and not evaluate_constraint(row.constraint, scope, check, f"{key}.constraint"):
                continue
            planned = method(hp, training, goal)
            check_plan(planned, point, check, key)
            if method.prunes_after_training:
                check_parent(planned, dense_parent(row.dense, 0, training), point, check, key)
            for seed in manifest.seeds:
                if method.name == "dense":  # the very run the pruned rows start from
                    own = {name: value for name, value in hp.items() if value is not None}
                    specs.append(replace(dense_parent({**row.dense, **own}, seed, training), label=row.label))
                    continue
                parent = dense_parent(row.dense, seed, training) if method.prunes_after_training else None
                specs.append(RunSpec(row.method, seed, training, hp, goal, parent, row.label, method.revision))
    return specs


def check_parent(method, parent: RunSpec, point: dict, check: Checker, key: str) -> None:
    """The dense parent plans, and stores the weights that ``method`` rewinds to."""
    dense = _methods()["dense"](parent.hp, parent.training, None)
    check_plan(dense, {}, check, f"{key}.dense")
    missing = sorted(method.rewind_epochs() - set(dense.stored_epochs()))
    if missing:
        at = "".join(f", {k}={v}" for k, v in point.items())
        check.fail(f"{key}.dense.rewind_points", f"the run rewinds to epoch(s) {missing} of its dense parent, which "
                   f"stores {dense.stored_epochs()} (method {method.name!r}{at}): add them to [dense] rewind_points")


def check_plan(method, point: dict, check: Checker, key: str) -> None:
    """Plan the method's phases; what it rejects (a budget that does not fit) is a
    ConfigError at the row's key, with the grid point."""
    try:
        method.phases()
    except ConfigError as error:
        at = "".join(f", {k}={v}" for k, v in point.items())
        check.fail(f"{key}.{'grid' if error.key in point else 'params'}.{error.key}",
                   f"{error.message} (method {method.name!r}{at}, goal sparsity {method.goal_sparsity})")


# --- constraints: arithmetic and comparisons on a grid point, evaluated in bounded time ----

BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge}
ALLOWED_NODES = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.BinOp, ast.Compare, ast.Name,
                 ast.Load, ast.Constant, *BINARY, *UNARY, *COMPARE)


def parse_constraint(text: str) -> tuple[ast.Expression, set[str]]:
    """Parse an arithmetic/comparison expression; returns the tree and the names it uses."""
    if len(text) > MAX_CONSTRAINT_CHARS:
        raise SyntaxError(f"longer than {MAX_CONSTRAINT_CHARS} characters")
    tree = ast.parse(text, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, ALLOWED_NODES):
            raise SyntaxError(f"{type(node).__name__} is not allowed in a constraint")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str)):
            raise SyntaxError(f"the constant {node.value!r} is not allowed in a constraint")
    return tree, {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _number(value):
    """Arithmetic is done in floats, so no expression can build an unbounded integer."""
    if isinstance(value, str):
        raise ArithmeticError(f"no arithmetic on the string {value!r}")
    return float(value)


def _evaluate(node: ast.AST, scope: dict):
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, scope)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return scope[node.id]
    if isinstance(node, ast.BinOp):
        return BINARY[type(node.op)](_number(_evaluate(node.left, scope)), _number(_evaluate(node.right, scope)))
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, scope)
        return UNARY[type(node.op)](operand if isinstance(node.op, ast.Not) else _number(operand))
    if isinstance(node, ast.BoolOp):
        values = (_evaluate(value, scope) for value in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    left = _evaluate(node.left, scope)
    for op, comparator in zip(node.ops, node.comparators):
        right = _evaluate(comparator, scope)
        if not COMPARE[type(op)](left, right):
            return False
        left = right
    return True


def evaluate_constraint(text: str, scope: dict, check: Checker | None = None, key: str = "constraint") -> bool:
    tree, _ = parse_constraint(text)
    try:
        return bool(_evaluate(tree, scope))
    except (ArithmeticError, TypeError) as error:  # overflow, division by zero, a string in arithmetic
        point = ", ".join(f"{name}={scope[name]}" for name in sorted(parse_constraint(text)[1]))
        message = f"cannot be evaluated at {point}: {error}"
        if check is None:
            raise ConfigError(message, key=key) from None
        check.fail(key, message)


# --- profiles and extends ------------------------------------------------------------------

def merge(base: dict, override: dict) -> dict:
    """Deep-merge a profile into the manifest; a profile's ``rows`` table is keyed by label."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key == "rows" and isinstance(value, dict) and isinstance(out.get("rows"), list):
            for row in out["rows"]:
                if isinstance(row, dict) and row.get("label") in value:
                    row.update(merge(row, value[row["label"]]))
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def fixed_by_profile(raw: dict, override: dict) -> dict:
    """The manifest with what the profile fixes at its top level (its ``[training]`` and
    ``params`` keys) removed from every row's params and grid, so the profile's value holds."""
    fixed = set()
    for table in ("training", "params"):
        if isinstance(override.get(table), dict):
            fixed |= set(override[table])
    out = copy.deepcopy(raw)
    for row in out.get("rows", []) if isinstance(out.get("rows"), list) else ():
        if not isinstance(row, dict):
            continue
        if isinstance(row.get("params"), dict):
            row["params"] = {k: v for k, v in row["params"].items() if k not in fixed}
        grids = row.get("grid")
        if isinstance(grids, dict):
            row["grid"] = {k: v for k, v in grids.items() if k not in fixed}
        elif isinstance(grids, list):
            row["grid"] = [{k: v for k, v in g.items() if k not in fixed} if isinstance(g, dict) else g
                           for g in grids]
    return out


# --- validation ------------------------------------------------------------------------------

def validate(raw: dict, check: Checker, target: str, profile: str, registries: bool = True) -> Manifest:
    """The checked manifest. Without ``registries``, names of methods, models, datasets and
    schedules are not looked up and rows are checked for their label and method only, so
    neither the methods nor torch are imported: what a report of stored runs needs."""
    top = check.table("", raw, TOP)
    with check.placed():
        training = training_config(top["training"], registries=registries)

    report = validate_report(top["report"], check, training)
    kind = report["kind"]
    for name, what in (("goal_sparsities", "goal sparsity"), ("seeds", "seed"), ("rows", "row")):
        unwanted = kind in NOTHING_TRAINED or (kind in NOTHING_PRUNED and name == "goal_sparsities")
        if not unwanted and not top[name]:
            check.fail(name, f"must not be empty: declare at least one {what}")
        if unwanted and top[name]:
            check.fail(name, f"a report of kind {kind!r} {'trains' if kind in NOTHING_TRAINED else 'prunes'} "
                             f"nothing: remove the {name}")
    goals = [check.value(f"goal_sparsities[{i}]", g, GOAL) for i, g in enumerate(top["goal_sparsities"])]
    seeds = [check.value(f"seeds[{i}]", s, SEED) for i, s in enumerate(top["seeds"])]

    rows, labels = [], set()
    for i, raw_row in enumerate(top["rows"]):
        if not isinstance(raw_row, dict):
            check.fail(f"rows[{i}]", "must be a table ([[rows]])")
        if registries:
            rows.append(validate_row(raw_row, check, f"rows[{i}]", top["params"], top["dense"]))
        else:
            row = check.table(f"rows[{i}]", raw_row, unregistered(ROW))
            search = search_table(row, check, f"rows[{i}]")
            rows.append(Row(row["label"], row["method"], {}, [], None, search_rounds=search["rounds"],
                            search_column=search["column"], diagnostic=row["diagnostic"]))
        if registries and kind in NOTHING_PRUNED and _methods()[rows[-1].method].takes_goal:
            check.fail(f"rows[{i}].method", f"a report of kind {kind!r} draws runs that prune nothing; method "
                                            f"{rows[-1].method!r} prunes to a goal")
        if rows[-1].label in labels:
            check.fail(f"rows[{i}].label", f"duplicate label {rows[-1].label!r}")
        labels.add(rows[-1].label)
    if registries:
        check_shared_params(top["params"], rows, check)
        check_size(rows, goals, seeds, check)

    named = [(f"report.baselines[{i}]", label) for i, label in enumerate(report["baselines"])]
    for table in ("panels", "groups"):
        for title, members in report[table].items():
            if not isinstance(members, list):
                check.fail(f"report.{table}.{title}", "must be a list of row labels")
            named += [(f"report.{table}.{title}[{i}]", label) for i, label in enumerate(members)]
    for key, label in named:
        if label not in labels:
            check.fail(key, f"no row labelled {label!r}; {closest(label, labels)}")
    claims = []
    for i, raw_claim in enumerate(top["claims"]):
        claim = validate_claim(check, f"claims[{i}]", raw_claim, CLAIM, labels, training["epochs"])
        if claim["belief"] is not None:
            claim["belief"] = validate_claim(check, f"claims[{i}].belief", claim["belief"], BELIEF, labels,
                                             training["epochs"])
        claims.append(claim)
    slurm = check.table("slurm", top["slurm"], SLURM)
    for name, value in top["profiles"].items():
        if not isinstance(value, dict):
            check.fail(f"profiles.{name}", "must be a table")
    return Manifest(check.path, target, profile, tuple(top["profiles"]), top["title"], top["source"],
                    top["description"], training, top["params"],
                    dense_settings(top["dense"], check, "dense") if registries else top["dense"],
                    goals, seeds, rows, report, claims, slurm,
                    complete=registries)


def validate_report(raw: dict, check: Checker, training: dict) -> dict:
    """The ``[report]`` table; a schedule figure's ``[report.schedules]`` with its budget in
    epochs and its schedules checked."""
    report = check.table("report", raw, REPORT)
    for i, column in enumerate(report["columns"]):
        check.value(f"report.columns[{i}]", column, Param(type=str, choices=REPORT_COLUMNS))
    for i, name in enumerate(report["figures"]):
        check.value(f"report.figures[{i}]", name, Param(type=str, choices=REWINDING_FIGURES))
    for i, iteration in enumerate(report["iterations"]):
        check.value(f"report.iterations[{i}]", iteration, Param(type=int, above=0))
    if (report["kind"] == "schedules") != (report["schedules"] is not None):
        check.fail("report.schedules", 'a [report.schedules] table goes with kind = "schedules", and only with it')
    if report["schedules"] is not None:
        figure = check.table("report.schedules", report["schedules"], SCHEDULE_FIGURE)
        with check.placed():
            figure["retrain_epochs"] = budget_epochs(figure["retrain_epochs"], training["epochs"],
                                                     "report.schedules.retrain_epochs")
        kinds = Param(type=str, choices=_fixed_retraining_kinds)  # torch-free: checked by reports too
        figure["kinds"] = [check.value(f"report.schedules.kinds[{i}]", k, kinds) for i, k in enumerate(figure["kinds"])]
        figure["allr_d1"] = [check.value(f"report.schedules.allr_d1[{i}]", d, Param(type=float, at_least=0, at_most=1))
                             for i, d in enumerate(figure["allr_d1"])]
        report["schedules"] = figure
    return report


def check_shared_params(shared: dict, rows: list[Row], check: Checker) -> None:
    """Every top-level parameter belongs to some row's method."""
    methods = _methods()
    for name in shared:
        if not any(name in methods[row.method].params for row in rows):
            known = {n for row in rows for n in methods[row.method].params}
            check.fail(f"params.{name}", f"not a parameter of any row's method; {closest(name, known)}")


def check_size(rows: list[Row], goals: list, seeds: list, check: Checker) -> None:
    """Refuse a grid too large to expand in seconds, before expanding it."""
    total = 0
    for i, row in enumerate(rows):
        points = sum(math.prod(len(axis) for axis in grid.values()) for grid in row.grids)
        total += points * len(goals) * len(seeds)
        if total > MAX_RUNS:
            check.fail(f"rows[{i}].grid", f"the manifest would expand to more than {MAX_RUNS:,} runs "
                                          f"(this row alone: {points:,} grid points)")


def validate_row(raw: dict, check: Checker, key: str, shared: dict, dense: dict) -> Row:
    row = check.table(key, raw, ROW)
    method = _methods()[row["method"]]
    for name in sorted(TRAINING.keys() & method.params.keys()):
        check.fail(f"{key}.method", f"method {row['method']!r} has a hyperparameter {name!r} named like a "
                                    "training key; a grid could not tell them apart")
    settable = {**TRAINING_AXES, **method.params}

    def setting(name_key: str, name: str, value):
        if name not in settable:
            check.fail(name_key, f"not a parameter of method {row['method']!r} or a training key; "
                                 f"{closest(name, settable)}")
        if settable[name].of_budget and isinstance(value, str):
            with check.placed():
                budget_epochs(value, 1, name_key)  # the share is checked here, resolved per run
            return value
        return check.value(name_key, value, settable[name])

    params = {name: setting(f"{key}.params.{name}", name, v) for name, v in row["params"].items()}
    for name, value in shared.items():
        if name in method.params:
            setting(f"params.{name}", name, value)
    raw_grids = row["grid"] if isinstance(row["grid"], list) else [row["grid"]]
    grids = []
    for g, raw_grid in enumerate(raw_grids):
        where = f"{key}.grid" if isinstance(row["grid"], dict) else f"{key}.grid[{g}]"
        if not isinstance(raw_grid, dict):
            check.fail(where, "must be a table of lists, or a list of such tables")
        grid = {}
        for name, values in raw_grid.items():
            if not isinstance(values, list) or not values:
                check.fail(f"{where}.{name}", "must be a non-empty list of values")
            grid[name] = [setting(f"{where}.{name}[{i}]", name, v) for i, v in enumerate(values)]
        missing = [n for n, p in method.params.items()
                   if p.default is REQUIRED and n not in params and n not in grid and n not in shared]
        if missing:
            check.fail(f"{key}.params.{missing[0]}", f"required by method {row['method']!r} (set it in params or grid)")
        grids.append(grid)
    if row["constraint"] is not None:
        try:
            _, names = parse_constraint(row["constraint"])
        except SyntaxError as error:
            check.fail(f"{key}.constraint", f"invalid expression {row['constraint']!r}: {error.msg}")
        known = {*settable, "goal_sparsity"}
        for name in sorted(names - known):
            check.fail(f"{key}.constraint", f"unknown name {name!r}; {closest(name, known)}")
    search = search_table(row, check, key)
    if search["rounds"] and method.sparsity_control is None:
        check.fail(f"{key}.search", f"method {row['method']!r} is given its sparsity; only a method that learns it "
                                    "from a hyperparameter (sparsity_control) can be searched")
    parents = dense_settings({**dense, **row["dense"]}, check, f"{key}.dense")
    if row["dense"] and not (method.prunes_after_training or method.name == "dense"):
        check.fail(f"{key}.dense", f"method {row['method']!r} starts from no dense run")
    return Row(row["label"], row["method"], params, grids, row["constraint"], parents, search["rounds"],
               search["column"], row["diagnostic"])


def dense_settings(raw: dict, check: Checker, key: str) -> dict:
    """The settings of the dense parents given (``[dense]``), checked against method dense's
    hyperparameters; rewind points may be shares of T ("10%"), resolved per run."""
    settings = check.table(key, raw, {name: replace(p, default=None) for name, p in _methods()["dense"].params.items()})
    for i, point in enumerate(settings["rewind_points"] or []):
        check.value(f"{key}.rewind_points[{i}]", point, Param(type=(int, str)))
        if isinstance(point, str):
            with check.placed():
                budget_epochs(point, 1, f"{key}.rewind_points[{i}]")
    return {name: value for name, value in settings.items() if value is not None}


def dense_parent(settings: dict, seed: int, training: dict) -> RunSpec:
    """The dense run a pruned run starts from, its rewind points in epochs, sorted, each once."""
    dense = _methods()["dense"]
    if "rewind_points" in settings:
        epochs = {budget_epochs(point, training["epochs"], "rewind_points") for point in settings["rewind_points"]}
        settings = {**settings, "rewind_points": sorted(epochs)}
    return RunSpec("dense", seed, training, settings, revision=dense.revision)


def validate_claim(check: Checker, key: str, raw, schema: dict, labels: set[str], epochs: int) -> dict:
    """A claim (or a claim's belief): two row labels, a metric and the goals it names."""
    if not isinstance(raw, dict):
        check.fail(key, "must be a table ([[claims]] or [claims.belief])")
    claim = check.table(key, raw, schema)
    for side in ("better", "worse"):
        if claim[side] not in labels:
            check.fail(f"{key}.{side}", f"no row labelled {claim[side]!r}; {closest(claim[side], labels)}")
    claim["goals"] = [check.value(f"{key}.goals[{j}]", g, GOAL) for j, g in enumerate(claim["goals"] or [])] or None
    if claim["where"] is not None:
        with check.placed():
            claim["where"] = {name: budget_epochs(value, epochs, f"{key}.where.{name}") if is_share(value)
                              else value for name, value in claim["where"].items()}
    return claim


def search_table(row: dict, check: Checker, key: str) -> dict:
    """The row's ``search`` table, checked (0 rounds without one)."""
    if row["search"] is None:
        return {"rounds": 0, "column": None}
    return check.table(f"{key}.search", row["search"], SEARCH)


def manifest_path(target: str) -> Path:
    """A target name under bench/manifests/, or a path to a TOML file."""
    candidate = Path(target)
    if candidate.suffix == ".toml":
        if not candidate.is_file():
            raise ConfigError("no such manifest file", file=target)
        return candidate
    path = manifest_dir() / f"{target}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown target {target!r}; {closest(target, targets())}", key="target")
    return path


def read_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The manifest's TOML, on top of the manifest it ``extends`` (another target's name):
    a figure or second layout reuses a table's rows, grids and profiles, and so its runs."""
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ConfigError(f"larger than {MAX_MANIFEST_BYTES:,} bytes; a manifest is a few kilobytes", file=str(path))
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"not valid TOML: {error}", file=str(path)) from None
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not (manifest_dir() / f"{base}.toml").is_file():
        raise ConfigError(f"unknown target {base!r}; {closest(base, targets())}", file=str(path), key="extends")
    parent = manifest_dir() / f"{base}.toml"
    if parent in seen:
        raise ConfigError(f"circular extends through {base!r}", file=str(path), key="extends")
    inherited = read_raw(parent, (*seen, path))
    if isinstance(raw.get("rows"), list):
        inherited = without_row_overrides(inherited)
    return merge(inherited, raw)


def without_row_overrides(raw: dict) -> dict:
    """``raw`` without its profiles' overrides of single rows: a manifest that lists its own
    rows replaces the rows they were written for."""
    out = copy.deepcopy(raw)
    for profile in out.get("profiles", {}).values() if isinstance(out.get("profiles"), dict) else ():
        if isinstance(profile, dict):
            profile.pop("rows", None)
    return out


def load(target: str, profile: str | None = None, registries: bool = True) -> Manifest:
    """Load, apply ``profile`` (default: the manifest's default profile) and validate
    (``registries=False``: without importing methods, models and torch; see ``validate``)."""
    path = manifest_path(target)
    raw = read_raw(path)
    name = Path(target).stem
    base = validate(raw, Checker(path), name, "base", registries)
    profile = profile or raw.get("default_profile", DEFAULT_PROFILE if base.profiles else "base")
    if profile == "base":
        return base
    if profile not in base.profiles:
        raise ConfigError(f"unknown profile {profile!r}; {closest(profile, [*base.profiles, 'base'])}",
                          file=str(path), key="profile")
    override = raw["profiles"][profile]
    labels = {row.label for row in base.rows}
    for label in override.get("rows", {}) if isinstance(override.get("rows"), dict) else ():
        if label not in labels:
            raise ConfigError(f"no row labelled {label!r}; {closest(label, labels)}", file=str(path),
                              key=f"profiles.{profile}.rows.{label}")
    merged = merge(fixed_by_profile({k: v for k, v in raw.items() if k != "profiles"}, override), override)
    merged["profiles"] = raw["profiles"]
    return validate(merged, Checker(path, prefix=f"profiles.{profile}: "), name, profile, registries)


def load_all_profiles(target: str) -> list[Manifest]:
    """The manifest under every profile it declares (what ``prunebench validate`` checks)."""
    base = load(target, "base")
    return [base, *(load(target, name) for name in base.profiles)]
