"""Per-patient results: each patient's recordings pooled (seizures, hours, every scorer at
the default threshold and at every operating point), for the per-patient tables and for the
patient bootstrap of the intervals (evaluate/uncertainty.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ictal.evaluate.scoring import RecordingCounts, RecordingTally
from ictal.events.counts import EventCounts, pool

Pick = Callable[[RecordingCounts], EventCounts]


def by_patient(tallies: Sequence[RecordingTally]) -> dict[str, list[RecordingTally]]:
    """The tallies of each patient, patients in order of first appearance."""
    groups: dict[str, list[RecordingTally]] = {}
    for t in tallies:
        groups.setdefault(t.patient, []).append(t)
    return groups


def patient_counts(tallies: Sequence[RecordingTally], pick: Pick) -> list[EventCounts]:
    """One pooled ``EventCounts`` per patient of what ``pick`` takes from each recording."""
    return [pool(pick(t.counts) for t in group) for group in by_patient(tallies).values()]


def per_patient_doc(
    tallies: Sequence[RecordingTally], points: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """``per_patient`` of scores.json: a row per patient, sorted by name, with its size, its
    default-threshold counts and its counts at every operating point (``points``' thresholds)."""
    rows = []
    for patient, group in sorted(by_patient(tallies).items()):
        recs = [t.counts for t in group]
        corpus = group[0].corpus
        rows.append({
            "patient": patient,
            **({"corpus": corpus} if corpus is not None else {}),
            "n_recordings": len(group),
            "total_duration_s": sum(r.duration_s for r in recs),
            "n_reference_events": sum(r.n_ref for r in recs),
            "default": {n: pool(r.default[n] for r in recs).as_dict() for n in recs[0].default},
            "points": {
                name: [
                    {
                        "target_fa_per_24h": row["target_fa_per_24h"],
                        "threshold": row["threshold"],
                        "counts": None if row["threshold"] is None
                        else pool(r.events_ops[name][row["threshold"]] for r in recs).as_dict(),
                    }
                    for row in per
                ]
                for name, per in points.items()
            },
        })  # fmt: skip
    return rows
