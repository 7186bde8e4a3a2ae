"""Montages over the 19 canonical electrodes, each a fixed (out, 19) matrix applied by matmul.

One matrix per montage keeps every derivation a single pass over the data and makes the
definition readable as a table of (+1, -1) pairs.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

import numpy as np

from ictal.corpus.channels import CANONICAL_19

MontageKind = Literal["average", "referential", "bipolar", "tcp"]
MONTAGES: tuple[str, ...] = ("average", "referential", "bipolar", "tcp")

# 18-channel longitudinal bipolar ("double banana"): left parasagittal, left temporal,
# midline, right parasagittal, right temporal chains, front to back.
BIPOLAR_PAIRS: tuple[tuple[str, str], ...] = (
    ("Fp1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"),
    ("Fp1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1"),
    ("Fz", "Cz"), ("Cz", "Pz"),
    ("Fp2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
    ("Fp2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2"),
)  # fmt: skip

# TUSZ TCP derivations 0-21 without 8 (A1-T3) and 13 (T4-A2): A1/A2 are not among the 19
# canonical electrodes and are absent from 03_tcp_ar_a recordings, so these 20 exist
# for every file. Names use TUSZ spelling (upper case) to match `.csv` channel labels.
TCP_PAIRS: tuple[tuple[str, str], ...] = (
    ("Fp1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1"),
    ("Fp2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2"),
    ("T3", "C3"), ("C3", "Cz"), ("Cz", "C4"), ("C4", "T4"),
    ("Fp1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"),
    ("Fp2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
)  # fmt: skip


def _pair_matrix(pairs: tuple[tuple[str, str], ...]) -> np.ndarray:
    """Rows of +1 at the first electrode and -1 at the second."""
    index = {name: i for i, name in enumerate(CANONICAL_19)}
    m = np.zeros((len(pairs), len(CANONICAL_19)), dtype=np.float32)
    for row, (a, b) in enumerate(pairs):
        m[row, index[a]] = 1.0
        m[row, index[b]] = -1.0
    return m


@cache
def montage_matrix(kind: MontageKind) -> np.ndarray:
    """The read-only float32 (out, 19) matrix with y = M @ x for montage `kind`."""
    n = len(CANONICAL_19)
    if kind == "referential":
        m = np.eye(n, dtype=np.float32)
    elif kind == "average":
        m = (np.eye(n, dtype=np.float64) - 1.0 / n).astype(np.float32)
    elif kind == "bipolar":
        m = _pair_matrix(BIPOLAR_PAIRS)
    elif kind == "tcp":
        m = _pair_matrix(TCP_PAIRS)
    else:
        raise ValueError(f"unknown montage {kind!r}; expected one of {MONTAGES}")
    m.flags.writeable = False
    return m


def montage_channels(kind: MontageKind) -> tuple[str, ...]:
    """Output channel names of montage `kind`, in output row order."""
    if kind in ("average", "referential"):
        return CANONICAL_19
    if kind == "bipolar":
        return tuple(f"{a}-{b}" for a, b in BIPOLAR_PAIRS)
    if kind == "tcp":
        return tuple(f"{a}-{b}".upper() for a, b in TCP_PAIRS)
    raise ValueError(f"unknown montage {kind!r}; expected one of {MONTAGES}")


def apply_montage(x: np.ndarray, kind: MontageKind) -> tuple[np.ndarray, tuple[str, ...]]:
    """Derive montage `kind` from channel-major (19, n) data; returns float32 (out, n) and names.

    average: each electrode minus the mean of the 19; referential: as recorded; bipolar: the
    18-channel double banana; tcp: the 20 TCP derivations that need no A1/A2. Referential
    returns float32 input as is (no copy).
    """
    if x.ndim != 2 or x.shape[0] != len(CANONICAL_19):
        raise ValueError(f"expected channel-major (19, n_samples) data, got shape {x.shape}")
    names = montage_channels(kind)
    if kind == "referential":
        return np.asarray(x, dtype=np.float32), names
    return montage_matrix(kind) @ np.asarray(x, dtype=np.float32), names
