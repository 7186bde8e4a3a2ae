"""Montages over the 19 canonical electrodes: as recorded, common average, and the bipolar
chains written as tables of (electrode, minus electrode) pairs.

Derivations are row arithmetic, never a matrix product: BLAS may split a product across
threads, and the cache's bytes must not depend on how many threads a process has.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ictal.corpus.channels import BIPOLAR_PAIRS, CANONICAL_19, TCP_PAIRS

MontageKind = Literal["average", "referential", "bipolar", "tcp"]
MONTAGES: tuple[str, ...] = ("average", "referential", "bipolar", "tcp")


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
    x = np.asarray(x, dtype=np.float32)
    if kind == "referential":
        return x, names
    if kind == "average":  # no BLAS: the bytes must not depend on how many threads it uses
        return x - x.mean(axis=0, keepdims=True), names
    pairs = BIPOLAR_PAIRS if kind == "bipolar" else TCP_PAIRS
    index = {name: i for i, name in enumerate(CANONICAL_19)}
    first = [index[a] for a, _ in pairs]
    second = [index[b] for _, b in pairs]
    return x[first] - x[second], names
