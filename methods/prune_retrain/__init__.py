"""Prune-retrain methods: prune a trained network, then retrain it, in one or more cycles
(IMP with its retraining schedules, BIMP; weight and learning-rate rewinding, AIMP), and
IMP-global, the SNIP-it paper's reference, whose cycles prune and rewind during training."""
