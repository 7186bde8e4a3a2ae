"""Synthetic corpora in the exact TUSZ layout, at three difficulties (easy, realistic, hard)."""

from ictal.corpus.synth.plans import FOCAL_CODES, QUIRKS
from ictal.corpus.synth.writer import synthesize

__all__ = ["FOCAL_CODES", "QUIRKS", "synthesize"]
