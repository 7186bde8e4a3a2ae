"""Synthetic corpora in the exact TUSZ layout or as BIDS-EEG (SzCORE), at three difficulties."""

from ictal.corpus.synth.plans import FOCAL_CODES, QUIRKS
from ictal.corpus.synth.writer import FORMATS, LINE_FREQS, synthesize

__all__ = ["FOCAL_CODES", "FORMATS", "LINE_FREQS", "QUIRKS", "synthesize"]
