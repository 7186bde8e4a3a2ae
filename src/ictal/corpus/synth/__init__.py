"""Synthetic corpora in the exact TUSZ layout or as BIDS-EEG (SzCORE), at three difficulties.

``synthesize`` and the plans are imported on first use, so the command line can read the
choices (``options``) without loading the generator."""

from __future__ import annotations

import importlib
from typing import Any

from ictal.corpus.synth.options import DIFFICULTIES, FORMATS, LINE_FREQS, check_target

_LAZY = {"synthesize": "writer", "FOCAL_CODES": "plans", "QUIRKS": "plans"}

__all__ = ["DIFFICULTIES", "FOCAL_CODES", "FORMATS", "LINE_FREQS", "QUIRKS", "check_target",
           "synthesize"]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
