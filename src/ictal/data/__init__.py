"""Training data from a cache: virtual windows, the balanced sampler, datasets and loaders."""
