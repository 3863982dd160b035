"""Pruning before training (at initialisation) from sensitivity statistics: the home of
SNIP, SNIP-it, GraSP and random pruning at initialisation (issue 15)."""
