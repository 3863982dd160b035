"""Structured pruning: whole convolutional filters or nodes instead of single weights
(filter pruning by norm, SNAP-it and its baselines; issues 12, 14 and 15)."""
