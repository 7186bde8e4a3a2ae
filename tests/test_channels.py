"""Label normalisation and channel selection across the TUSZ montage conventions."""

from __future__ import annotations

import pytest

from ictal.corpus.channels import CANONICAL_19, NEIGHBOURS, normalise_label, select_channels


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("EEG FP1-REF", "Fp1"),
        ("EEG FP1-LE", "Fp1"),
        ("EEG FZ-REF", "Fz"),
        ("Fp1", "Fp1"),
        ("fp2", "Fp2"),
        ("EEG T3-AVG", "T3"),
        ("EEG T7-Avg", "T3"),
        ("T8", "T4"),
        ("EEG P7-REF", "T5"),
        ("P8-AR", "T6"),
        ("EEG CZ-A1", "Cz"),
        ("  EEG O2-REF\x00\x00 ", "O2"),
        ("EEG C3P-REF", "C3P"),
        ("EEG EKG1-REF", "EKG1"),
        ("EEG A1-REF", "A1"),
        ("PHOTIC-REF", "PHOTIC"),
        ("EEG C3-CZ", "C3-CZ"),
    ],
)
def test_normalise_label(label: str, expected: str) -> None:
    assert normalise_label(label) == expected


def test_canonical_names_are_fixed_points() -> None:
    assert [normalise_label(c) for c in CANONICAL_19] == list(CANONICAL_19)
    assert len(set(CANONICAL_19)) == 19


@pytest.mark.parametrize("suffix", ["-REF", "-LE"])
def test_select_tusz_labels_in_canonical_order(suffix: str) -> None:
    extra = ["EEG EKG1-REF", "EEG C3P-REF", "PHOTIC-REF", "IBI"]
    labels = extra + [f"EEG {c.upper()}{suffix}" for c in reversed(CANONICAL_19)]
    sel = select_channels(labels)
    assert sel.ok
    assert [labels[sel.index[c]] for c in CANONICAL_19] == [
        f"EEG {c.upper()}{suffix}" for c in CANONICAL_19
    ]


def test_modern_names_select_old_temporal_electrodes() -> None:
    sel = select_channels(["T7", "T8", "P7", "P8"], wanted=["T3", "T4", "T5", "T6"])
    assert sel.index == {"T3": 0, "T4": 1, "T5": 2, "T6": 3}


def test_missing_and_whole_name_only() -> None:
    labels = [f"EEG {c.upper()}-REF" for c in CANONICAL_19 if c != "C3"] + ["EEG C3P-REF"]
    sel = select_channels(labels)
    assert sel.missing == ("C3",)
    assert not sel.ok
    assert "C3" not in sel.index


def test_duplicates_are_an_error_not_a_pick() -> None:
    labels = ["EEG FP1-REF", "EEG T3-REF", "EEG T7-REF", "EEG FP1-LE"]
    sel = select_channels(labels, wanted=["Fp1", "T3"])
    assert sel.duplicates == {"Fp1": (0, 3), "T3": (1, 2)}
    assert sel.index == {}
    assert not sel.ok
    assert "Fp1" in (sel.problem() or "")


def test_neighbour_table_is_symmetric_and_complete() -> None:
    assert set(NEIGHBOURS) == set(CANONICAL_19)
    for name, near in NEIGHBOURS.items():
        assert name not in near
        for other in near:
            assert name in NEIGHBOURS[other], (name, other)
