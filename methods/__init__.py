"""Pruning methods: a registry of ``Method`` classes, grouped by family.

- ``core/``: what every method shares: the hook interface (``base``), masks and
  magnitude selection, learning-rate schedules, reparametrised forward passes;
- ``dense.py``: the unpruned baseline;
- ``prune_retrain/``: prune a trained network, then retrain (IMP, BIMP; rewinding, AIMP;
  IMP-global, pruning and rewinding during training);
- ``pruning_stable/``: sparsify during training, then a hard prune (GMP, DPF, DNW, GSM,
  LC, and STR, CS, DST, HoyerSquare whose sparsity is learned);
- ``at_init/``: prune before training from sensitivity statistics (SNIP, SNIP-it, GraSP);
- ``structured/``: remove whole filters or nodes.

Every module below this package is imported on the first use of ``METHODS``, so a new
method is a new module whose class is decorated with ``@register``. Modules outside it (a
method of your own) are imported too when named in ``$PRUNEBENCH_PLUGINS`` (comma-separated
module names). Until then nothing here imports torch, so torch-free modules such as
``methods.core.schedules`` can be imported on their own (the schedule figure does).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from methods.core.base import Method

_REGISTRY: dict[str, type[Method]] = {}
PLUGINS_VARIABLE = "PRUNEBENCH_PLUGINS"


def register(cls: type[Method]) -> type[Method]:
    """Add ``cls`` to METHODS under ``cls.name``; a name taken by another class is refused."""
    if cls.name in _REGISTRY:
        taken = _REGISTRY[cls.name]
        raise ValueError(f"method {cls.name!r} is registered twice: by {taken.__module__}.{taken.__qualname__} "
                         f"and by {cls.__module__}.{cls.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def _import_all() -> None:
    for module in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        importlib.import_module(module.name)
    for name in filter(None, (part.strip() for part in os.environ.get(PLUGINS_VARIABLE, "").split(","))):
        importlib.import_module(name)


def __getattr__(name: str):
    """``METHODS``, the registry by name, filled by importing every method module once."""
    if name != "METHODS":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()["METHODS"] = _REGISTRY  # before the imports: a module may look the registry up
    _import_all()
    return _REGISTRY
