"""What ``bench``, ``methods`` and ``models`` share without importing each other: the
error that reaches the user as exit 2, and typed parameters (a method's hyperparameters,
a manifest's keys) with the one function that validates values against them.

Nothing here imports torch, so the report and the manifest checks start fast.
"""

from schema.errors import ConfigError, closest
from schema.params import REQUIRED, Param, resolve

__all__ = ["REQUIRED", "ConfigError", "Param", "closest", "resolve"]
