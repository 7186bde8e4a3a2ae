"""Post-processing turns probability traces into events exactly as the rules say."""

from __future__ import annotations

import numpy as np
import pytest

from ictal.events.postprocess import PostProcess, events_from_probs


def _trace(*segments: tuple[float, int]) -> np.ndarray:
    """A trace built from (value, number of samples) segments."""
    return np.concatenate([np.full(n, v) for v, n in segments])


def test_threshold_at_1hz() -> None:
    # samples 3..7 are >= 0.5 -> one event covering [3 s, 8 s)
    p = _trace((0.1, 3), (0.9, 5), (0.2, 4))
    assert events_from_probs(p, 1.0, PostProcess(min_duration_s=0.0)) == [(3.0, 8.0)]


def test_threshold_is_inclusive_and_fs_scales_times() -> None:
    # at 4 Hz, samples 2..5 (value exactly 0.5) -> [2/4, 6/4) = [0.5, 1.5)
    p = _trace((0.0, 2), (0.5, 4), (0.0, 2))
    assert events_from_probs(p, 4.0, PostProcess(min_duration_s=0.0)) == [(0.5, 1.5)]


def test_hysteresis_starts_high_continues_while_above_low() -> None:
    # values:   0.1 0.4 0.6 0.35 0.4 0.2 0.45 0.4 0.1 0.8 0.5
    # index:     0   1   2   3    4   5   6    7   8   9   10
    # high=0.55, low=0.3: start at 2 (first >= 0.55), continue while >= 0.3 up to 4 -> [2, 5).
    # 6..7 are >= low but never reach high -> no event. 9 starts, 10 (0.5 >= low) continues
    # to the end of the file -> [9, 11).
    p = np.array([0.1, 0.4, 0.6, 0.35, 0.4, 0.2, 0.45, 0.4, 0.1, 0.8, 0.5])
    pp = PostProcess(threshold=0.55, hysteresis_low=0.3, min_duration_s=0.0)
    assert events_from_probs(p, 1.0, pp) == [(2.0, 5.0), (9.0, 11.0)]
    # plain threshold 0.55 on the same trace: samples 2 and 9 only
    assert events_from_probs(p, 1.0, PostProcess(threshold=0.55, min_duration_s=0.0)) == [
        (2.0, 3.0),
        (9.0, 10.0),
    ]


def test_merge_gap_is_strictly_less_than() -> None:
    # events [0,2) [4,6) [7,9): gaps 2 s and 1 s
    p = _trace((1.0, 2), (0.0, 2), (1.0, 2), (0.0, 1), (1.0, 2), (0.0, 3))
    base = PostProcess(min_duration_s=0.0)
    assert events_from_probs(p, 1.0, base) == [(0.0, 2.0), (4.0, 6.0), (7.0, 9.0)]
    # merge_gap 2: the 1 s gap closes; the 2 s gap is not < 2, stays open
    pp = PostProcess(min_duration_s=0.0, merge_gap_s=2.0)
    assert events_from_probs(p, 1.0, pp) == [(0.0, 2.0), (4.0, 9.0)]
    # merge_gap 2.5: everything joins
    pp = PostProcess(min_duration_s=0.0, merge_gap_s=2.5)
    assert events_from_probs(p, 1.0, pp) == [(0.0, 9.0)]


def test_min_duration_applies_after_merging() -> None:
    # two 1 s events with a 1 s gap: each alone is < 2 s and would be dropped, merged they
    # span [2, 5) = 3 s and survive. The lone 1 s event at 8 is dropped.
    p = _trace((0.0, 2), (1.0, 1), (0.0, 1), (1.0, 1), (0.0, 3), (1.0, 1), (0.0, 2))
    assert events_from_probs(p, 1.0, PostProcess(min_duration_s=2.0)) == []
    pp = PostProcess(min_duration_s=2.0, merge_gap_s=1.5)
    assert events_from_probs(p, 1.0, pp) == [(2.0, 5.0)]


def test_min_duration_keeps_exactly_min() -> None:
    # a 2 s event with min_duration 2 s is kept (drop only if shorter)
    p = _trace((0.0, 1), (1.0, 2), (0.0, 1))
    assert events_from_probs(p, 1.0, PostProcess(min_duration_s=2.0)) == [(1.0, 3.0)]
    assert events_from_probs(p, 1.0, PostProcess(min_duration_s=2.5)) == []


def test_split_long_events_into_equal_pieces() -> None:
    # a 25 s event with max 10 s -> ceil(25/10) = 3 equal pieces of 25/3 s
    p = _trace((0.0, 5), (1.0, 25), (0.0, 5))
    out = events_from_probs(p, 1.0, PostProcess(min_duration_s=0.0, max_event_s=10.0))
    expected = [(5.0, 5 + 25 / 3), (5 + 25 / 3, 5 + 50 / 3), (5 + 50 / 3, 30.0)]
    assert np.allclose(out, expected)
    assert out[0][0] == 5.0 and out[-1][1] == 30.0  # outer edges exact
    # exactly 20 s with max 10 -> two pieces of 10 s, no sliver
    p = _trace(
        (1.0, 20),
    )
    out = events_from_probs(p, 1.0, PostProcess(min_duration_s=0.0, max_event_s=10.0))
    assert out == [(0.0, 10.0), (10.0, 20.0)]
    # 10 s with max 10 is not longer than max -> unchanged
    p = _trace(
        (1.0, 10),
    )
    out = events_from_probs(p, 1.0, PostProcess(min_duration_s=0.0, max_event_s=10.0))
    assert out == [(0.0, 10.0)]


def test_events_touching_file_edges_are_exact() -> None:
    # 10 samples at 2 Hz = 5 s of file; on at samples 0..2 and 7..9
    # -> [0, 3/2) and [7/2, 10/2) = [0, 1.5), [3.5, 5.0)
    p = _trace((0.9, 3), (0.1, 4), (0.9, 3))
    assert events_from_probs(p, 2.0, PostProcess(min_duration_s=0.0)) == [(0.0, 1.5), (3.5, 5.0)]
    # whole file on -> one event over the whole file
    assert events_from_probs(np.ones(7), 1.0, PostProcess()) == [(0.0, 7.0)]
    # hysteresis run at the very start and very end
    p = np.array([0.9, 0.4, 0.1, 0.1, 0.4, 0.9, 0.4])
    pp = PostProcess(threshold=0.8, hysteresis_low=0.3, min_duration_s=0.0)
    assert events_from_probs(p, 1.0, pp) == [(0.0, 2.0), (5.0, 7.0)]


def test_empty_and_all_off() -> None:
    assert events_from_probs(np.zeros(0), 1.0, PostProcess()) == []
    assert events_from_probs(np.zeros(50), 1.0, PostProcess()) == []


def test_invalid_settings_rejected() -> None:
    with pytest.raises(ValueError):
        PostProcess(threshold=0.5, hysteresis_low=0.6)
    with pytest.raises(ValueError):
        PostProcess(max_event_s=0.0)
    with pytest.raises(ValueError):
        events_from_probs(np.zeros((2, 2)), 1.0, PostProcess())
