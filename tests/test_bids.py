"""BIDS-EEG corpora (SzCORE) and mixtures through the real command line.

The BIDS copy is made by the field's own converter (epilepsy2bids, which reads with
pyedflib, resamples to 256 Hz and re-references to the common average): Ictal's census of
a synthetic TUSZ corpus and of its converted copy must agree, both must build and train,
and a mixture of the two builds one cache with both names.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import run_ictal, set_args, tiny_training

FAST = tiny_training(
    "loader.num_workers=1",
    "train.epochs=1",
    "train.steps_per_epoch=3",
    "train.heartbeat_s=1",
    model=False,
)


def _ok(res) -> None:
    assert res.returncode == 0, f"{res.args}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"


def _sets(*items: str) -> list[str]:
    return set_args(*items)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> tuple[Path, Path]:
    """A clean synthetic TUSZ corpus and its BIDS copy written by epilepsy2bids."""
    pytest.importorskip("epilepsy2bids")
    from epilepsy2bids.bids.tuh.convert2bids import convert

    from ictal.corpus.synth import synthesize

    base = tmp_path_factory.mktemp("bids")
    tusz, bids = base / "tusz", base / "bids"
    synthesize(tusz, patients=5, hours=0.7, seed=5)
    with warnings.catch_warnings():  # pyedflib says it rounds the physical range it writes
        warnings.simplefilter("ignore")
        convert(tusz / "edf", bids)
    return tusz, bids


def _census(root: Path, tmp: Path, *extra: str) -> dict:
    out = tmp / f"census-{root.name}.json"
    res = run_ictal("census", str(root), "--json", str(out), *extra)
    assert res.returncode in (0, 4), res.stderr
    doc = json.loads(out.read_text())
    assert doc["exit_code"] == res.returncode
    return doc


@pytest.mark.slow
def test_census_of_tusz_and_its_bids_copy_agree(corpora, tmp_path: Path) -> None:
    tusz, bids = corpora
    a, b = _census(tusz, tmp_path), _census(bids, tmp_path)
    assert (a["format"], b["format"]) == ("tusz", "bids")
    assert a["exit_code"] == b["exit_code"] == 0  # a clean BIDS copy is as clean as TUSZ
    for key in ("files", "usable_files", "patients", "seizure_events", "files_with_seizures"):
        assert a[key] == b[key], key
    for split, seconds in a["seizure_seconds"].items():
        # the converter writes onset and duration to 2 decimals
        assert b["seizure_seconds"][split] == pytest.approx(seconds, abs=0.01 * 2 * 10)
    for split, hours in a["hours"].items():
        assert b["hours"][split] == pytest.approx(hours, abs=1e-3)
    assert b["line_frequency"] == {"60": sum(b["files"].values())}
    assert set(b["vocabulary"]) == {"tsv"} and "sz" in b["vocabulary"]["tsv"]


@pytest.mark.slow
def test_bids_builds_and_trains_and_a_mixture_names_both(corpora, tmp_path: Path) -> None:
    tusz, bids = corpora
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    one = _sets(f"corpus.root={bids}", f"cache.root={cache}", f"runs.root={runs}", *FAST)
    _ok(run_ictal("build", "--workers", "1", *one))
    _ok(run_ictal("train", *one))
    (run,) = sorted(runs.iterdir())
    last = run / "checkpoints" / "last.pt"
    _ok(run_ictal("evaluate", str(last), "--split", "dev"))
    assert json.loads((run / "eval-last-dev" / "scores.json").read_text())["split"] == "dev"
    # detect reads the BIDS root as it is; its SzCORE files pair with the dataset's events
    # tables by name, so score takes the BIDS root as the reference directory.
    out = tmp_path / "detect"
    _ok(run_ictal("detect", str(last), str(bids), "--out", str(out), "--threshold", "0.5"))
    hyp = sorted(p.name for p in (out / "hyp" / "szcore").iterdir())
    assert hyp == sorted(p.name.replace("_eeg.edf", "_events.tsv") for p in _recordings(bids))
    scored = tmp_path / "score.json"
    _ok(run_ictal("score", str(bids), str(out / "hyp" / "szcore"), "--json", str(scored)))
    assert json.loads(scored.read_text())["files"] == len(hyp)

    mixture = tmp_path / "mixture.yaml"
    mixture.write_text(
        f"corpus:\n  roots:\n    - {{name: tusz, root: {tusz}}}\n"
        f"    - {{name: siena, root: {bids}, format: bids, split: eval}}\n"
        f"cache:\n  root: {cache}\nruns:\n  root: {tmp_path / 'runs2'}\n"
    )
    res = run_ictal("build", "--workers", "1", "-c", str(mixture), *_sets(*FAST))
    _ok(res)
    # The BIDS recordings built alone above are linked into the mixture (their sha256 are
    # the same files'), under their new names and split.
    n = len(_recordings(bids))
    assert f"{n} built, {n} reused" in res.stdout, res.stdout
    caches = [p for p in cache.iterdir() if (p / "manifest.json").is_file()]
    manifests = [json.loads((p / "manifest.json").read_text()) for p in caches]
    (mixed,) = [m for m in manifests if "corpora" in m]
    assert [(c["name"], c["format"], c["split"]) for c in mixed["corpora"]] == [
        ("tusz", "tusz", "auto"), ("siena", "bids", "eval"),
    ]  # fmt: skip
    assert [(s["corpus"], s["from"]) for s in mixed["splits"]] == [
        ("tusz", "layout"), ("siena", "corpus.roots[1] (siena): all eval"),
    ]  # fmt: skip
    alone = next(m for m in manifests if m is not mixed)
    assert alone["splits"][0]["from"] == "participants.tsv"
    path = next(p for p, m in zip(caches, manifests, strict=True) if "corpora" in m)
    rows = json.loads((path / "recordings.json").read_text())
    named = {r["corpus"] for r in rows}
    assert named == {"tusz", "siena"}
    assert all(r["id"].startswith(r["corpus"] + ".") for r in rows)
    assert {r["split"] for r in rows if r["corpus"] == "siena"} == {"eval"}
    by_corpus = {n: sum(r["corpus"] == n for r in rows) for n in named}
    assert by_corpus["tusz"] == by_corpus["siena"]  # one recording each way
    # (tests/test_evaluate_corpora.py trains and evaluates a mixture.)
    # A mixture's census gives one table per corpus.
    out = tmp_path / "mix-census.json"
    res = run_ictal("census", "-c", str(mixture), "--json", str(out))
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert [c["name"] for c in doc["corpora"]] == ["tusz", "siena"]
    assert "Corpus tusz:" in res.stdout and "Corpus siena:" in res.stdout


def _copy(bids: Path, tmp: Path) -> Path:
    out = tmp / "copy"
    shutil.copytree(bids, out)
    return out


def _events(path: Path, rows: list[tuple[float, float, str]], total: float) -> None:
    lines = ["onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration"]
    lines += [f"{a:.2f}\t{d:.2f}\t{k}\tn/a\tn/a\tn/a\t{total:.2f}" for a, d, k in rows]
    path.write_text("\n".join(lines) + "\n")


def _recordings(root: Path) -> list[Path]:
    return sorted(root.glob("sub-*/**/eeg/*_eeg.edf"))


def test_edge_cases_without_sessions_or_participants(corpora, tmp_path: Path) -> None:
    _, bids = corpora
    root = _copy(bids, tmp_path)
    (root / "participants.tsv").unlink()
    # One subject without a session level: its files move up and lose the ses entity.
    subject = sorted(root.glob("sub-*"))[0]
    (session,) = sorted(subject.glob("ses-*"))[:1]
    for f in (session / "eeg").iterdir():
        name = f.name.replace(f"_{session.name}", "")
        (subject / "eeg").mkdir(exist_ok=True)
        f.rename(subject / "eeg" / name)
    shutil.rmtree(session)
    first = _census(root, tmp_path)
    assert first["exit_code"] == 0, first["unusable"]
    assert sum(first["files"].values()) == len(_recordings(bids))
    # The split comes from the subject hash: deterministic and patient-disjoint; another
    # seed gives another split, and the split rule enters the cache key.
    again = _census(root, tmp_path)
    assert again["files"] == first["files"] and again["patient_overlap"] == {}
    other = _census(root, tmp_path, "--set", "corpus.split.seed=1")
    assert other["patients"] != first["patients"] or other["files"] != first["files"]
    from ictal.config import Config
    from ictal.corpus.sources import inventory

    def digest(seed: int, at: Path) -> str:
        cfg = Config.model_validate({"corpus": {"root": str(at), "split": {"seed": seed}}})
        found = inventory(cfg.corpus)
        return found.digest(found.refs)

    assert digest(0, root) != digest(1, root)  # the split rule is in the cache key
    assert digest(0, bids) == digest(1, bids)  # ... unless participants.tsv gives the splits


@pytest.mark.slow
def test_events_outside_unknown_types_and_a_non_eeg_channel(corpora, tmp_path: Path) -> None:
    _, bids = corpora
    root = _copy(bids, tmp_path)
    recs = _recordings(root)
    outside, unknown = recs[0], recs[1]
    stem = lambda p: str(p)[: -len("_eeg.edf")]  # noqa: E731
    total = json.loads(Path(stem(outside) + "_eeg.json").read_text())["RecordingDuration"]
    _events(Path(stem(outside) + "_events.tsv"), [(float(total) - 5, 30.0, "sz_foc")], total)
    length = json.loads(Path(stem(unknown) + "_eeg.json").read_text())["RecordingDuration"]
    _events(Path(stem(unknown) + "_events.tsv"), [(10, 20, "eyem"), (40, 12, "sz")], length)
    doc = _census(root, tmp_path)
    assert doc["exit_code"] == 4
    (bad,) = doc["unusable"]
    assert bad["file"] == str(outside.relative_to(root))
    assert outside.name.replace("_eeg.edf", "_events.tsv: ") in bad["reason"]
    assert "outside the recording" in bad["reason"]
    assert doc["vocabulary"]["tsv"]["eyem"] == 1  # reported, not a seizure
    res = run_ictal("census", str(root))
    assert "Event types neither seizure (sz*) nor bckg, not seizures: eyem 1" in res.stdout
    # A non-EEG channel among the EEG ones is left out; the 19 electrodes are found.
    import edfio

    edf = edfio.read_edf(recs[2])
    signals = list(edf.signals)
    ecg = edfio.EdfSignal(np.zeros(len(signals[0].data)), signals[0].sampling_frequency,
                          label="ECG", physical_range=(-1000, 1000))  # fmt: skip
    edfio.Edf([*signals[:5], ecg, *signals[5:]], starttime=edf.starttime).write(recs[2])
    assert [u["file"] for u in _census(root, tmp_path)["unusable"]] == [bad["file"]]
    # With out-of-range events clipped (corpus.policy), the build uses the file and counts it.
    sets = _sets(f"corpus.root={root}", f"cache.root={tmp_path / 'cache'}", *FAST,
                 "corpus.policy.annotation_out_of_range=clip")  # fmt: skip
    _ok(run_ictal("build", "--workers", "1", *sets))
    (cache,) = [p for p in (tmp_path / "cache").iterdir() if (p / "manifest.json").is_file()]
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["failed"] == [] and manifest["repairs"]["clipped_to_duration"] == 1
    rows = {r["rel"]: r for r in json.loads((cache / "recordings.json").read_text())}
    assert rows[str(unknown.relative_to(root))]["seizure_labels"] == ["sz"]  # eyem is not one
    assert len(rows[str(outside.relative_to(root))]["seizures"]) == 1


def test_hostile_bids_inputs_are_clear_refusals(corpora, tmp_path: Path) -> None:
    _, bids = corpora
    root = _copy(bids, tmp_path)
    rec = _recordings(root)[0]
    # A file whose subject is not its folder's, and one off the layout: problems, not crashes.
    shutil.copy(rec, rec.parent / rec.name.replace("sub-", "sub-9", 1))
    (root / "sub-zz").mkdir()
    shutil.copy(rec, root / "sub-zz" / "notes.edf")
    # A sidecar that is not JSON, and one whose mains is not a frequency: that file only.
    sidecars = sorted(root.glob("sub-*/**/eeg/*_eeg.json"))
    sidecars[1].write_text("{not json")
    sidecars[2].write_text(json.dumps({"PowerLineFrequency": "fifty"}))
    sidecars[3].write_text(json.dumps({"PowerLineFrequency": "n/a"}))  # says none: fine
    doc = _census(root, tmp_path)
    reasons = {u["file"]: u["reason"] for u in doc["unusable"]}
    assert any("is not its folder" in r for r in reasons.values()), reasons
    assert any("does not match the BIDS layout" in r for r in reasons.values()), reasons
    assert any(r.endswith("_eeg.json: not a JSON sidecar") for r in reasons.values()), reasons
    assert any("PowerLineFrequency 'fifty' is not a number" in r for r in reasons.values())
    assert len(reasons) == 4 and doc["line_frequency"]["n/a"] == 3  # 3: the two bad, one n/a
    # A split value nobody knows: exit 2 naming the file, the line and the fix.
    table = (root / "participants.tsv").read_text().splitlines()
    table[1] = table[1].rsplit("\t", 1)[0] + "\tholdout"
    (root / "participants.tsv").write_text("\n".join(table) + "\n")
    res = run_ictal("census", str(root))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "participants.tsv: line 2: split 'holdout'" in res.stderr


def test_power_line_frequency_of_the_sidecar_sets_the_notch(corpora, tmp_path: Path) -> None:
    """A European recording (PowerLineFrequency 50) is notched at 50 Hz, and the record says
    so: the synthetic signals carry 60 Hz mains, which the 60 Hz sidecar's notch removes and
    the 50 Hz one leaves."""
    _, bids = corpora
    root = _copy(bids, tmp_path)
    for sub in sorted(root.glob("sub-*"))[1:]:
        shutil.rmtree(sub)  # one subject is enough
    american = tmp_path / "american"
    shutil.copytree(root, american)
    for sidecar in root.glob("sub-*/**/eeg/*_eeg.json"):
        doc = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**doc, "PowerLineFrequency": 50}))
    mains = {}
    for name, at in (("50", root), ("60", american)):
        sets = _sets(f"corpus.root={at}", f"cache.root={tmp_path / name}", *FAST)
        _ok(run_ictal("build", "--workers", "1", *sets))
        (cache,) = [p for p in (tmp_path / name).iterdir() if (p / "manifest.json").is_file()]
        records = [json.loads(p.read_text()) for p in (cache / "records").glob("*.json")]
        assert records and {r["line_frequency_hz"] for r in records} == {float(name)}
        x = np.concatenate([np.load(p) for p in sorted((cache / "arrays").iterdir())])
        spectrum = np.abs(np.fft.rfft(x.astype(np.float64), axis=0)) ** 2
        hz = np.fft.rfftfreq(len(x), 1 / 256)
        mains[name] = spectrum[np.abs(hz - 60) < 0.5].sum() / spectrum[np.abs(hz - 55) < 0.5].sum()
    assert mains["50"] > 5 * mains["60"], mains  # 60 Hz kept where the notch moved to 50 Hz


CHB_PAIRS = ["FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP1-F3", "F3-C3", "C3-P3", "P3-O1",
             "FP2-F4", "F4-C4", "C4-P4", "P4-O2", "FP2-F8", "F8-T8", "T8-P8", "P8-O2",
             "FZ-CZ", "CZ-PZ", "P7-T7", "T7-FT9", "FT9-FT10", "FT10-T8", "T8-P8"]  # fmt: skip


def _store_bipolar(edf_path: Path) -> None:
    """Rewrite a recording as CHB-MIT stores its own: 23 bipolar pairs (T8-P8 twice, FT9
    and FT10 that Ictal does not use), no electrode."""
    import edfio

    from ictal.corpus.channels import normalise_label

    edf = edfio.read_edf(edf_path)
    by_name = {normalise_label(s.label): s for s in edf.signals}
    out = []
    for pair in CHB_PAIRS:
        a, b = (normalise_label(x) for x in pair.split("-"))
        first = by_name.get(a)
        data = (first.data if first else 0) - (by_name[b].data if b in by_name else 0)
        ref = next(iter(by_name.values()))
        data = data if isinstance(data, np.ndarray) else np.zeros(len(ref.data))
        out.append(edfio.EdfSignal(data, ref.sampling_frequency, label=pair,
                                   physical_range=(-3000, 3000)))  # fmt: skip
    edfio.Edf(out, starttime=edf.starttime).write(edf_path)


@pytest.mark.slow
def test_a_bipolar_dataset_gives_the_bipolar_montage(corpora, tmp_path: Path) -> None:
    """A dataset stored as bipolar pairs (CHB-MIT) is refused for a referential montage with
    the reason and the fix, and with signal.montage: bipolar gives the same cache as the
    double banana derived from its electrodes."""
    _, bids = corpora
    root = _copy(bids, tmp_path)
    for sub in sorted(root.glob("sub-*"))[2:]:
        shutil.rmtree(sub)  # two subjects are enough
    referential = tmp_path / "referential"
    shutil.copytree(root, referential)
    for edf in _recordings(root):
        _store_bipolar(edf)
    doc = _census(root, tmp_path)
    assert doc["exit_code"] == 4 and len(doc["unusable"]) == len(_recordings(root))
    assert "signal.montage: bipolar reads its pairs" in doc["unusable"][0]["reason"]
    bipolar = ("--set", "signal.montage=bipolar")
    assert _census(root, tmp_path, *bipolar)["exit_code"] == 0
    arrays = {}
    for name, at in (("stored", root), ("derived", referential)):
        sets = _sets(f"corpus.root={at}", f"cache.root={tmp_path / name}", *FAST,
                     "signal.montage=bipolar")  # fmt: skip
        _ok(run_ictal("build", "--workers", "1", *sets))
        (cache,) = [p for p in (tmp_path / name).iterdir() if (p / "manifest.json").is_file()]
        arrays[name] = {p.name: np.load(p) for p in sorted((cache / "arrays").iterdir())}
    assert arrays["stored"].keys() == arrays["derived"].keys()
    for key, stored in arrays["stored"].items():
        derived = arrays["derived"][key]
        assert stored.shape == derived.shape and stored.shape[1] == 18
        # the stored pairs were quantised to 16 bits once more; the derivation is the same
        assert np.abs(stored - derived).max() < 0.02, key  # values reach 10 and more


@pytest.mark.slow
def test_a_bids_dataset_on_s3_gives_the_same_census_and_cache(corpora, s3, tmp_path) -> None:
    import fsspec

    _, bids = corpora
    local = _copy(bids, tmp_path)
    for sub in sorted(local.glob("sub-*"))[2:]:
        shutil.rmtree(sub)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("bids")
    for path in sorted(local.rglob("*")):
        if path.is_file():
            fs.put_file(str(path), f"bids/ds/{path.relative_to(local).as_posix()}")
    url = "s3://bids/ds"
    docs = {}
    for name, root in (("remote", url), ("local", str(local))):
        out = tmp_path / f"{name}.json"
        res = run_ictal("census", root, "--json", str(out))
        assert res.returncode == 0, res.stderr[-2000:]
        docs[name] = json.loads(out.read_text())
        sets = _sets(f"corpus.root={root}", f"cache.root={tmp_path / ('c' + name)}", *FAST)
        _ok(run_ictal("build", "--workers", "1", *sets))
    for key in ("format", "files", "hours", "seizure_events", "patients", "vocabulary"):
        assert docs["remote"][key] == docs["local"][key], key
    caches = {}
    for name in ("remote", "local"):
        (cache,) = [p for p in (tmp_path / f"c{name}").iterdir() if (p / "manifest.json").exists()]
        caches[name] = {p.name: p.read_bytes() for p in sorted((cache / "arrays").iterdir())}
    assert caches["remote"] == caches["local"] and caches["local"]


def test_events_tables_are_parsed_strictly() -> None:
    """Rows are numbers and types: anything else names the file and the line."""
    from ictal.corpus.annotations import AnnotationError, seizure_events
    from ictal.corpus.bids import parse_events

    head = "onset\tduration\teventType\tconfidence\trecordingDuration\n"
    rows = ["0\t100\tbckg\tn/a\t100", "10\t5\tsz_foc_ia\t0.8\t100", "12\t6\tsz_foc\tn/a\t100",
            "50\t1\tartifact\tn/a\t100"]  # fmt: skip
    ok = parse_events(head + "\n".join(rows) + "\n", "x_events.tsv")
    with pytest.raises(AnnotationError, match="overlapping rows"):  # seizures: corpus.policy
        seizure_events(ok, edf_duration=100.0)
    events, fixes = seizure_events(ok, edf_duration=100.0, overlap_policy="merge")
    # the bckg row and the artifact overlap the seizures freely; the longest type names it
    assert [(e.start, e.stop, e.label) for e in events] == [(10.0, 18.0, "sz_foc")]
    assert fixes == {"overlap_merged": 1}
    no_total = parse_events("onset\tduration\teventType\n3\t4\tsz\n", "y_events.tsv")
    assert [(e.start, e.stop) for e in seizure_events(no_total, edf_duration=9.0)[0]] == [(3, 7)]
    bad = {
        "onset\tduration\n1\t2\n": "line 1: missing column(s) eventType",
        head + "one\t2\tsz\tn/a\t9\n": "line 2: onset 'one' is not a number",
        head + "1\t0\tsz\tn/a\t9\n": "line 2: sz has duration 0",
        head + "1\tinf\tsz\tn/a\t9\n": "line 2: duration 'inf' is not finite",
        head + "1\t2\tsz\tn/a\t9\n3\t1\tsz\tn/a\t10\n": "disagree on recordingDuration",
        head + "1\t2\t\tn/a\t9\n": "line 2: empty eventType",
    }
    for text, reason in bad.items():
        with pytest.raises(AnnotationError, match=re.escape(reason)):
            parse_events(text, "z_events.tsv")
