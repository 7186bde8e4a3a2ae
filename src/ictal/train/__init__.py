"""Training: loop, state and checkpoints, heartbeat, metrics, run status and bench.

Import the submodules you need (``ictal.train.loop``, ``ictal.train.status``, ...); this
package imports nothing heavy so ``import ictal.train`` stays cheap.
"""
