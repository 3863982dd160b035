"""Pruning methods: a registry of ``Method`` classes, one module per family.

Every module of this package is imported here, so a new method is a new module whose
class is decorated with ``@register``.
"""

import importlib
import pkgutil

from .base import Method

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
