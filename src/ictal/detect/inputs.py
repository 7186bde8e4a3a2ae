"""What ``ictal detect`` reads: EDF files named directly, found under directories (any
layout, recursively), listed in list files (one path or URL per line), local or behind any
fsspec URL. Each becomes a source with a stable key (its absolute path, or its URL with any
credentials masked) and a plain output name. Only regular files are read: a FIFO, socket or
device (named ``*.edf`` or given as a list) is an unusable input, never opened."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ictal.io.paths import is_inside, literal_entry
from ictal.io.redact import note_url, redact
from ictal.io.storage import describe, is_local, open_url
from ictal.io.untrusted import MAX_TEXT_BYTES, UnreadableInput, read_text, regular_file

EDF = ".edf"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


@dataclass(frozen=True)
class Source:
    """One EDF file to detect on."""

    url: str  # how it is read (a local absolute path or a URL)
    key: str  # the recording in the results (credentials masked)
    size: int
    mtime: str


@dataclass
class Found:
    """Sources, and inputs that could not be used (key, reason)."""

    sources: list[Source]
    problems: list[tuple[str, str]]


def unusable(path: str) -> str | None:
    """Why a local input cannot be read as a file (not a regular file), else None."""
    try:
        regular_file(path, "input")
    except FileNotFoundError:
        return "does not exist"
    except UnreadableInput as exc:
        return str(exc).removeprefix(f"input {path} ") + "; detect reads regular files only"
    return None


def _mtime(info: dict[str, Any]) -> str:
    for name in ("mtime", "LastModified", "last_modified", "updated", "created"):
        if info.get(name) is not None:
            return str(info[name])
    return ""


def _join(fs: Any, path: str) -> str:
    """The readable location of ``path`` on ``fs``: a local absolute path, or a URL."""
    if is_local(fs):
        return os.path.abspath(path)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return f"{protocol}://{path.lstrip('/')}"


def _one(location: str, found: Found, *, from_list: bool) -> None:
    note_url(location)  # its credentials are masked wherever a message quotes them

    def problem(reason: str) -> None:
        found.problems.append((redact(location), redact(reason)))

    try:
        fs, path = open_url(location, "INPUT")
        info = fs.info(path)
    except FileNotFoundError:
        problem("does not exist")
        return
    except Exception as exc:  # storage errors: said, and the other inputs go on
        problem(f"cannot be read: {describe(exc)}")
        return
    local = is_local(fs)
    if info.get("type") == "directory":
        try:
            listing = fs.find(path, detail=True)
        except Exception as exc:
            problem(f"cannot be listed: {describe(exc)}")
            return
        for name, item in sorted(listing.items()):
            if item.get("type") == "directory" or not name.lower().endswith(EDF):
                continue
            url = _join(fs, name)
            why = unusable(url) if local else None
            if why is None and local and not is_inside(url, _join(fs, path)):
                why = (
                    "is a symbolic link out of its input directory; detect reads no file outside it"
                )
            if why is not None or (not local and item.get("type", "file") != "file"):
                found.problems.append((redact(url), why or "is not a regular file"))
                continue
            found.sources.append(Source(url, redact(url), int(item.get("size") or 0), _mtime(item)))
        return
    why = unusable(_join(fs, path)) if local else None
    if why is not None or info.get("type", "file") != "file":
        problem(why or "is not a regular file")
        return
    if path.lower().endswith(EDF):
        url = _join(fs, path)
        key = redact(url)
        found.sources.append(Source(url, key, int(info.get("size") or 0), _mtime(info)))
        return
    if from_list:
        problem("is not an EDF file or a directory")
        return
    try:  # any other file is a list: one path or URL per line ('#' starts a comment)
        text = _list_text(fs, path, int(info.get("size") or 0))
    except (UnicodeDecodeError, OSError, UnreadableInput) as exc:
        problem(f"is neither EDF nor a text list ({exc})")
        return
    base = os.path.dirname(os.path.abspath(path)) if is_local(fs) else None
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        literal = literal_entry(entry)
        if literal is not None:
            found.problems.append((redact(entry), literal))
            continue
        if base is not None and "://" not in entry and not os.path.isabs(entry):
            entry = os.path.join(base, entry)  # relative to the list file
        _one(entry, found, from_list=True)


def _list_text(fs: Any, path: str, size: int) -> str:
    """A list file's text: a regular file of at most ``MAX_TEXT_BYTES``."""
    if is_local(fs):
        return read_text(path, "list file")
    if size > MAX_TEXT_BYTES:
        raise UnreadableInput(f"list file of {size >> 20} MiB is more than Ictal reads")
    return fs.cat_file(path).decode("utf-8")


def find_inputs(inputs: list[str]) -> Found:
    """Every EDF of the inputs, each once (by key), in a stable order; unusable inputs are
    listed with the reason, never stopping the rest."""
    found = Found([], [])
    for location in inputs:
        _one(location, found, from_list=False)
    unique: dict[str, Source] = {}
    for s in found.sources:
        unique.setdefault(s.key, s)
    found.sources = sorted(unique.values(), key=lambda s: s.key)
    return found


def plain_name(key: str) -> str:
    """A file name from a recording's stem: only plain characters. A BIDS recording
    (`sub-01_..._run-01_eeg.edf`) is named without its `_eeg` suffix, as its events table
    is (`sub-01_..._run-01_events.tsv`), so scorers pair the two."""
    stem = PurePosixPath(key.split("?", 1)[0]).name
    stem = stem[: -len(EDF)] if stem.lower().endswith(EDF) else stem
    stem = stem.removesuffix("_eeg") if stem.startswith("sub-") else stem
    name = _UNSAFE.sub("_", stem).lstrip("._-+") or "recording"
    return name[:120]


def assign_names(keys: list[str], taken: dict[str, str] | None = None) -> dict[str, str]:
    """key -> output name: the plain stem when no other recording has it (so NEDC can pair
    hypotheses with references by name), else the stem and a short hash of the key."""
    names = dict(taken or {})
    used: dict[str, str] = {name: key for key, name in names.items()}
    stems: dict[str, int] = {}
    for key in keys:
        stems[plain_name(key)] = stems.get(plain_name(key), 0) + 1
    for key in keys:
        if key in names:
            continue
        name = plain_name(key)
        if stems[name] > 1 or (name in used and used[name] != key):
            name = f"{name}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        names[key] = name
        used[name] = key
    return names
