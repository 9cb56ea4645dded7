"""Training for siamtrack: crop cache, pair sampling, augmentation, losses and the training loop."""
