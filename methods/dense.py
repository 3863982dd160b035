"""The unpruned baseline: regular training under the manifest's schedule."""

from methods import register
from methods.core.base import Method


@register
class Dense(Method):
    """Regular dense training; also the parent of every prune-after-training run."""

    name = "dense"
    paper = "the unpruned baseline"
    takes_goal = False
