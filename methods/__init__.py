"""Pruning methods: a registry of ``Method`` classes, one module per family."""

from .base import Method

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


from . import dense, imp  # noqa: E402,F401  (modules register themselves)
