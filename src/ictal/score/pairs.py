"""One pair of annotation files read and scored by every scorer asked: what ``ictal score``
does per recording, in a module light enough for a worker process to import at once."""

from __future__ import annotations

from ictal.events.counts import EventCounts
from ictal.events.formats import FormatError, NoRows, ScoredFile, read_file
from ictal.events.nedc import Timeline, TimelineError, build_timeline
from ictal.events.scorers import NEDC_NAMES, SZCORE_NAMES, TIMELINE_SCORERS, score_szcore_files
from ictal.events.szcore import SzcoreError, SzcoreParams
from ictal.score.inputs import Pair

HEADER_ONLY = "header-only hypothesis TSV: scored as an empty hypothesis, as SzCORE does"


def _empty_like(ref: Timeline) -> Timeline:
    """The hypothesis of a recording where nothing was detected (``--missing-hyp empty``)."""
    return build_timeline([], ref.duration_s)


def read_pair(pair: Pair) -> tuple[ScoredFile, ScoredFile | None, Timeline, tuple[str, ...]]:
    """Both files of a pair; no hypothesis, or a header-only TSV one, is an empty one."""
    ref = read_file(pair.ref)
    if pair.hyp is None:
        return ref, None, _empty_like(ref.timeline), ref.notes
    try:
        hyp = read_file(pair.hyp)
    except NoRows:
        return ref, None, _empty_like(ref.timeline), (*ref.notes, HEADER_ONLY)
    return ref, hyp, hyp.timeline, ref.notes + hyp.notes


def score_pair(
    pair: Pair, scorers: list[str], params: SzcoreParams
) -> tuple[dict[str, EventCounts], tuple[str, ...]]:
    """One pair's counts by every scorer asked, and its notes."""
    ref, hyp, hyp_tl, notes = read_pair(pair)
    counts = {n: TIMELINE_SCORERS[n](ref.timeline, hyp_tl) for n in scorers if n in NEDC_NAMES}
    if any(n in SZCORE_NAMES for n in scorers):
        both = score_szcore_files(ref, hyp, params)
        counts |= {n: both[n] for n in scorers if n in SZCORE_NAMES}
    return counts, notes


Outcome = tuple[dict[str, EventCounts], tuple[str, ...]] | str  # counts and notes, or a problem


def outcome(pair: Pair, scorers: list[str], params: SzcoreParams) -> Outcome:
    """One pair's counts and notes, or the line saying why it cannot be scored."""
    try:
        return score_pair(pair, scorers, params)
    except (FormatError, TimelineError, SzcoreError) as exc:
        where = "" if isinstance(exc, FormatError) else f"{pair.ref} vs {pair.hyp}: "
        return f"{where}{exc}"


def score_chunk(task: tuple[int, list[Pair], list[str], SzcoreParams]) -> tuple[int, list[Outcome]]:
    """A worker's task: the outcomes of one chunk of pairs, with the chunk's number."""
    k, pairs, scorers, params = task
    return k, [outcome(pair, scorers, params) for pair in pairs]
