"""Pruning methods: a registry of ``Method`` classes, grouped by family.

- ``core/``: what every method shares: the hook interface (``base``), masks and
  magnitude selection, learning-rate schedules, reparametrised forward passes;
- ``dense.py``: the unpruned baseline;
- ``prune_retrain/``: prune a trained network, then retrain (IMP, BIMP; rewinding, AIMP);
- ``pruning_stable/``: sparsify during training, then a hard prune (GMP, DPF, DNW, GSM,
  LC, and STR, CS, DST whose sparsity is learned);
- ``at_init/``: prune before training from sensitivity statistics (SNIP, SNIP-it, GraSP);
- ``structured/``: remove whole filters or nodes.

Every module below this package is imported here, so a new method is a new module whose
class is decorated with ``@register``. Modules outside it (a method of your own) are
imported too when named in ``$PRUNEBENCH_PLUGINS`` (comma-separated module names).
"""

import importlib
import os
import pkgutil

from methods.core.base import Method

METHODS: dict[str, type[Method]] = {}
PLUGINS_VARIABLE = "PRUNEBENCH_PLUGINS"


def register(cls: type[Method]) -> type[Method]:
    """Add ``cls`` to METHODS under ``cls.name``; a name taken by another class is refused."""
    if cls.name in METHODS:
        taken = METHODS[cls.name]
        raise ValueError(f"method {cls.name!r} is registered twice: by {taken.__module__}.{taken.__qualname__} "
                         f"and by {cls.__module__}.{cls.__qualname__}")
    METHODS[cls.name] = cls
    return cls


def _import_all() -> None:
    for module in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        importlib.import_module(module.name)
    for name in filter(None, (part.strip() for part in os.environ.get(PLUGINS_VARIABLE, "").split(","))):
        importlib.import_module(name)


_import_all()
