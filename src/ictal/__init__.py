"""Ictal: seizure detectors on scalp EEG with a verified, build-once cache."""

__version__ = "0.1.0"
