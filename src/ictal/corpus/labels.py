"""A recording's labels whatever its corpus's format: TUSZ `.csv_bi` / `.csv` files or a
BIDS `*_events.tsv`, as one `AnnotationFile` that `seizure_events` turns into seizures."""

from __future__ import annotations

from typing import Any

from ictal.corpus.annotations import AnnotationFile, read_annotation
from ictal.corpus.bids import read_events


def read_labels(path: str, kind: str, fs: Any = None) -> AnnotationFile:
    """Read the annotation file of `kind` (``csv_bi``, ``csv`` or ``tsv``) at `path`."""
    return read_events(path, fs) if kind == "tsv" else read_annotation(path, fs)
