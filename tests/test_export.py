"""Hypothesis exports: NEDC ``.csv_bi`` that our strict parser accepts, and SzCORE TSV."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest

from ictal.corpus.annotations import parse_annotation_text, seizure_events
from ictal.events.hypotheses import clip_events, hypothesis_csv_bi, szcore_tsv, write_exports

BNAME = "aaaaaaaa_s001_t000"
HEADER = (
    "# version = csv_v1.0.0\n"
    f"# bname = {BNAME}\n"
    "# duration = 60.00 secs\n"
    "# montage_file = $NEDC_NFC/lib/nedc_eas_default_montage.txt\n"
    "#\n"
    "channel,start_time,stop_time,label,confidence\n"
)
TSV_HEADER = "onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration\n"


def test_csv_bi_exact_text() -> None:
    # one seizure 10..20.5 in a 60 s file: bckg / seiz / bckg rows tiling 0..60, 4 decimals
    text = hypothesis_csv_bi(BNAME, 60.0, [(10.0, 20.5)])
    assert text == HEADER + (
        "TERM,0.0000,10.0000,bckg,1.0000\n"
        "TERM,10.0000,20.5000,seiz,1.0000\n"
        "TERM,20.5000,60.0000,bckg,1.0000\n"
    )
    # no events: one background row over the whole file
    assert hypothesis_csv_bi(BNAME, 60.0, []) == HEADER + "TERM,0.0000,60.0000,bckg,1.0000\n"


def test_csv_bi_parses_with_reference_duration() -> None:
    reference_duration = 1750.0
    events = [(0.0, 12.0), (300.25, 360.0), (1700.0, 1750.0)]  # touches both file edges
    text = hypothesis_csv_bi(BNAME, reference_duration, events)
    ann = parse_annotation_text(text, f"{BNAME}.csv_bi")
    assert ann.kind == "csv_bi" and ann.bname == BNAME
    assert ann.duration == reference_duration  # NEDC rejects a hyp whose duration differs
    parsed, repairs = seizure_events(ann)
    assert [(e.start, e.stop) for e in parsed] == events
    assert repairs == {}


def test_events_clipped_to_recording() -> None:
    # the last 1 Hz sample may reach past a 59.5 s signal; an event wholly past it is dropped
    assert clip_events("r", 59.5, [(50.0, 60.0), (59.5, 60.0)]) == [(50.0, 59.5)]
    with pytest.raises(ValueError, match="overlapping"):
        clip_events("r", 60.0, [(10.0, 20.0), (15.0, 25.0)])


def test_szcore_tsv_exact_text() -> None:
    # onset, duration (stop - onset) and recordingDuration with two decimals; eventType sz;
    # unknown confidence / channels / dateTime are n/a
    text = szcore_tsv("sub-01_run-00", 60.0, [(30.25, 40.0), (10.0, 20.5)])
    assert text == TSV_HEADER + (
        "10.00\t10.50\tsz\tn/a\tn/a\tn/a\t60.00\n30.25\t9.75\tsz\tn/a\tn/a\tn/a\t60.00\n"
    )
    # no events: one bckg row over the whole recording
    assert szcore_tsv("r", 60.0, []) == TSV_HEADER + "0.00\t60.00\tbckg\tn/a\tn/a\tn/a\t60.00\n"


def test_szcore_tsv_optional_columns() -> None:
    # confidences follow their events through sorting
    text = szcore_tsv(
        "r",
        100.0,
        [(50.0, 60.0), (10.0, 20.0)],
        confidences=[0.75, 0.9],
        channels=["Fp1-F7", "F7-T3"],
        date_time=datetime(2020, 1, 2, 3, 4, 5),
    )
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t"))
    assert [r["confidence"] for r in rows] == ["0.90", "0.75"]
    assert {r["channels"] for r in rows} == {"Fp1-F7,F7-T3"}
    assert {r["dateTime"] for r in rows} == {"2020-01-02 03:04:05"}
    with pytest.raises(ValueError):
        szcore_tsv("r", 100.0, [(1.0, 2.0)], confidences=[0.5, 0.5])


def test_write_exports(tmp_path) -> None:
    events = [(10.0, 20.5)]
    paths = write_exports(tmp_path, "sub-01_run-00", BNAME, 60.0, events)
    assert paths["csv_bi"] == tmp_path / "csv_bi" / f"{BNAME}.csv_bi"
    assert paths["szcore"] == tmp_path / "szcore" / "sub-01_run-00_events.tsv"
    assert paths["csv_bi"].read_text() == hypothesis_csv_bi(BNAME, 60.0, events)
    assert paths["szcore"].read_text() == szcore_tsv("sub-01_run-00", 60.0, events)
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
