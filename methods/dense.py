"""The unpruned baseline: regular training under the manifest's schedule."""

from . import register
from .base import Method


@register
class Dense(Method):
    """Regular dense training; also the parent of every prune-after-training run."""

    name = "dense"
    takes_goal = False
