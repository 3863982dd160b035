"""Manifests: one TOML file per paper table or figure, validated before anything runs.

A manifest declares the paper setting (training, rows of methods with fixed parameters and
grids, goal sparsities, seeds, report and SLURM settings) and named profiles that override
any of it. Every error names the file and the key.
"""

import ast
import copy
import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from itertools import product
from pathlib import Path

from methods import METHODS
from methods.base import REQUIRED
from methods.schedules import TRAINING_KINDS

from .errors import ConfigError, closest
from .runspec import RunSpec, canonical_json

DEFAULT_PROFILE = "cpu"
REPORT_COLUMNS = ("accuracy", "speedup", "sparsity")


def manifest_dir() -> Path:
    return Path(str(resources.files("bench") / "manifests"))


def targets() -> list[str]:
    return sorted(p.stem for p in manifest_dir().glob("*.toml"))


# --- the schema -----------------------------------------------------------------------

def _models():
    from models import MODELS
    return MODELS


def _datasets():
    from .data import DATASETS
    return DATASETS


@dataclass(frozen=True)
class Field:
    """A manifest value: its type, default (REQUIRED if none), choices and bounds."""

    type: type | tuple
    default: object = REQUIRED
    choices: object = None  # a tuple, or a callable returning the known names
    low: float | None = None
    high: float | None = None  # exclusive
    positive: bool = False


TRAINING = {
    "model": Field(str, choices=_models),
    "dataset": Field(str, choices=_datasets),
    "epochs": Field(int, positive=True),
    "batch_size": Field(int, positive=True),
    "optimizer": Field(str, "sgd", choices=("sgd",)),
    "lr": Field(float, positive=True),
    "momentum": Field(float, 0.9, low=0, high=1),
    "nesterov": Field(bool, False),
    "weight_decay": Field(float, 0.0, low=0),
    "lr_schedule": Field(dict),
    "threads": Field(int, 1, positive=True),
    "val_fraction": Field(float, 0.1, low=0, high=1, positive=True),
    "split_seed": Field(int, 0, low=0),
    "amp": Field(bool, False),
}
LR_SCHEDULE = {
    "kind": Field(str, "stepped", choices=TRAINING_KINDS),
    "milestones": Field(list, []),
    "gamma": Field(float, 0.1, positive=True),
    "warmup_epochs": Field(float, 0.0, low=0),
}
ROW = {
    "label": Field(str),
    "method": Field(str, choices=lambda: METHODS),
    "params": Field(dict, {}),
    "grid": Field((dict, list), {}),
    "constraint": Field(str, None),
}
REPORT = {
    "kind": Field(str, "table", choices=("table", "stability")),
    "columns": Field(list, list(REPORT_COLUMNS)),
    "time_column": Field(str, "time", choices=("time", "throughput")),
    "select_by": Field(str, "val_accuracy", choices=("val_accuracy", "val_accuracy_after_prune")),
    "bold": Field(int, 2, low=0),
    "reference": Field(str, None),
}
CLAIM = {
    "text": Field(str),
    "better": Field(str),
    "worse": Field(str),
    "metric": Field(str, "test_accuracy",
                    choices=("test_accuracy", "pruning_stability", "retrain_gain", "theoretical_speedup")),
    "goals": Field(list, None),
}
SLURM = {
    "partition": Field(str, None),
    "time_min": Field(int, 24 * 60, positive=True),
    "cpus_per_task": Field(int, 1, positive=True),
    "gpus_per_node": Field(int, 0, low=0),
    "mem_gb": Field(float, 4.0, positive=True),
    "array_parallelism": Field(int, 64, positive=True),
}
TOP = {
    "title": Field(str),
    "source": Field(str),
    "description": Field(str, ""),
    "default_profile": Field(str, DEFAULT_PROFILE),
    "training": Field(dict),
    "goal_sparsities": Field(list),
    "seeds": Field(list),
    "rows": Field(list),
    "report": Field(dict, {}),
    "claims": Field(list, []),
    "slurm": Field(dict, {}),
    "profiles": Field(dict, {}),
}


class Checker:
    """Validates one manifest (file + profile) and raises ConfigError naming file and key."""

    def __init__(self, path: Path, prefix: str = ""):
        self.path, self.prefix = path, prefix

    def fail(self, key: str, message: str):
        raise ConfigError(message, file=str(self.path), key=self.prefix + key)

    def value(self, key: str, value, spec: Field):
        """Check one value against its field; returns it with ints widened to floats."""
        if value is None and spec.default is None:
            return None
        if isinstance(value, bool) and spec.type is not bool:
            self.fail(key, f"expected {spec.type.__name__}, got a boolean {value!r}")
        if spec.type is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, spec.type):
            self.fail(key, f"expected {getattr(spec.type, '__name__', spec.type)}, got {type(value).__name__} {value!r}")
        choices = spec.choices() if callable(spec.choices) else spec.choices
        if choices is not None and value not in choices:
            self.fail(key, f"unknown value {value!r}; {closest(value, choices)}")
        if spec.positive and value <= 0:
            self.fail(key, f"must be positive, got {value!r}")
        if spec.low is not None and value < spec.low:
            self.fail(key, f"must be at least {spec.low}, got {value!r}")
        if spec.high is not None and value >= spec.high:
            self.fail(key, f"must be below {spec.high}, got {value!r}")
        return value

    def table(self, key: str, table: dict, schema: dict[str, Field]) -> dict:
        """Check a table: no unknown keys, required keys present, defaults filled in."""
        for name in table:
            if name not in schema:
                self.fail(f"{key}.{name}".lstrip("."), f"unknown key; {closest(name, schema)}")
        out = {}
        for name, spec in schema.items():
            full = f"{key}.{name}".lstrip(".")
            if name in table:
                out[name] = self.value(full, table[name], spec)
            elif spec.default is REQUIRED:
                self.fail(full, "missing required key")
            else:
                out[name] = copy.deepcopy(spec.default)
        return out


# --- the manifest ----------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    label: str
    method: str
    params: dict
    grids: list[dict]  # the row's grid is the union of these cartesian products
    constraint: str | None


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
    goal_sparsities: list
    seeds: list
    rows: list[Row]
    report: dict
    claims: list[dict]
    slurm: dict

    def expand(self) -> list[RunSpec]:
        """Every run of every row; the dense parents are reachable through ``parent``."""
        return [spec for row in self.rows for spec in expand_row(self, row)]


def expand_row(manifest: Manifest, row: Row) -> list[RunSpec]:
    method = METHODS[row.method]
    specs = []
    points = [dict(zip(grid, values)) for grid in row.grids for values in product(*grid.values())]
    for point in dict.fromkeys(canonical_json(p) for p in points):
        settings = {**row.params, **json.loads(point)}
        training = {**manifest.training, **{k: v for k, v in settings.items() if k in TRAINING}}
        hp = {name: settings.get(name, param.default) for name, param in method.params.items()}
        goals = manifest.goal_sparsities if method.takes_goal else [None]
        for goal in goals:
            scope = {**training, **hp, "goal_sparsity": goal}
            if row.constraint and not evaluate_constraint(row.constraint, scope):
                continue
            for seed in manifest.seeds:
                parent = RunSpec("dense", seed, training) if method.prunes_after_training else None
                specs.append(RunSpec(row.method, seed, training, hp, goal, parent, row.label))
    return specs


ALLOWED_NODES = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
                 ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
                 ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Name, ast.Load,
                 ast.Constant)


def parse_constraint(text: str) -> tuple[ast.Expression, set[str]]:
    """Parse an arithmetic/comparison expression; returns the tree and the names it uses."""
    tree = ast.parse(text, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, ALLOWED_NODES):
            raise SyntaxError(f"{type(node).__name__} is not allowed in a constraint")
    return tree, {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def evaluate_constraint(text: str, scope: dict) -> bool:
    tree, _ = parse_constraint(text)
    return bool(eval(compile(tree, "<constraint>", "eval"), {"__builtins__": {}}, scope))


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


def validate(raw: dict, check: Checker, target: str, profile: str) -> Manifest:
    top = check.table("", raw, TOP)
    training = check.table("training", top["training"], TRAINING)
    training["lr_schedule"] = check.table("training.lr_schedule", training["lr_schedule"], LR_SCHEDULE)
    for i, milestone in enumerate(training["lr_schedule"]["milestones"]):
        check.value(f"training.lr_schedule.milestones[{i}]", milestone, Field(int, positive=True))

    goals = top["goal_sparsities"]
    if not goals:
        check.fail("goal_sparsities", "must not be empty")
    goals = [check.value(f"goal_sparsities[{i}]", g, Field(float, low=0, high=1)) for i, g in enumerate(goals)]
    seeds = top["seeds"]
    if not seeds:
        check.fail("seeds", "must not be empty")
    seeds = [check.value(f"seeds[{i}]", s, Field(int, low=0)) for i, s in enumerate(seeds)]

    if not top["rows"]:
        check.fail("rows", "must declare at least one row")
    rows, labels = [], set()
    for i, raw_row in enumerate(top["rows"]):
        if not isinstance(raw_row, dict):
            check.fail(f"rows[{i}]", "must be a table ([[rows]])")
        rows.append(validate_row(raw_row, check, f"rows[{i}]", training))
        if rows[-1].label in labels:
            check.fail(f"rows[{i}].label", f"duplicate label {rows[-1].label!r}")
        labels.add(rows[-1].label)

    report = check.table("report", top["report"], REPORT)
    for i, column in enumerate(report["columns"]):
        check.value(f"report.columns[{i}]", column, Field(str, choices=REPORT_COLUMNS))
    claims = []
    for i, raw_claim in enumerate(top["claims"]):
        if not isinstance(raw_claim, dict):
            check.fail(f"claims[{i}]", "must be a table ([[claims]])")
        claim = check.table(f"claims[{i}]", raw_claim, CLAIM)
        for side in ("better", "worse"):
            if claim[side] not in labels:
                check.fail(f"claims[{i}].{side}", f"no row labelled {claim[side]!r}; {closest(claim[side], labels)}")
        claim["goals"] = [check.value(f"claims[{i}].goals[{j}]", g, Field(float, low=0, high=1))
                          for j, g in enumerate(claim["goals"] or [])] or None
        claims.append(claim)
    slurm = check.table("slurm", top["slurm"], SLURM)
    for name, value in top["profiles"].items():
        if not isinstance(value, dict):
            check.fail(f"profiles.{name}", "must be a table")
    return Manifest(check.path, target, profile, tuple(top["profiles"]), top["title"], top["source"],
                    top["description"], training, goals, seeds, rows, report, claims, slurm)


def validate_row(raw: dict, check: Checker, key: str, training: dict) -> Row:
    row = check.table(key, raw, ROW)
    method = METHODS[row["method"]]
    settable = {**{k: v for k, v in TRAINING.items() if v.type is not dict}, **method_fields(method)}

    def setting(name_key: str, name: str, value):
        if name not in settable:
            check.fail(name_key, f"not a parameter of method {row['method']!r} or a training key; "
                                 f"{closest(name, settable)}")
        return check.value(name_key, value, settable[name])

    params = {name: setting(f"{key}.params.{name}", name, v) for name, v in row["params"].items()}
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
        missing = [n for n, p in method.params.items() if p.default is REQUIRED and n not in params and n not in grid]
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
    return Row(row["label"], row["method"], params, grids, row["constraint"])


def method_fields(method) -> dict[str, Field]:
    return {name: Field(p.type, choices=p.choices, positive=p.positive) for name, p in method.params.items()}


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
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}", file=str(path)) from None
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not (manifest_dir() / f"{base}.toml").is_file():
        raise ConfigError(f"unknown target {base!r}; {closest(base, targets())}", file=str(path), key="extends")
    parent = manifest_dir() / f"{base}.toml"
    if parent in seen:
        raise ConfigError(f"circular extends through {base!r}", file=str(path), key="extends")
    return merge(read_raw(parent, (*seen, path)), raw)


def load(target: str, profile: str | None = None) -> Manifest:
    """Load, apply ``profile`` (default: the manifest's default profile) and validate."""
    path = manifest_path(target)
    raw = read_raw(path)
    name = Path(target).stem
    base = validate(raw, Checker(path), name, "base")
    profile = profile or raw.get("default_profile", DEFAULT_PROFILE)
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
    merged = merge({k: v for k, v in raw.items() if k != "profiles"}, override)
    merged["profiles"] = raw["profiles"]
    return validate(merged, Checker(path, prefix=f"profiles.{profile}: "), name, profile)


def load_all_profiles(target: str) -> list[Manifest]:
    """The manifest under every profile it declares (what ``prunebench validate`` checks)."""
    base = load(target, "base")
    return [base, *(load(target, name) for name in base.profiles)]
