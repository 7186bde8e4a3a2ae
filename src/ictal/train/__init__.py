"""Training: the loop, its state and checkpoints, validation, and the speed benchmark.

Import the submodules you need (``ictal.train.loop``, ...); this package imports nothing
heavy so ``import ictal.train`` stays cheap.
"""
