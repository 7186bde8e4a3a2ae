"""``ictal score`` through the command line: pairing, the three formats, outputs, refusals."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from ictal.cli import run
from ictal.events.formats import FormatError, parse_file, read_file, stem_of

HEADER = "# version = csv_v1.0.0\n# bname = {b}\n# duration = {d:.4f} secs\n# montage_file = x\n#\n"
COLUMNS = "channel,start_time,stop_time,label,confidence\n"


def csv_bi(path: Path, duration: float, events: list[tuple[float, float]], tiled: bool = False):
    """A NEDC .csv_bi file: seizure rows only, or rows tiling the recording."""
    rows, cursor = [], 0.0
    for a, b in events:
        if tiled and a > cursor:
            rows.append(f"TERM,{cursor:.4f},{a:.4f},bckg,1.0000\n")
        rows.append(f"TERM,{a:.4f},{b:.4f},seiz,1.0000\n")
        cursor = b
    if tiled and cursor < duration:
        rows.append(f"TERM,{cursor:.4f},{duration:.4f},bckg,1.0000\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER.format(b=stem_of(path), d=duration) + COLUMNS + "".join(rows))
    return path


def tsv(path: Path, duration: float, events: list[tuple[float, float]]) -> Path:
    """A SzCORE / BIDS events file (one bckg row when there is no seizure)."""
    lines = ["onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration"]
    for a, b in events or [(0.0, duration)]:
        kind = "sz_foc" if events else "bckg"
        lines.append(f"{a:.2f}\t{b - a:.2f}\t{kind}\tn/a\tn/a\tn/a\t{duration:.2f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def per_channel_csv(path: Path, duration: float, events: list[tuple[float, float]]) -> Path:
    """A TUSZ per-channel .csv: each seizure marked on two channels, staggered."""
    rows = []
    for a, b in events:
        rows.append(f"FP1-F7,{a:.4f},{(a + b) / 2:.4f},fnsz,1.0000\n")
        rows.append(f"F7-T3,{a + 0.5:.4f},{b:.4f},fnsz,1.0000\n")
    rows.append(f"FP2-F8,0.0000,{duration:.4f},bckg,1.0000\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER.format(b=stem_of(path), d=duration) + COLUMNS + "".join(rows))
    return path


REFS = {
    "aaaaaaaa_s001_t000": (600.0, [(10.0, 20.0), (100.0, 160.0), (400.0, 401.5)]),
    "aaaaaaab_s001_t000": (1800.0, [(0.0, 30.0), (1790.0, 1800.0)]),
    "aaaaaaac_s002_t001": (300.0, []),
}
HYPS = {
    "aaaaaaaa_s001_t000": [(12.0, 15.0), (20.0, 25.0), (150.0, 170.0), (500.0, 510.0)],
    "aaaaaaab_s001_t000": [(5.0, 40.0)],
    "aaaaaaac_s002_t001": [(100.0, 130.0)],
}


def corpus(root: Path) -> None:
    """References in a TUSZ-like tree, hypotheses flat, as Ictal exports them."""
    for k, (stem, (duration, events)) in enumerate(REFS.items()):
        csv_bi(root / "ref" / f"p{k}" / "s001" / f"{stem}.csv_bi", duration, events, tiled=k == 0)
        csv_bi(root / "hyp" / f"{stem}.csv_bi", duration, HYPS[stem])


def score(*args: str | Path) -> int:
    return run(["score", *map(str, args)])


def test_directories_pair_by_stem_and_write_json_and_per_file(tmp_path: Path, capsys) -> None:
    corpus(tmp_path)
    out, table = tmp_path / "scores.json", tmp_path / "per_file.csv"
    assert score(tmp_path / "ref", tmp_path / "hyp", "--json", out, "--per-file", table) == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"ovlp", "taes", "epoch", "dpalign", "szcore", "szcore_samples", "files"}
    assert doc["files"] == 3
    for name in ("ovlp", "taes", "epoch", "dpalign", "szcore", "szcore_samples"):
        assert {"hits", "misses", "false_alarms", "n_ref", "duration_s", "sensitivity",
                "fa_per_24h", "precision", "f1"} <= set(doc[name])  # fmt: skip
    # OVLP by hand: file a: (10,20) hit by (12,15), (100,160) hit by (150,170), (400,401.5)
    # missed; (20,25) touches only and (500,510) is alone: 2 FAs. File b: (0,30)
    # hit by (5,40), (1790,1800) missed. File c: 1 FA. 5 refs, 3 hits, 2 misses, 3 FAs.
    ovlp = doc["ovlp"]
    assert (ovlp["n_ref"], ovlp["hits"], ovlp["misses"], ovlp["false_alarms"]) == (5, 3, 2, 3)
    assert ovlp["duration_s"] == 2700.0
    assert ovlp["fa_per_24h"] == pytest.approx(3 / 2700 * 86400)
    # TAES: file a: (10,20) takes (12,15) 0.3 and the touching (20,25) charged 0.5 FA
    # (NEDC quirk); (100,160) with (150,170): hit 10/60, FA 10/60; (500,510) a whole FA;
    # file b: (0,30) with (5,40): hit 25/30, FA 10/30; file c: a whole FA
    assert doc["taes"]["hits"] == pytest.approx(0.3 + 10 / 60 + 25 / 30)
    assert doc["taes"]["false_alarms"] == pytest.approx(0.5 + 10 / 60 + 1 + 10 / 30 + 1)
    rows = list(csv.DictReader(table.open()))
    assert [r["recording"] for r in rows] == list(REFS)
    assert sum(int(r["ovlp_hits"]) for r in rows) == 3
    assert rows[2]["ovlp_false_alarms"] == "1" and rows[2]["duration_s"] == "300.0000"
    shown = capsys.readouterr().out
    assert "OVLP (NEDC)" in shown and "3 files" in shown


def test_round_trips_through_every_format_give_the_same_numbers(tmp_path: Path) -> None:
    corpus(tmp_path)
    results = {}
    for fmt, write in (("csv_bi", csv_bi), ("tsv", tsv)):
        for stem, events in HYPS.items():
            name = f"{stem}_events.tsv" if fmt == "tsv" else f"{stem}.csv_bi"
            write(tmp_path / f"hyp_{fmt}" / name, REFS[stem][0], events)
        out = tmp_path / f"{fmt}.json"
        assert score(tmp_path / "ref", tmp_path / f"hyp_{fmt}", "--json", out) == 0
        results[fmt] = json.loads(out.read_text())
    # references as TSV and as TUSZ per-channel .csv (collapsed to the same seizures)
    for stem, (duration, events) in REFS.items():
        tsv(tmp_path / "ref_tsv" / f"{stem}_events.tsv", duration, events)
        merged = [(a, b) for a, b in events]
        per_channel_csv(tmp_path / "ref_csv" / f"{stem}.csv", duration, merged)
    for fmt in ("tsv", "csv"):
        out = tmp_path / f"ref_{fmt}.json"
        assert score(tmp_path / f"ref_{fmt}", tmp_path / "hyp", "--json", out) == 0
        results[f"ref_{fmt}"] = json.loads(out.read_text())
    base = results["csv_bi"]
    for fmt, doc in results.items():
        for name in base:
            if name == "files":
                assert doc[name] == base[name]
                continue
            for field in ("hits", "misses", "false_alarms", "n_ref", "duration_s"):
                assert doc[name][field] == pytest.approx(base[name][field], abs=0.01), (
                    fmt, name, field)  # fmt: skip


def test_list_files_single_files_and_no_variables(tmp_path: Path, monkeypatch, capsys) -> None:
    corpus(tmp_path)
    refs = sorted((tmp_path / "ref").rglob("*.csv_bi"))
    (tmp_path / "ref.list").write_text(
        "# references\n" + "".join(f"{p}\n" for p in refs)  # absolute paths, written out
    )
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "hyp.txt").write_text(
        "".join(f"../hyp/{p.name}\n" for p in reversed(refs))  # relative, another order
    )
    out = tmp_path / "a.json"
    assert score(tmp_path / "ref.list", tmp_path / "lists" / "hyp.txt", "--json", out) == 0
    assert json.loads(out.read_text())["ovlp"]["hits"] == 3
    # two single files pair whatever their names
    single = tmp_path / "other-name.csv_bi"
    single.write_bytes((tmp_path / "hyp" / "aaaaaaab_s001_t000.csv_bi").read_bytes())
    ref = next(p for p in refs if p.stem == "aaaaaaab_s001_t000")
    assert score(ref, single, "--json", out, "--scorers", "ovlp,szcore") == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"ovlp", "szcore", "szcore_samples", "files"}
    assert (doc["ovlp"]["hits"], doc["files"]) == (1, 1)
    # a list is data: $VAR, ${VAR} and ~ are never expanded (a list must not print a secret)
    monkeypatch.setenv("SCORE_ROOT", str(tmp_path))
    for entry in ("$SCORE_ROOT/ref/x.csv_bi", "/x/${SCORE_ROOT}.csv_bi", "~/x.csv_bi"):
        (tmp_path / "var.list").write_text(f"{entry}\n")
        capsys.readouterr()
        assert score(tmp_path / "var.list", tmp_path / "hyp") == 2
        err = capsys.readouterr().err
        assert "var.list: line 1:" in err and "does not expand" in err, err
        assert str(tmp_path) not in err.replace(str(tmp_path / "var.list"), ""), err


def test_missing_and_extra_hypotheses(tmp_path: Path, capsys) -> None:
    corpus(tmp_path)
    (tmp_path / "hyp" / "aaaaaaab_s001_t000.csv_bi").unlink()
    assert score(tmp_path / "ref", tmp_path / "hyp") == 2
    err = capsys.readouterr().err
    assert "aaaaaaab_s001_t000" in err and str(tmp_path / "ref") in err
    assert str(tmp_path / "hyp") in err and "--missing-hyp empty" in err
    out = tmp_path / "m.json"
    assert score(tmp_path / "ref", tmp_path / "hyp", "--missing-hyp", "empty", "--json", out) == 0
    doc = json.loads(out.read_text())
    # file b scored as an empty hypothesis: its two references are missed
    assert (doc["files"], doc["ovlp"]["hits"], doc["ovlp"]["misses"]) == (3, 2, 3)
    csv_bi(tmp_path / "hyp" / "zzzzzzzz_s001_t000.csv_bi", 60.0, [])
    assert score(tmp_path / "ref", tmp_path / "hyp", "--missing-hyp", "empty") == 2
    assert "zzzzzzzz_s001_t000" in capsys.readouterr().err


def test_subset_scores_only_the_references_with_a_hypothesis(tmp_path: Path, capsys) -> None:
    corpus(tmp_path)
    (tmp_path / "hyp" / "aaaaaaab_s001_t000.csv_bi").unlink()
    out, table = tmp_path / "s.json", tmp_path / "s.csv"
    assert score(tmp_path / "ref", tmp_path / "hyp", "--subset", "--json", out,
                 "--per-file", table) == 0  # fmt: skip
    doc = json.loads(out.read_text())
    # files a and c only: a's 3 refs (2 hits, 1 miss), 3 FAs in all; b is not scored
    assert (doc["files"], doc["ovlp"]["n_ref"], doc["ovlp"]["hits"]) == (2, 3, 2)
    assert doc["ovlp"]["duration_s"] == 900.0
    assert [r["recording"] for r in csv.DictReader(table.open())] == [
        "aaaaaaaa_s001_t000", "aaaaaaac_s002_t001"]  # fmt: skip
    assert "1 file(s): references without a hypothesis, not scored" in capsys.readouterr().err
    assert score(tmp_path / "ref", tmp_path / "hyp") == 2  # without it: the clear error
    assert "--subset to score only the others" in capsys.readouterr().err
    assert score(tmp_path / "ref", tmp_path / "hyp", "--subset", "--missing-hyp", "empty") == 2
    assert "give one of the two" in capsys.readouterr().err
    csv_bi(tmp_path / "hyp" / "zzzzzzzz_s001_t000.csv_bi", 60.0, [])
    assert score(tmp_path / "ref", tmp_path / "hyp", "--subset") == 2  # extra: still an error
    assert "zzzzzzzz_s001_t000" in capsys.readouterr().err


def _bids(root: Path, stem: str, duration: float, events: list[tuple[float, float]]) -> Path:
    return tsv(root / stem.split("_")[0] / "eeg" / f"{stem}_events.tsv", duration, events)


def test_szcore_pooling_parameters_and_scorer_names(tmp_path: Path, capsys) -> None:
    """--pooling subject averages subjects' rates; -c/--set reach the SzCORE scorers only;
    szcore_samples alone is a scorer name; the JSON says how F1 and pooling were done."""
    for root, evs in ((tmp_path / "ref", [(100.0, 120.0)]), (tmp_path / "hyp", [(125.5, 130.0)])):
        _bids(root, "sub-01_run-01", 600.0, evs)
        _bids(root, "sub-01_run-02", 600.0, [])
        _bids(root, "sub-02_run-01", 600.0, evs if root.name == "ref" else [])
    out = tmp_path / "p.json"
    assert score(tmp_path / "ref", tmp_path / "hyp", "--json", out) == 0
    rec = json.loads(out.read_text())["szcore"]
    # sub-01: hit (within 60 s after); sub-02: missed. Summed: 1 of 2
    assert (rec["pooling"], rec["hits"], rec["n_ref"], rec["sensitivity"]) == (
        "recording",
        1,
        2,
        0.5,
    )
    assert rec["parameters"]["tolerance_end_s"] == 60.0 and "f1_rule" in rec
    assert score(tmp_path / "ref", tmp_path / "hyp", "--json", out, "--pooling", "subject",
                 "--scorers", "szcore_samples") == 0  # fmt: skip
    doc = json.loads(out.read_text())
    assert set(doc) == {"szcore_samples", "files"}
    smp = doc["szcore_samples"]
    # sub-01 samples: 20 ref, none hit -> sensitivity 0, F1 0; sub-02: 20 missed -> 0
    assert (smp["pooling"], smp["subjects"], smp["sensitivity"], smp["f1"]) == (
        "subject",
        2,
        0.0,
        0.0,
    )
    assert smp["fa_per_24h"] == pytest.approx((5 / 1200 + 0) / 2 * 86400)
    shown = capsys.readouterr().out
    assert "mean over 2 subject(s)" in shown and "0, not n/a" in shown
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scoring:\n  szcore:\n    tolerance_end_s: 2.0\n    pooling: subject\n")
    assert score(tmp_path / "ref", tmp_path / "hyp", "-c", cfg, "--json", out,
                 "--set", "scoring.szcore.merge_gap_s=0") == 0  # fmt: skip
    doc = json.loads(out.read_text())
    assert (doc["szcore"]["hits"], doc["szcore"]["false_alarms"]) == (0, 1)  # 2 s: too late
    assert doc["szcore"]["pooling"] == "subject" and doc["ovlp"]["hits"] == 0
    assert "tolerance -30 s/+2 s" in capsys.readouterr().out
    assert score(tmp_path / "ref", tmp_path / "hyp", "--pooling", "file") == 2
    assert "scoring.szcore.pooling" in capsys.readouterr().err


def test_header_only_and_na_rows_as_szcore_reads_them(tmp_path: Path, capsys) -> None:
    head = "onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration\n"
    ref = tmp_path / "ref" / "sub-01_run-01_events.tsv"
    ref.parent.mkdir()
    ref.write_text(
        head + "n/a\tn/a\tbckg\tn/a\tn/a\tn/a\t300.00\n10.7\t2.3\tsz\tn/a\tn/a\tn/a\t300.00\n"
    )
    hyp = tmp_path / "hyp" / "sub-01_run-01_events.tsv"
    hyp.parent.mkdir()
    hyp.write_text(head)
    out = tmp_path / "h.json"
    assert score(ref, hyp, "--json", out) == 0
    doc = json.loads(out.read_text())
    assert (doc["szcore"]["misses"], doc["szcore_samples"]["misses"]) == (1, 3)
    assert doc["szcore"]["f1"] == 0.0 and doc["ovlp"]["f1"] is None
    assert "header-only hypothesis TSV: scored as an empty hypothesis" in capsys.readouterr().err
    assert score(hyp, ref) == 2  # a header-only reference has no duration: refused
    assert "no rows, so no recordingDuration" in capsys.readouterr().err
    ref.write_text(head + "n/a\t2.3\tsz\tn/a\tn/a\tn/a\t300.00\n")  # a seizure needs times
    assert score(ref, hyp) == 2
    assert "onset 'n/a' is not a number" in capsys.readouterr().err


def test_szcore_refuses_hypotheses_of_another_length(tmp_path: Path, capsys) -> None:
    ref = tsv(tmp_path / "r" / "sub-01_run-01_events.tsv", 300.0, [(10.0, 20.0)])
    hyp = tsv(tmp_path / "h" / "sub-01_run-01_events.tsv", 301.0, [(10.0, 20.0)])
    assert score(ref, hyp, "--scorers", "szcore") == 2
    err = capsys.readouterr().err
    assert "durations differ" in err and "300 and 301 samples" in err and "Traceback" not in err


def test_unusable_inputs_exit_2_naming_every_file_and_write_nothing(tmp_path: Path, capsys):
    corpus(tmp_path)
    out = tmp_path / "s.json"
    out.write_text("{}")
    bad = tmp_path / "hyp" / "aaaaaaaa_s001_t000.csv_bi"
    bad.write_text(bad.read_text().replace("TERM,500.0000", "TERM,abc"))
    short = tmp_path / "hyp" / "aaaaaaac_s002_t001.csv_bi"
    short.write_text(short.read_text().replace("300.0000 secs", "299.0000 secs"))
    assert score(tmp_path / "ref", tmp_path / "hyp", "--json", out) == 2
    err = capsys.readouterr().err
    assert f"{bad}: line 10: start time 'abc' is not a number" in err
    assert "durations differ" in err and str(short) in err
    assert "Traceback" not in err
    assert out.read_text() == "{}"  # an earlier result is never replaced by a partial one


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("TERM,1,2,SEIZ,1\n", "label 'SEIZ' is neither bckg nor a seizure label"),
        ("TERM,1,2,seiz\n", "4 fields, NEDC needs 5"),
        ("TERM,2,1,seiz,1\n", "does not stop after it starts"),
        ("TERM,nan,2,seiz,1\n", "is not finite"),
    ],
)
def test_rows_nedc_cannot_score_are_refused(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_file(HEADER.format(b="x", d=10.0) + COLUMNS + text, "f.csv_bi")


def test_nedc_header_rules(tmp_path: Path) -> None:
    body = COLUMNS + "TERM,1.0,2.0,seiz,1.0\n"
    ok = parse_file("# VERSION = csv_v1.0.0\n#duration=10.00\n" + body, "f.csv_bi")
    assert ok.timeline.duration_s == 10.0 and ok.timeline.seizures == [(1.0, 2.0)]
    with pytest.raises(FormatError, match="no version line"):
        parse_file("# duration = 10 secs\n" + body, "f.csv_bi")
    with pytest.raises(FormatError, match="csv_v2"):
        parse_file("# version = csv_v2.0.0\n# duration = 10 secs\n" + body, "f.csv_bi")
    with pytest.raises(FormatError, match="duration"):
        parse_file("# version = csv_v1.0.0\n" + body, "f.csv_bi")
    # rows on named channels are ignored when TERM rows exist, as NEDC does
    mixed = parse_file(HEADER.format(b="x", d=10.0) + body + "FP1-F7,5,6,seiz,1\n", "f.csv_bi")
    assert mixed.timeline.seizures == [(1.0, 2.0)] and mixed.notes
    # a .csv_bi with only channel rows is all background (NEDC); a .csv is collapsed (TUSZ)
    chan = HEADER.format(b="x", d=10.0) + COLUMNS + "FP1-F7,5,6,fnsz,1\nF7-T3,5.5,7,fnsz,1\n"
    assert parse_file(chan, "f.csv_bi").timeline.seizures == []
    assert parse_file(chan, "f.csv").timeline.seizures == [(5.0, 7.0)]
    locked = tmp_path / "locked.csv_bi"
    locked.write_text(HEADER.format(b="x", d=10.0) + body)

    def refuse(path: Path, what: str, limit: int) -> bytes:
        raise PermissionError(13, "Permission denied", str(path))

    with pytest.MonkeyPatch.context() as mp:  # as an unreadable file would (root reads all)
        mp.setattr("ictal.events.formats.read_bytes", refuse)
        with pytest.raises(FormatError, match="cannot read it: Permission denied"):
            read_file(locked)
    with pytest.raises(FormatError, match="no such file"):
        read_file(tmp_path / "missing.csv_bi")
    binary = tmp_path / "b.csv_bi"
    binary.write_bytes(b"\xff\xfe" + bytes(range(200)))
    with pytest.raises(FormatError, match="not UTF-8"):
        read_file(binary)


def test_tsv_rules() -> None:
    head = "onset\tduration\teventType\trecordingDuration\n"
    f = parse_file(head + "1.5\t2.25\tsz_foc_ia\t60.00\n10\t1\tbckg\t60.00\n", "r_events.tsv")
    assert f.timeline.seizures == [(1.5, 3.75)] and f.timeline.duration_s == 60.0
    with pytest.raises(FormatError, match="missing column"):
        parse_file("onset\tduration\n1\t2\n", "r_events.tsv")
    with pytest.raises(FormatError, match="eventType 'artifact'"):
        parse_file(head + "1\t2\tartifact\t60\n", "r_events.tsv")
    with pytest.raises(FormatError, match="disagree on recordingDuration"):
        parse_file(head + "1\t2\tsz\t60\n5\t2\tsz\t61\n", "r_events.tsv")
    with pytest.raises(FormatError, match="no rows"):
        parse_file(head, "r_events.tsv")


def test_directory_rules(tmp_path: Path, capsys) -> None:
    corpus(tmp_path)
    # a TUSZ folder holds .csv next to .csv_bi: the .csv_bi is scored
    per_channel_csv(tmp_path / "ref" / "p0" / "s001" / "aaaaaaaa_s001_t000.csv", 600.0, [])
    out = tmp_path / "d.json"
    assert score(tmp_path / "ref", tmp_path / "hyp", "--json", out) == 0
    assert json.loads(out.read_text())["ovlp"]["n_ref"] == 5
    # two files of one kind for one recording are an error naming both
    dup = csv_bi(tmp_path / "ref" / "elsewhere" / "aaaaaaaa_s001_t000.csv_bi", 600.0, [])
    assert score(tmp_path / "ref", tmp_path / "hyp") == 2
    assert str(dup) in capsys.readouterr().err
    dup.unlink()
    # a link out of the directory is not followed
    outside = csv_bi(tmp_path / "outside" / "aaaaaaad_s001_t000.csv_bi", 60.0, [])
    os.symlink(outside, tmp_path / "ref" / "aaaaaaad_s001_t000.csv_bi")
    assert score(tmp_path / "ref", tmp_path / "hyp") == 2
    assert "outside" in capsys.readouterr().err
    assert score(tmp_path / "nowhere", tmp_path / "hyp") == 2
    assert score(tmp_path / "ref", tmp_path / "hyp", "--scorers", "ovlp,nope") == 2
    assert "nope" in capsys.readouterr().err


def test_real_command_line(ictal, tmp_path: Path) -> None:
    corpus(tmp_path)
    res = ictal("score", str(tmp_path / "ref"), str(tmp_path / "hyp"), "--scorers", "ovlp,taes")
    assert res.returncode == 0, res.stderr
    assert "OVLP (NEDC)" in res.stdout and "TAES (NEDC)" in res.stdout
    assert "EPOCH" not in res.stdout
    bad = ictal("score", str(tmp_path / "ref"), str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and "no such file or directory" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_events_outside_the_recording_are_scored_as_nedc_does_with_a_note(
    tmp_path: Path, capsys
) -> None:
    ref = csv_bi(tmp_path / "r" / "a_s001_t000.csv_bi", 100.0, [(10.0, 20.0)])
    hyp = tmp_path / "h" / "a_s001_t000.csv_bi"
    hyp.parent.mkdir()
    hyp.write_text(
        HEADER.format(b="a", d=100.0)
        + COLUMNS
        + "TERM,-5.0,2.0,seiz,1\nTERM,15.0,18.0,seiz,1\nTERM,95.0,130.0,seiz,1\n"
    )
    out = tmp_path / "o.json"
    assert score(ref, hyp, "--json", out) == 0
    doc = json.loads(out.read_text())
    assert (doc["ovlp"]["hits"], doc["ovlp"]["false_alarms"]) == (1, 2)
    assert doc["szcore"]["duration_s"] == 100.0  # SzCORE scores the recording's own length
    assert "outside 0..duration" in capsys.readouterr().err


def test_oversized_and_malformed_tables_are_refused(tmp_path: Path, monkeypatch) -> None:
    import ictal.events.formats as formats

    big = tmp_path / "big_events.tsv"
    big.write_text("onset\tduration\teventType\trecordingDuration\n" + "1\t1\tsz\t60\n" * 50)
    monkeypatch.setattr(formats, "MAX_BYTES", 100)
    with pytest.raises(FormatError, match=r"more than the .* Ictal reads"):
        read_file(big)
    monkeypatch.setattr(formats, "MAX_BYTES", 2**20)
    bad = tmp_path / "bad_events.tsv"
    bad.write_text('onset\tduration\teventType\trecordingDuration\n"1\t1\tsz\t60\n' + "x" * 200_000)
    with pytest.raises(FormatError):
        read_file(bad)
