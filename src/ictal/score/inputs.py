"""What ``ictal score`` compares: reference and hypothesis files from directories (searched
recursively), NEDC-style list files or single files, paired by recording stem."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ictal.errors import UsageError
from ictal.events.formats import SUFFIXES, kind_of, stem_of
from ictal.io.paths import literal_entry
from ictal.io.untrusted import UnreadableInput, read_text

# When one directory holds a recording in several formats (a TUSZ folder holds both .csv and
# .csv_bi), the first kind here is scored.
PREFERENCE: tuple[str, ...] = ("csv_bi", "tsv", "csv")
_LISTED = 5  # stems named in a message before "..."
# Tables a BIDS dataset keeps beside its events: a directory's .tsv files that are not
# annotations (a BIDS root can be the reference directory as it is).
BIDS_TABLES = ("participants.tsv", "_channels.tsv", "_electrodes.tsv", "_scans.tsv",
               "_sessions.tsv")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Pair:
    """One recording to score: its reference and its hypothesis (None: an empty one), paths
    as text (a corpus holds many thousands: a Path object weighs three times more)."""

    stem: str
    ref: str
    hyp: str | None


def _walk(here: str) -> Iterator[os.DirEntry[str]]:
    """The files under ``here`` in ``os.walk``'s order (a directory's own files by name, then
    its subdirectories by name; links to directories are not entered), without a stat per
    file: the directory entries say what each one is."""
    try:
        with os.scandir(here) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError:  # os.walk skips a directory it cannot list
        return
    dirs = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if not is_dir:
            yield entry
        elif not entry.is_symlink():
            dirs.append(entry)
    for entry in dirs:
        yield from _walk(entry.path)


def _from_dir(root: Path) -> list[str]:
    """Annotation files under ``root`` (symbolic links are not followed out of it)."""
    found: list[str] = []
    top = root.resolve()
    for entry in _walk(str(root)):
        name = entry.name
        if kind_of(name) is None or name.endswith(BIDS_TABLES):
            continue
        if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(top):
            raise UsageError(
                f"{entry.path}: a link to a file outside {root}; copy the file in or list it "
                "in a list file"
            )
        found.append(entry.path)
    return found


def _entry_path(entry: str, listing: Path, lineno: int) -> Path:
    """A list entry as a path, taken as written (no ``$VAR``, ``${VAR}`` or ``~``: a list
    is data, and expanding it could print a secret of the environment); a relative entry
    is against the list's own directory."""
    why = literal_entry(entry)
    if why is not None:
        raise UsageError(f"{listing}: line {lineno}: {why}")
    path = Path(entry)
    return path if path.is_absolute() else listing.parent / path


def _from_list(listing: Path) -> list[str]:
    """The paths a list file names, one per line (blank lines and ``#`` comments skipped)."""
    try:
        text = read_text(listing, "list file")  # a FIFO or /dev/zero is refused, not read
    except UnreadableInput as exc:
        fix = "name a list file of paths, a directory or an annotation file"
        raise UsageError(f"{exc}; {fix}") from None
    paths = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = _entry_path(entry, listing, lineno)
        if kind_of(path) is None:
            raise UsageError(
                f"{listing}: line {lineno}: not an annotation file (need "
                f"{', '.join(SUFFIXES)}): {entry[:80]!r}"
            )
        paths.append(str(path))
    if not paths:
        raise UsageError(f"{listing}: the list names no files")
    return paths


def gather(arg: str | Path) -> tuple[list[str], bool]:
    """The files one argument names, and whether it was a single annotation file."""
    path = Path(arg)
    if path.is_dir():
        files = _from_dir(path)
        if not files:
            raise UsageError(f"{path}: no {', '.join(SUFFIXES)} files under this directory")
        return files, False
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    if kind_of(path) is not None:
        return [str(path)], True
    return _from_list(path), False


def by_stem(files: list[str], where: str | Path) -> dict[str, str]:
    """One file per recording stem; the preferred kind wins, two of one kind are an error."""
    chosen: dict[str, str] = {}
    for path in files:
        stem = stem_of(path)
        old = chosen.get(stem)
        if old is None:
            chosen[stem] = path
            continue
        rank_old, rank_new = PREFERENCE.index(kind_of(old)), PREFERENCE.index(kind_of(path))
        if rank_old == rank_new:
            raise UsageError(
                f"{where}: two files for recording {stem}: {old} and {path}; keep one, or "
                "name the files to score in a list file"
            )
        if rank_new < rank_old:
            chosen[stem] = path
    return chosen


def _named(stems: list[str]) -> str:
    shown = ", ".join(stems[:_LISTED])
    return shown + (f" and {len(stems) - _LISTED} more" if len(stems) > _LISTED else "")


def pair_inputs(
    ref: str | Path, hyp: str | Path, *, missing_hyp: str = "error", subset: bool = False
) -> tuple[list[Pair], list[str]]:
    """Pairs of reference and hypothesis files, in the reference's order, and the references
    left out (``subset``).

    Two single files pair with each other whatever their names; otherwise files pair by
    recording stem. A reference without a hypothesis is an error unless ``missing_hyp`` is
    ``empty`` (scored against an empty hypothesis) or ``subset`` (not scored: the hypotheses
    cover a subset of the references); a hypothesis without a reference always is.
    """
    if missing_hyp not in ("error", "empty"):
        raise UsageError(f"--missing-hyp must be 'error' or 'empty', not {missing_hyp!r}")
    if subset and missing_hyp == "empty":
        raise UsageError(
            "--subset scores only the references that have a hypothesis and --missing-hyp "
            "empty scores all of them; give one of the two"
        )
    ref_files, ref_single = gather(ref)
    hyp_files, hyp_single = gather(hyp)
    if ref_single and hyp_single:
        return [Pair(stem_of(ref_files[0]), ref_files[0], hyp_files[0])], []
    refs, hyps = by_stem(ref_files, ref), by_stem(hyp_files, hyp)
    extra = sorted(set(hyps) - set(refs))
    if extra:
        raise UsageError(
            f"{len(extra)} hypothesis file(s) in {hyp} have no reference in {ref}: "
            f"{_named(extra)}; score a matching set (a list file names exactly the files)"
        )
    missing = [s for s in refs if s not in hyps]
    if subset:  # every hypothesis has its reference (checked above), so none is empty
        return [
            Pair(stem, path, hyps[stem]) for stem, path in refs.items() if stem in hyps
        ], missing
    if missing and missing_hyp == "error":
        raise UsageError(
            f"{len(missing)} reference file(s) in {ref} have no hypothesis in {hyp}: "
            f"{_named(missing)}; add them, pass --missing-hyp empty to score them as "
            "recordings where nothing was detected, or --subset to score only the others"
        )
    return [Pair(stem, path, hyps.get(stem)) for stem, path in refs.items()], []
