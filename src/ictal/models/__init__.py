"""Seizure detectors and the registry that builds them by name."""

from ictal.models import detector as detector  # registers the built-in detectors
from ictal.models.registry import available, build_model, register

__all__ = ["available", "build_model", "register"]
