"""Runs: the directory every long command writes (train, evaluate, and the commands built on
them), its lock, metadata, heartbeat, metrics, status and push to a sink.

Import the submodules (``ictal.runs.directory``, ``ictal.runs.heartbeat``, ...); nothing here
imports train or evaluate, which share run directories through this package.
"""
