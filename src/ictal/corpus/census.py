"""The census: inventory and checks of a corpus from EDF headers and annotation files only.

It answers, in seconds and before any expensive work, what the corpus holds (files, hours,
seizures per split, rates, montages, labels, channels) and what is wrong with it (unusable
files with reasons, counted repairs, patients shared between splits).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from rich.console import Console
from rich.table import Table

from ictal.corpus.annotations import AnnotationError, is_seizure_label, seizure_events
from ictal.corpus.bids import line_frequency
from ictal.corpus.channels import CANONICAL_19, normalise_label
from ictal.corpus.discovery import RecordingRef, open_fs
from ictal.corpus.edf import RecordingError, check_channels, read_header, select_for
from ictal.corpus.labels import read_labels
from ictal.corpus.sources import Source, detect_format, scan_source
from ictal.errors import Ending
from ictal.io.redact import redact
from ictal.ui import styled

SPLITS = ("train", "dev", "eval")
LABEL_SOURCES = ("csv_bi", "csv")
LABEL_KINDS = (*LABEL_SOURCES, "tsv")  # TUSZ's two files, BIDS's events table
Progress = Callable[[int, int], None]  # (files done, files total)


@dataclass
class FileCensus:
    """What the census learned about one recording; `problem` is None when usable."""

    ref: RecordingRef
    duration_s: float = 0.0
    rate: float | None = None
    channels: frozenset[str] = frozenset()
    events: int = 0
    seizure_s: float = 0.0
    vocabulary: dict[str, Counter[str]] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)
    mains: float | None = None  # a BIDS sidecar's PowerLineFrequency
    problem: str | None = None


@dataclass
class Census:
    """Corpus totals and problems; per-split dicts are keyed by split name."""

    root: str
    window_s: float
    label_source: str
    format: str = "tusz"
    name: str = ""  # the corpus's name in a mixture
    files: dict[str, int] = field(default_factory=dict)  # all recordings found
    usable_files: dict[str, int] = field(default_factory=dict)
    files_by_montage: dict[str, int] = field(default_factory=dict)
    files_by_rate: dict[float, int] = field(default_factory=dict)
    patients: dict[str, int] = field(default_factory=dict)
    hours: dict[str, float] = field(default_factory=dict)  # usable files only
    seizure_events: dict[str, int] = field(default_factory=dict)
    seizure_seconds: dict[str, float] = field(default_factory=dict)
    files_with_seizures: dict[str, int] = field(default_factory=dict)
    vocabulary: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> label -> rows
    channel_coverage: dict[str, int] = field(default_factory=dict)
    short_files: list[str] = field(default_factory=list)
    unusable: list[tuple[str, str]] = field(default_factory=list)
    repairs: dict[str, int] = field(default_factory=dict)
    patient_overlap: dict[str, list[str]] = field(default_factory=dict)
    line_frequency: dict[str, int] = field(default_factory=dict)  # Hz (or "n/a") -> files
    elapsed_s: float = 0.0

    @property
    def seizure_fraction(self) -> dict[str, float]:
        """Fraction of recorded time in seizure, per split."""
        return {
            s: (self.seizure_seconds.get(s, 0.0) / (h * 3600) if h else 0.0)
            for s, h in self.hours.items()
        }

    @property
    def ending(self) -> Ending:
        """DONE when every file is usable and the splits are patient-disjoint, else PARTIAL."""
        return Ending.PARTIAL if self.unusable or self.patient_overlap else Ending.DONE


def _census_file(
    fs: fsspec.AbstractFileSystem,
    base: str,
    ref: RecordingRef,
    label_source: str,
    montage: str | None = None,
) -> FileCensus:
    """Header + annotation checks for one recording; errors become `problem`, never raise."""
    out = FileCensus(ref=ref)
    try:
        header = read_header(f"{base}/{ref.rel}", fs, size=ref.size if ref.size >= 0 else None)
    except RecordingError as exc:
        out.problem = exc.reason
        return out
    out.duration_s = header.duration_s
    out.repairs = dict(header.repairs)
    out.channels = frozenset(normalise_label(x) for x in header.labels) & set(CANONICAL_19)
    rates = {
        f
        for lab, f in zip(header.labels, header.fs, strict=True)
        if normalise_label(lab) in CANONICAL_19
    }
    stored = select_for(header.labels, montage=montage)
    if stored.ok and stored.wanted != CANONICAL_19:  # a bipolar file: its pairs' electrodes
        out.channels = frozenset(e for name in stored.index for e in name.split("-"))
        rates = {header.fs[i] for i in stored.index.values()}
    out.rate = rates.pop() if len(rates) == 1 else None
    try:
        check_channels(header, montage=montage)
    except RecordingError as exc:
        out.problem = exc.reason
    files = ref.files()
    if "json" in files:
        try:
            out.mains = line_frequency(f"{base}/{files['json']}", fs)
        except AnnotationError as exc:
            out.problem = out.problem or f"{files['json']}: {exc.reason}"
    label_kind = ref.labels(label_source)[0]
    for kind in (k for k in LABEL_KINDS if k in files):
        path = f"{base}/{files[kind]}"
        try:
            ann = read_labels(path, kind, fs)
            out.vocabulary[kind] = Counter(row.label for row in ann.rows)
            if kind == label_kind:
                events, fixes = seizure_events(ann, edf_duration=header.duration_s)
                out.events = len(events)
                out.seizure_s = sum(e.stop - e.start for e in events)
                for k, v in fixes.items():
                    out.repairs[k] = out.repairs.get(k, 0) + v
        except AnnotationError as exc:
            if kind == label_kind and out.problem is None:
                out.problem = f"{files[kind]}: {exc.reason}"
    return out


def run_census(
    root: str,
    *,
    window_s: float = 60.0,
    label_source: str = "csv_bi",
    progress: Progress | None = None,
    workers: int | None = None,
    source: Source | None = None,
    split_rule: Any = None,
    montage: str | None = None,
) -> Census:
    """Census of the corpus at `root` (path or fsspec URL; TUSZ or BIDS, or the corpus of a
    mixture `source`) from headers and annotations only; remote file systems are read from
    a thread pool (`workers`, default 16). `split_rule` splits a BIDS corpus without a split
    column (corpus.split); a bipolar `montage` (signal.montage) accepts files stored as its
    pairs."""
    if label_source not in LABEL_SOURCES:
        raise ValueError(f"label_source must be one of {LABEL_SOURCES}, not {label_source!r}")
    t0 = time.perf_counter()
    if source is None:
        source = Source("", root, detect_format(root))
    root = source.root
    fs, base = open_fs(root)
    found = scan_source(source, split_rule)
    refs = found.refs
    if workers is None:
        workers = 1 if isinstance(fs, LocalFileSystem) else 16
    results: list[FileCensus] = []

    def one(ref: RecordingRef) -> FileCensus:
        try:
            return _census_file(fs, base, ref, label_source, montage)
        except Exception as exc:  # one bad file never stops the census (invariant 10)
            return FileCensus(ref=ref, problem=f"unexpected {type(exc).__name__}: {exc}")

    if workers <= 1:
        mapped = map(one, refs)
        pool = None
    else:
        pool = ThreadPoolExecutor(max_workers=workers)
        mapped = pool.map(one, refs)
    try:
        for i, item in enumerate(mapped, start=1):
            results.append(item)
            if progress is not None:
                progress(i, len(refs))
    finally:
        if pool is not None:
            pool.shutdown()

    census = _summarise(root, window_s, label_source, results, found.problems)
    census.format, census.name = source.format, source.name
    census.elapsed_s = time.perf_counter() - t0
    return census


def _summarise(
    root: str,
    window_s: float,
    label_source: str,
    results: list[FileCensus],
    layout_problems: list[tuple[str, str]],
) -> Census:
    c = Census(root=root, window_s=window_s, label_source=label_source)
    files: Counter[str] = Counter()
    usable: Counter[str] = Counter()
    montages: Counter[str] = Counter()
    rates: Counter[float] = Counter()
    seconds: defaultdict[str, float] = defaultdict(float)
    events: Counter[str] = Counter()
    seiz_s: defaultdict[str, float] = defaultdict(float)
    with_seiz: Counter[str] = Counter()
    vocab: dict[str, Counter[str]] = {k: Counter() for k in LABEL_KINDS}
    coverage: Counter[str] = Counter()
    mains: Counter[str] = Counter()
    repairs: Counter[str] = Counter()
    splits_of: defaultdict[str, set[str]] = defaultdict(set)
    patients: defaultdict[str, set[str]] = defaultdict(set)
    for r in results:
        split = r.ref.split
        files[split] += 1
        montages[r.ref.montage] += 1
        splits_of[r.ref.patient].add(split)
        patients[split].add(r.ref.patient)
        coverage.update(r.channels)
        repairs.update(r.repairs)
        for kind, counts in r.vocabulary.items():
            vocab[kind].update(counts)
        if r.rate is not None:
            rates[r.rate] += 1
        if "json" in r.ref.files():
            mains[f"{r.mains:g}" if r.mains is not None else "n/a"] += 1
        if r.problem is not None:
            c.unusable.append((r.ref.rel, r.problem))
            continue
        usable[split] += 1
        seconds[split] += r.duration_s
        events[split] += r.events
        seiz_s[split] += r.seizure_s
        with_seiz[split] += r.events > 0
        if r.duration_s < window_s:
            c.short_files.append(r.ref.rel)
    present = [s for s in SPLITS if files[s]] + sorted(set(files) - set(SPLITS))
    c.files = {s: files[s] for s in present}
    c.usable_files = {s: usable[s] for s in present}
    c.patients = {s: len(patients[s]) for s in present}
    c.hours = {s: seconds[s] / 3600 for s in present}
    c.seizure_events = {s: events[s] for s in present}
    c.seizure_seconds = {s: seiz_s[s] for s in present}
    c.files_with_seizures = {s: with_seiz[s] for s in present}
    c.files_by_montage = dict(sorted(montages.items()))
    c.files_by_rate = dict(sorted(rates.items()))
    used = {k for r in results for k in r.ref.files()} or set(LABEL_SOURCES)
    c.vocabulary = {k: dict(sorted(v.items())) for k, v in vocab.items() if k in used}
    c.line_frequency = dict(sorted(mains.items()))
    c.channel_coverage = {ch: coverage[ch] for ch in CANONICAL_19}
    c.repairs = dict(sorted(repairs.items()))
    c.unusable = sorted(c.unusable + list(layout_problems))
    c.short_files.sort()
    c.patient_overlap = {
        p: [s for s in SPLITS if s in ss] + sorted(ss - set(SPLITS))
        for p, ss in sorted(splits_of.items())
        if len(ss) > 1
    }
    return c


def census_to_dict(c: Census) -> dict[str, Any]:
    """JSON-able, key-sorted view of a census (for `ictal census --json`)."""
    return {
        "root": redact(c.root),
        "format": c.format,
        **({"name": c.name} if c.name else {}),
        "window_s": c.window_s,
        "label_source": c.label_source,
        "files": c.files,
        "usable_files": c.usable_files,
        "files_by_montage": c.files_by_montage,
        "files_by_rate": {f"{k:g}": v for k, v in c.files_by_rate.items()},
        "patients": c.patients,
        "hours": c.hours,
        "seizure_events": c.seizure_events,
        "seizure_seconds": c.seizure_seconds,
        "seizure_fraction": c.seizure_fraction,
        "files_with_seizures": c.files_with_seizures,
        "vocabulary": c.vocabulary,
        "channel_coverage": c.channel_coverage,
        "short_files": c.short_files,
        "unusable": [{"file": rel, "reason": why} for rel, why in c.unusable],
        "repairs": c.repairs,
        "patient_overlap": c.patient_overlap,
        **({"line_frequency": c.line_frequency} if c.line_frequency else {}),
        "elapsed_s": round(c.elapsed_s, 3),
        "exit_code": int(c.ending.exit_code),
    }


def census_document(results: list[Census]) -> dict[str, Any]:
    """What ``ictal census --json`` writes: one census, or every corpus of a mixture with the
    worst exit code of them."""
    docs = [census_to_dict(c) for c in results]
    if len(docs) == 1:
        return docs[0]
    return {"corpora": docs, "exit_code": max(d["exit_code"] for d in docs)}


def print_census(c: Census, console: Console) -> None:
    """Rich tables: splits, montages and rates, vocabulary, channel coverage, problems."""
    console.print(_splits_table(c))
    for table in _shape_tables(c):
        console.print(table)
    _print_vocabulary(c, console)
    _print_coverage(c, console)
    _print_problems(c, console)
    code = int(c.ending.exit_code)
    verdict = styled("OK", "green") if c.ending is Ending.DONE else styled("problems found", "red")
    console.print(verdict + f" (exit code {code}), {c.elapsed_s:.1f} s")


def _splits_table(c: Census) -> Table:
    """Files, usable files, patients, hours and seizures of each split."""
    named = f"{c.name}: " if c.name else ""
    title = f"Corpus {named}{redact(c.root)} ({c.format.upper()})"
    splits = Table(title=title, title_justify="left")
    for col in ("split", "files", "usable", "patients", "hours", "seizures", "seizure h", "seiz %"):
        splits.add_column(col, justify="left" if col == "split" else "right")
    frac = c.seizure_fraction
    for s in c.files:
        splits.add_row(
            s,
            f"{c.files[s]:,}",
            f"{c.usable_files[s]:,}",
            f"{c.patients[s]:,}",
            f"{c.hours[s]:,.2f}",
            f"{c.seizure_events[s]:,}",
            f"{c.seizure_seconds[s] / 3600:,.2f}",
            f"{100 * frac[s]:.2f}",
        )
    return splits


def _shape_tables(c: Census) -> tuple[Table, Table]:
    """Files per montage, and files per sample rate: two lists, two tables."""
    montages = Table(title="Files per montage", title_justify="left")
    montages.add_column("montage")
    montages.add_column("files", justify="right")
    for name, n in c.files_by_montage.items():
        montages.add_row(name, f"{n:,}")
    rates = Table(title="Files per sample rate", title_justify="left")
    rates.add_column("rate (Hz)", justify="right")
    rates.add_column("files", justify="right")
    for rate, n in c.files_by_rate.items():
        rates.add_row(f"{rate:g}", f"{n:,}")
    return montages, rates


def _print_vocabulary(c: Census, console: Console) -> None:
    """Annotation labels per file kind, event types that are not seizures, mains frequency."""
    vocab = Table(title="Label vocabulary (annotation rows)", title_justify="left")
    vocab.add_column("file")
    vocab.add_column("labels")
    for kind, counts in c.vocabulary.items():
        vocab.add_row(f".{kind}", "  ".join(f"{k} {v:,}" for k, v in counts.items()) or "-")
    console.print(vocab)
    other = {k: v for k, v in c.vocabulary.get("tsv", {}).items()
             if k != "bckg" and not is_seizure_label("tsv", k)}  # fmt: skip
    if other:
        shown = ", ".join(f"{k} {v:,}" for k, v in other.items())
        console.print(f"Event types neither seizure (sz*) nor bckg, not seizures: {shown}")
    if c.line_frequency:
        shown = ", ".join(f"{k} Hz {v:,}" for k, v in c.line_frequency.items())
        console.print(f"Power-line frequency (eeg.json; the notch follows it): {shown}")


def _print_coverage(c: Census, console: Console) -> None:
    """The electrodes some files lack, or one line saying every file has all 19."""
    total = sum(c.files.values())
    short = [(ch, c.channel_coverage.get(ch, 0)) for ch in CANONICAL_19]
    short = [(ch, n) for ch, n in short if n < total]
    if not short:
        console.print(f"Channels: all 19 electrodes present in every one of the {total:,} files")
        return
    cov = Table(title=f"Electrodes missing from some of the {total:,} files",
                title_justify="left")  # fmt: skip
    cov.add_column("electrode")
    cov.add_column("files with it", justify="right")
    cov.add_column("files without", justify="right")
    for ch, n in short:
        cov.add_row(ch, f"{n:,}", styled(f"{total - n:,}", "red"))
    console.print(cov)


def _print_problems(c: Census, console: Console) -> None:
    """Repairs, short files, patients shared between splits, and the unusable files."""
    if c.repairs:
        console.print("Repairs: " + ", ".join(f"{k} {v}" for k, v in c.repairs.items()))
    if c.short_files:
        console.print(f"{len(c.short_files)} file(s) shorter than one {c.window_s:g} s window")
    if c.patient_overlap:
        console.print(styled(f"Patients in more than one split ({len(c.patient_overlap)}):", "red"))
        for p, ss in c.patient_overlap.items():
            console.print(f"  {p}: {', '.join(ss)}")
    if c.unusable:
        problems = Table(title=f"Unusable files ({len(c.unusable)})", title_justify="left")
        problems.add_column("file", overflow="fold")
        problems.add_column("reason", overflow="fold")
        for rel, why in c.unusable:
            problems.add_row(rel, why)
        console.print(problems)
