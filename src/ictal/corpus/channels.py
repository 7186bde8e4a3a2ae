"""The 19 canonical 10-20 electrodes, EDF label normalisation and channel selection.

TUSZ labels look like `EEG FP1-REF` / `EEG FP1-LE`; other corpora use `Fp1`, `T7` or
`EEG T7-Avg`. Everything downstream speaks the canonical spelling of `CANONICAL_19`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

CANONICAL_19: tuple[str, ...] = (
    "Fp1", "F3", "C3", "P3", "O1", "F7", "T3", "T5", "Fz", "Cz",
    "Pz", "Fp2", "F4", "C4", "P4", "O2", "F8", "T4", "T6",
)  # fmt: skip

# Modern (10-10) names of the four temporal electrodes that TUSZ spells the old way.
SYNONYMS: Mapping[str, str] = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}

# Reference suffixes seen in the wild; a bipolar name such as `C3-CZ` keeps its suffix
# and so never matches an electrode.
REFERENCE_SUFFIXES: tuple[str, ...] = (
    "REF", "LE", "AR", "AVG", "CAR", "A1", "A2", "M1", "M2", "A1A2", "LINKED", "RE",
)  # fmt: skip

_SUFFIX = re.compile(r"-(?:" + "|".join(REFERENCE_SUFFIXES) + r")$")
_PREFIX = re.compile(r"^EEG\s+")
_CANONICAL_BY_UPPER = {name.upper(): name for name in CANONICAL_19}

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
# for every file.
TCP_PAIRS: tuple[tuple[str, str], ...] = (
    ("Fp1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1"),
    ("Fp2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2"),
    ("T3", "C3"), ("C3", "Cz"), ("Cz", "C4"), ("C4", "T4"),
    ("Fp1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"),
    ("Fp2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
)  # fmt: skip

# The pairs of each bipolar montage (signal.montage): a recording stored as these pairs
# (CHB-MIT is) gives the montage directly, without its electrodes.
MONTAGE_PAIRS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "bipolar": BIPOLAR_PAIRS,
    "tcp": TCP_PAIRS,
}

# 10-20 neighbours used to interpolate a missing electrode (mean of the present ones).
NEIGHBOURS: Mapping[str, tuple[str, ...]] = {
    "Fp1": ("Fp2", "F7", "F3", "Fz"),
    "Fp2": ("Fp1", "F8", "F4", "Fz"),
    "F7": ("Fp1", "F3", "T3"),
    "F3": ("Fp1", "F7", "Fz", "C3"),
    "Fz": ("Fp1", "Fp2", "F3", "F4", "Cz"),
    "F4": ("Fp2", "Fz", "F8", "C4"),
    "F8": ("Fp2", "F4", "T4"),
    "T3": ("F7", "C3", "T5"),
    "C3": ("F3", "T3", "Cz", "P3"),
    "Cz": ("Fz", "C3", "C4", "Pz"),
    "C4": ("F4", "Cz", "T4", "P4"),
    "T4": ("F8", "C4", "T6"),
    "T5": ("T3", "P3", "O1"),
    "P3": ("C3", "T5", "Pz", "O1"),
    "Pz": ("Cz", "P3", "P4", "O1", "O2"),
    "P4": ("C4", "Pz", "T6", "O2"),
    "T6": ("T4", "P4", "O2"),
    "O1": ("P3", "T5", "Pz", "O2"),
    "O2": ("P4", "T6", "Pz", "O1"),
}


@lru_cache(maxsize=4096)  # labels repeat across thousands of files
def normalise_label(label: str) -> str:
    """Canonical electrode name for an EDF label (`EEG FP1-REF` -> `Fp1`), else the cleaned
    upper-case name (`EEG EKG1-REF` -> `EKG1`)."""
    name = label.replace("\x00", "").strip().upper()
    name = _PREFIX.sub("", name)
    name = _SUFFIX.sub("", name).strip()
    name = SYNONYMS.get(name, name)
    return _CANONICAL_BY_UPPER.get(name, name)


@dataclass(frozen=True)
class ChannelSelection:
    """Where each wanted channel sits in a label list, what is missing and what is ambiguous."""

    wanted: tuple[str, ...]
    index: dict[str, int] = field(default_factory=dict)  # wanted name -> label position
    missing: tuple[str, ...] = ()
    duplicates: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> positions

    @property
    def ok(self) -> bool:
        """True when every wanted channel was found exactly once."""
        return not self.missing and not self.duplicates

    def problem(self) -> str | None:
        """One-line description of what is wrong, or None."""
        parts = []
        if self.duplicates:
            dup = ", ".join(f"{n} at signals {list(i)}" for n, i in self.duplicates.items())
            parts.append(f"duplicate channel labels: {dup}")
        if self.missing:
            parts.append(f"missing channels: {', '.join(self.missing)}")
        return "; ".join(parts) or None


def pair_of(label: str) -> tuple[str, str] | None:
    """The two canonical electrodes of a bipolar label (`FP1-F7`, `EEG T7-P7` ->
    (`Fp1`, `F7`), (`T3`, `T5`)), or None for any other label."""
    parts = _PREFIX.sub("", label.replace("\x00", "").strip().upper()).split("-")
    if len(parts) != 2:
        return None
    a, b = (normalise_label(x) for x in parts)
    return (a, b) if a in CANONICAL_19 and b in CANONICAL_19 else None


def select_pairs(labels: Sequence[str], pairs: Sequence[tuple[str, str]]) -> ChannelSelection:
    """Locate each bipolar pair (`Fp1-F7`) among a file's labels. A pair written twice (CHB-MIT
    repeats T8-P8) is the same derivation, so its first signal is taken."""
    found: dict[str, int] = {}
    for i, label in enumerate(labels):
        pair = pair_of(label)
        if pair is not None:
            found.setdefault("-".join(pair), i)
    wanted = tuple(f"{a}-{b}" for a, b in pairs)
    return ChannelSelection(
        wanted=wanted,
        index={w: found[w] for w in wanted if w in found},
        missing=tuple(w for w in wanted if w not in found),
    )


def select_channels(
    labels: Sequence[str], wanted: Sequence[str] = CANONICAL_19
) -> ChannelSelection:
    """Locate each wanted channel in `labels` by normalised whole name; 2+ matches are an
    error (reported in `duplicates`), never a silent pick."""
    want = tuple(normalise_label(w) for w in wanted)
    positions: dict[str, list[int]] = {w: [] for w in want}
    for i, label in enumerate(labels):
        name = normalise_label(label)
        if name in positions:
            positions[name].append(i)
    return ChannelSelection(
        wanted=want,
        index={w: p[0] for w, p in positions.items() if len(p) == 1},
        missing=tuple(w for w in want if not positions[w]),
        duplicates={w: tuple(p) for w, p in positions.items() if len(p) > 1},
    )
