"""Typed parameters and the one function that checks values against them.

A ``Param`` declares one setting: a method's hyperparameter (next to the method's code) or
a key of a manifest table. ``resolve`` turns the values a user gave into the validated
settings: unknown names refused, required ones demanded, types, choices and bounds
checked, defaults filled in. Every refusal is a ``ConfigError`` naming the key.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schema.errors import ConfigError, closest

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "required"})()


def _type_name(kind) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


@dataclass(frozen=True)
class Param:
    """One setting: its default (REQUIRED if none), its type (the default's unless given),
    its choices (a tuple, or a function returning the known names) and its bounds;
    ``help`` says what it is, ``symbol`` how the paper writes it (e.g. ``T_rt``)."""

    default: Any = REQUIRED
    help: str = ""
    symbol: str = ""
    type: type | tuple | None = None
    choices: tuple | Callable | None = None
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    of_budget: bool = False  # an epoch count a manifest may give as a share of the budget T, e.g. "5%"

    @property
    def kind(self) -> type | tuple:
        return self.type or type(self.default)

    def known(self):
        return self.choices() if callable(self.choices) else self.choices

    def check(self, value, key: str):
        """The value if it fits (ints widened where a float is expected), else ConfigError."""
        if value is None and self.default is None:
            return None
        kind = self.kind
        if isinstance(value, bool) and kind is not bool:
            raise ConfigError(f"expected {_type_name(kind)}, got a boolean {value!r}", key=key)
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            raise ConfigError(f"expected {_type_name(kind)}, got {type(value).__name__} {value!r}", key=key)
        choices = self.known()
        if choices is not None and value not in choices:
            raise ConfigError(f"unknown value {value!r}; {closest(value, choices)}", key=key)
        if self.above is not None and not value > self.above:
            raise ConfigError("must be positive, got " + repr(value) if self.above == 0
                              else f"must be above {self.above}, got {value!r}", key=key)
        if self.at_least is not None and value < self.at_least:
            raise ConfigError(f"must be at least {self.at_least}, got {value!r}", key=key)
        if self.below is not None and not value < self.below:
            raise ConfigError(f"must be below {self.below}, got {value!r}", key=key)
        if self.at_most is not None and value > self.at_most:
            raise ConfigError(f"must be at most {self.at_most}, got {value!r}", key=key)
        return value

    def describe(self) -> str:
        """One line for ``prunebench describe``: type, default, allowed values, help."""
        allowed = [f"one of {', '.join(map(str, self.known()))}"] if self.choices is not None else []
        allowed += [f"{word} {bound:g}" for word, bound in
                    ((">=", self.at_least), (">", self.above), ("<=", self.at_most), ("<", self.below))
                    if bound is not None]
        default = "required" if self.default is REQUIRED else f"default {self.default!r}"
        if self.of_budget:
            allowed.append('or a share of T such as "5%"')
        symbol = f" [{self.symbol}]" if self.symbol else ""
        return f"{_type_name(self.kind)}, {default}{'; ' if allowed else ''}{', '.join(allowed)}{symbol}: {self.help}"


def resolve(params: dict[str, Param], values: dict, where: str = "") -> dict:
    """``values`` checked against ``params``, with the defaults of the others filled in.
    Keys in errors are ``where.name``."""
    def key(name: str) -> str:
        return f"{where}.{name}" if where else name

    for name in values:
        if name not in params:
            raise ConfigError(f"unknown key; {closest(name, params)}", key=key(name))
    out = {}
    for name, param in params.items():
        if name in values:
            out[name] = param.check(values[name], key(name))
        elif param.default is REQUIRED:
            raise ConfigError("missing required key", key=key(name))
        else:
            out[name] = copy.deepcopy(param.default)
    return out
