"""TUSZ annotation parsing, seizure events and writing (ictal.corpus.annotations)."""

from __future__ import annotations

import pytest

from ictal.corpus.annotations import (
    BI_LABELS,
    SEIZURE_CODES,
    TCP_CHANNELS,
    AnnotationError,
    AnnotationFile,
    Row,
    SeizureEvent,
    format_csv,
    format_csv_bi,
    parse_annotation_text,
    read_annotation,
    seizure_events,
)

CSV_BI = """\
# version = csv_v1.0.0
# bname = aaaaatvr_s005_t008
# duration = 301.00 secs
# montage_file = $NEDC_NFC/lib/nedc_eas_default_montage.txt
#
channel,start_time,stop_time,label,confidence
TERM,0.0000,36.8868,bckg,1.0000
TERM,36.8868,183.3055,seiz,1.0000
TERM,183.3055,301.0000,bckg,1.0000
"""

CSV = """\
# version = csv_v1.0.0
# bname = aaaaatvr_s005_t008
# duration = 1750.0000 secs
# montage_file = $NEDC_NFC/lib/nedc_eas_default_montage.txt
#
channel,start_time,stop_time,label,confidence
FP1-F7,0.0000,36.8868,bckg,1.0000
FP1-F7,36.8868,183.3055,cpsz,1.0000
FP1-F7,183.3055,1750.0000,bckg,1.0000
F7-T3,0.0000,40.0000,bckg,1.0000
F7-T3,40.0000,190.0000,cpsz,1.0000
F7-T3,190.0000,1750.0000,bckg,1.0000
T3-T5,0.0000,1750.0000,bckg,1.0000
"""

HEADER = CSV_BI.split("channel,")[0] + "channel,start_time,stop_time,label,confidence\n"


def test_constants_match_reference() -> None:
    assert len(SEIZURE_CODES) == 10 and "mysz" in SEIZURE_CODES and "cnsz" in SEIZURE_CODES
    assert BI_LABELS == ("bckg", "seiz")
    assert len(TCP_CHANNELS) == 22
    assert TCP_CHANNELS[0] == "FP1-F7" and TCP_CHANNELS[8] == "A1-T3"
    assert TCP_CHANNELS[13] == "T4-A2" and TCP_CHANNELS[21] == "P4-O2"


def test_parse_exact_csv_bi_example() -> None:
    ann = parse_annotation_text(CSV_BI, "x/aaaaatvr_s005_t008.csv_bi")
    assert ann.kind == "csv_bi"
    assert ann.bname == "aaaaatvr_s005_t008"
    assert ann.duration == 301.0
    assert ann.rows[1] == Row("TERM", 36.8868, 183.3055, "seiz", 1.0)
    events, repairs = seizure_events(ann)
    assert events == [SeizureEvent(36.8868, 183.3055, "seiz")]
    assert repairs == {}


def test_parse_exact_csv_example_unions_channels() -> None:
    ann = parse_annotation_text(CSV, "x/aaaaatvr_s005_t008.csv")
    assert ann.kind == "csv" and ann.duration == 1750.0 and len(ann.rows) == 7
    events, repairs = seizure_events(ann)
    assert events == [SeizureEvent(36.8868, 190.0, "cpsz")]
    assert repairs == {}


def test_event_label_is_code_with_most_channel_seconds() -> None:
    rows = [
        Row("FP1-F7", 10.0, 20.0, "fnsz", 1.0),
        Row("F7-T3", 12.0, 60.0, "gnsz", 1.0),
        Row("T3-T5", 100.0, 110.0, "mysz", 1.0),
    ]
    ann = parse_annotation_text(format_csv("b", 200.0, rows), "b.csv")
    events, _ = seizure_events(ann)
    assert events == [SeizureEvent(10.0, 60.0, "gnsz"), SeizureEvent(100.0, 110.0, "mysz")]


@pytest.mark.parametrize("code", SEIZURE_CODES)
def test_every_seizure_code_parses_in_csv(code: str) -> None:
    rows = [Row("C3-P3", 0.0, 5.0, "bckg", 1.0), Row("C3-P3", 5.0, 25.0, code, 1.0)]
    ann = parse_annotation_text(format_csv("b", 30.0, rows), "b.csv")
    events, _ = seizure_events(ann)
    assert events == [SeizureEvent(5.0, 25.0, code)]


def test_unknown_label_is_an_error_naming_file_and_line() -> None:
    text = CSV_BI.replace("36.8868,183.3055,seiz", "36.8868,183.3055,xxsz")
    with pytest.raises(AnnotationError) as info:
        parse_annotation_text(text, "dir/f.csv_bi")
    assert info.value.path == "dir/f.csv_bi"
    assert "line 8" in info.value.reason and "xxsz" in info.value.reason
    assert str(info.value) == f"dir/f.csv_bi: {info.value.reason}"
    with pytest.raises(AnnotationError, match="line 8: unknown label 'xxsz'"):
        parse_annotation_text(CSV.replace(",cpsz,", ",xxsz,", 1), "f.csv")


def test_type_codes_are_not_valid_in_csv_bi_nor_seiz_in_csv() -> None:
    with pytest.raises(AnnotationError, match="line 8"):
        parse_annotation_text(CSV_BI.replace(",seiz,", ",gnsz,"), "f.csv_bi")
    with pytest.raises(AnnotationError, match="line 8"):
        parse_annotation_text(CSV.replace(",cpsz,", ",seiz,", 1), "f.csv")


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ("# version = csv_v1.0.0", "# version = csv_v2.0.0", 1),
        ("# bname = aaaaatvr_s005_t008", "# bname =", 2),
        ("# duration = 301.00 secs", "# duration = 301.00", 3),
        ("# duration = 301.00 secs", "# duration = abc secs", 3),
        ("# montage_file = $NEDC", "# montage = $NEDC", 4),
        ("#\nchannel", "\nchannel", 5),
        ("channel,start_time,stop_time,label,confidence", "channel,start,stop,label,conf", 6),
        ("TERM,0.0000,36.8868,bckg,1.0000", "TERM,0.0000,36.8868,bckg", 7),
        ("TERM,0.0000,36.8868,bckg,1.0000", "TERM,0.0000,abc,bckg,1.0000", 7),
        ("TERM,0.0000,36.8868,bckg,1.0000", "TERM,36.8868,0.0000,bckg,1.0000", 7),
        ("TERM,0.0000,36.8868,bckg,1.0000", "FP1-F7,0.0000,36.8868,bckg,1.0000", 7),
        ("TERM,0.0000,36.8868,bckg,1.0000", "TERM,0.0000,36.8868,bckg,nan", 7),
        ("TERM,36.8868,183.3055,seiz,1.0000", "", 8),
    ],
)
def test_header_and_row_violations_name_the_line(old: str, new: str, line: int) -> None:
    text = CSV_BI.replace(old, new)
    assert text != CSV_BI
    with pytest.raises(AnnotationError, match=f"line {line}:"):
        parse_annotation_text(text, "f.csv_bi")


def test_unknown_channel_in_csv_and_truncated_header() -> None:
    with pytest.raises(AnnotationError, match="line 7: unknown channel 'FP1-XX'"):
        parse_annotation_text(CSV.replace("FP1-F7,0.0000", "FP1-XX,0.0000"), "f.csv")
    with pytest.raises(AnnotationError, match="inside the header"):
        parse_annotation_text("# version = csv_v1.0.0\n", "f.csv")


def test_duration_header_precision_varies_and_kind_is_inferred() -> None:
    ann = parse_annotation_text(CSV_BI.replace("301.00 secs", "301 secs"), "f.csv_bi")
    assert ann.duration == 301.0
    assert parse_annotation_text(CSV_BI, "f.txt", kind="csv_bi").kind == "csv_bi"
    with pytest.raises(AnnotationError, match="unknown annotation kind"):
        parse_annotation_text(CSV_BI, "f.txt")


def _bi(rows: list[tuple[float, float, str]], duration: float = 100.0) -> AnnotationFile:
    text = format_csv("b", duration, [Row("TERM", s, e, lab, 1.0) for s, e, lab in rows])
    return parse_annotation_text(text, "b.csv_bi")


def test_overlap_policy_error_and_merge() -> None:
    ann = _bi([(0, 20, "bckg"), (15, 40, "seiz"), (35, 50, "seiz"), (50, 100, "bckg")])
    with pytest.raises(AnnotationError, match="overlapping rows on channel TERM"):
        seizure_events(ann)
    events, repairs = seizure_events(ann, overlap_policy="merge")
    assert events == [SeizureEvent(15.0, 50.0, "seiz")]
    assert repairs == {"overlap_merged": 2}


def test_overlap_is_per_channel_in_csv() -> None:
    rows = [Row("FP1-F7", 10.0, 30.0, "fnsz", 1.0), Row("F7-T3", 20.0, 40.0, "fnsz", 1.0)]
    ann = parse_annotation_text(format_csv("b", 100.0, rows), "b.csv")
    assert seizure_events(ann) == ([SeizureEvent(10.0, 40.0, "fnsz")], {})
    rows.append(Row("FP1-F7", 25.0, 35.0, "fnsz", 1.0))
    ann = parse_annotation_text(format_csv("b", 100.0, rows), "b.csv")
    with pytest.raises(AnnotationError, match="FP1-F7"):
        seizure_events(ann)
    assert seizure_events(ann, overlap_policy="merge")[1] == {"overlap_merged": 1}


def test_out_of_range_policy_error_and_clip() -> None:
    ann = _bi([(0, 80, "bckg"), (80, 110, "seiz")])
    with pytest.raises(AnnotationError, match="outside the recording"):
        seizure_events(ann)
    events, repairs = seizure_events(ann, out_of_range_policy="clip")
    assert events == [SeizureEvent(80.0, 100.0, "seiz")]
    assert repairs == {"clipped_to_duration": 1}
    # within the tolerance: clipped without counting
    ann = _bi([(0, 80, "bckg"), (80, 100.5, "seiz")])
    assert seizure_events(ann) == ([SeizureEvent(80.0, 100.0, "seiz")], {})


def test_out_of_range_uses_edf_duration_when_given() -> None:
    ann = _bi([(0, 50, "bckg"), (50, 100, "seiz")])
    assert seizure_events(ann, edf_duration=99.5)[0] == [SeizureEvent(50.0, 99.5, "seiz")]
    with pytest.raises(AnnotationError, match="differs from the EDF duration"):
        seizure_events(ann, edf_duration=97.0)
    events, _ = seizure_events(ann, edf_duration=97.0, duration_tolerance_s=5.0)
    assert events == [SeizureEvent(50.0, 97.0, "seiz")]
    ann = _bi([(0, 50, "bckg"), (50, 100.4, "seiz")])
    assert seizure_events(ann)[0] == [SeizureEvent(50.0, 100.0, "seiz")]
    with pytest.raises(AnnotationError, match="outside the recording"):
        seizure_events(ann, edf_duration=99.0)


def test_bad_policy_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="overlap_policy"):
        seizure_events(_bi([(0, 100, "bckg")]), overlap_policy="ignore")


def test_format_csv_bi_matches_tusz_text_exactly() -> None:
    assert format_csv_bi("aaaaatvr_s005_t008", 301.0, [(36.8868, 183.3055)]) == CSV_BI
    empty = format_csv_bi("aaaaatvr_s005_t008", 301.0, [])
    assert empty.endswith("confidence\nTERM,0.0000,301.0000,bckg,1.0000\n")
    with pytest.raises(ValueError):
        format_csv_bi("b", 10.0, [(5.0, 12.0)])


def test_round_trip_format_parse() -> None:
    seizures = [(0.0, 12.5), (40.25, 61.0), (90.0, 120.0)]
    ann = parse_annotation_text(format_csv_bi("b", 120.0, seizures), "b.csv_bi")
    events, _ = seizure_events(ann)
    assert [(e.start, e.stop) for e in events] == seizures
    assert ann.rows[0].start == 0.0 and ann.rows[-1].stop == 120.0
    rows = [Row(ch, 0.0, 60.0, "bckg", 1.0) for ch in TCP_CHANNELS]
    again = parse_annotation_text(format_csv("b", 60.0, rows), "b.csv")
    assert again.rows == tuple(rows)


def test_read_annotation_local_fsspec_and_missing(tmp_path) -> None:
    fsspec = pytest.importorskip("fsspec")
    path = tmp_path / "aaaaatvr_s005_t008.csv_bi"
    path.write_text(CSV_BI)
    assert read_annotation(str(path)).rows[1].label == "seiz"
    mem = fsspec.filesystem("memory")
    mem.pipe("/corpus/a.csv", CSV.encode())
    assert read_annotation("/corpus/a.csv", fs=mem).kind == "csv"
    with pytest.raises(AnnotationError, match="missing") as info:
        read_annotation(str(tmp_path / "absent.csv_bi"))
    assert info.value.path.endswith("absent.csv_bi")
    path.write_bytes(CSV_BI.encode().replace(b"bname = a", b"bname = \xe9"))
    with pytest.raises(AnnotationError, match="not UTF-8"):
        read_annotation(str(path))
