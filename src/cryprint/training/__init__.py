"""Training: config, objectives (triplet / AAM), checkpoints, run folders, the loop."""
