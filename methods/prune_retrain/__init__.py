"""Prune-retrain methods: prune a trained network, then retrain it, in one or more cycles
(IMP with its retraining schedules, BIMP; weight and learning-rate rewinding and AIMP to come)."""
