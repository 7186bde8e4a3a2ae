"""Window index: exact classes and fractions from intervals, short recordings, label masks."""

import time

import numpy as np
import pytest

from ictal.data.windows import (
    BACKGROUND,
    FULL,
    PARTIAL,
    build_window_index,
    index_recordings,
    label_mask,
    window_samples,
)


def brute_force(n_samples, intervals, window, stride):
    """Reference: per-sample masks, one window at a time."""
    rec, start, frac = [], [], []
    for r, n in enumerate(n_samples):
        mask = label_mask(intervals[r], 0, n)
        for s in range(0, n - window + 1, stride):
            rec.append(r)
            start.append(s)
            frac.append(mask[s : s + window].mean())
    return np.array(rec), np.array(start), np.array(frac, dtype=np.float32)


def iv(*pairs):
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def test_hand_built_classes_and_fractions():
    # rec 0: one seizure [20, 30); rec 1: too short; rec 2: overlapping intervals -> [0, 15).
    n = np.array([50, 5, 31])
    intervals = [iv((20, 30)), iv(), iv((0, 10), (5, 15))]
    idx = build_window_index(n, intervals, window=10, stride=5)

    assert idx.n_short == 1
    assert idx.rec.dtype == np.int32 and idx.start.dtype == np.int64
    assert idx.seizure_fraction.dtype == np.float32 and idx.cls.dtype == np.uint8
    np.testing.assert_array_equal(idx.rec, [0] * 9 + [2] * 5)
    np.testing.assert_array_equal(idx.start, [0, 5, 10, 15, 20, 25, 30, 35, 40, 0, 5, 10, 15, 20])
    np.testing.assert_array_equal(
        idx.seizure_fraction, [0, 0, 0, 0.5, 1, 0.5, 0, 0, 0, 1, 1, 0.5, 0, 0]
    )
    b, p, f = BACKGROUND, PARTIAL, FULL
    np.testing.assert_array_equal(idx.cls, [b, b, b, p, f, p, b, b, b, f, f, p, b, b])
    assert idx.counts() == {"background": 8, "partial": 3, "full": 3}
    assert len(idx) == 14


def test_windows_never_pass_the_end():
    n = np.array([103, 10, 9])
    idx = build_window_index(n, [iv(), iv(), iv()], window=10, stride=5)
    assert idx.start[idx.rec == 0].max() == 90  # 95 + 10 > 103
    np.testing.assert_array_equal(idx.start[idx.rec == 1], [0])  # exactly one window
    assert (idx.start + 10 <= n[idx.rec]).all()
    assert idx.n_short == 1


def test_full_threshold():
    idx = build_window_index(np.array([40]), [iv((0, 6))], window=10, stride=2, full_threshold=0.5)
    # fractions 0.6, 0.4, 0.2, 0 ...
    np.testing.assert_array_equal(idx.cls[:4], [FULL, PARTIAL, PARTIAL, BACKGROUND])


def test_matches_brute_force_on_random_corpus():
    rng = np.random.default_rng(1)
    n = rng.integers(50, 400, size=40)
    intervals = []
    for length in n:
        k = rng.integers(0, 4)
        a = np.sort(rng.integers(0, length, size=(k, 2)), axis=1)
        intervals.append(a)
    idx = build_window_index(n, intervals, window=37, stride=11)
    rec, start, frac = brute_force(n, intervals, 37, 11)
    np.testing.assert_array_equal(idx.rec, rec)
    np.testing.assert_array_equal(idx.start, start)
    np.testing.assert_allclose(idx.seizure_fraction, frac, atol=1e-6)
    np.testing.assert_array_equal(idx.cls == PARTIAL, (frac > 0) & (frac < 1))


@pytest.mark.parametrize("bad", [iv((5, 3)), iv((-1, 3)), iv((0, 51)), np.zeros((2, 3))])
def test_invalid_intervals_are_refused(bad):
    with pytest.raises(ValueError, match="recording 0"):
        build_window_index(np.array([50]), [bad], window=10, stride=5)


def test_label_mask_matches_intervals():
    intervals = iv((3, 7), (12, 20), (40, 50))
    m = label_mask(intervals, start=5, length=10)
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m, [1, 1, 0, 0, 0, 0, 0, 1, 1, 1])
    assert label_mask(iv(), 0, 4).sum() == 0
    assert label_mask(intervals, 100, 5).sum() == 0


def test_large_index_is_vectorised():
    rng = np.random.default_rng(0)
    n = rng.integers(60 * 256, 40 * 60 * 256, size=5000)
    intervals = [
        iv((s, s + 256 * 30)) if s > 0 else iv() for s in (n // 2) * (rng.random(5000) < 0.3)
    ]
    t = time.perf_counter()
    idx = build_window_index(n, intervals, window=60 * 256, stride=10 * 256)
    elapsed = time.perf_counter() - t
    assert len(idx) > 300_000
    assert idx.counts()["partial"] > 0
    assert elapsed < 10.0  # ~0.1 s expected; only a per-window Python loop would hit this


@pytest.mark.parametrize(
    ("length_s", "stride_s", "fs", "expected"),
    [
        (60.0, 10.0, 256.0, (15360, 2560)),
        (8.0, 4.0, 1.0, (8, 4)),
        (2.5, 0.3, 200.0, (500, 60)),
        (1.0, 1 / 3, 250.0, (250, 83)),  # nearest sample
        (0.01, 0.006, 250.0, (2, 2)),  # 2.5 and 1.5 round half to even, as round() does
    ],
)
def test_window_samples_rounds_to_the_nearest_sample(length_s, stride_s, fs, expected):
    assert window_samples(length_s, stride_s, fs) == expected
    assert window_samples(length_s, stride_s, fs) == (round(length_s * fs), round(stride_s * fs))


def test_index_recordings_windows_in_samples():
    recs = [{"n_samples": 1000, "seizures": [[100, 400]]}, {"n_samples": 30, "seizures": []}]
    idx = index_recordings(recs, fs=200.0, length_s=0.25, stride_s=0.1)
    assert (idx.window, idx.stride) == window_samples(0.25, 0.1, 200.0) == (50, 20)
    assert idx.n_short == 1 and idx.counts()["full"] > 0
