"""Balanced sampler: exact class counts, per-epoch determinism, rank split, mid-epoch resume."""

import json

import numpy as np
import pytest

from ictal.data.sampler import BalancedSampler
from ictal.data.windows import BACKGROUND, FULL, PARTIAL, WindowIndex


def make_index(n_partial: int, n_full: int, n_background: int) -> WindowIndex:
    cls = np.array([PARTIAL] * n_partial + [FULL] * n_full + [BACKGROUND] * n_background)
    cls = np.random.default_rng(0).permutation(cls).astype(np.uint8)
    frac = np.select([cls == FULL, cls == PARTIAL], [1.0, 0.25], 0.0).astype(np.float32)
    n = len(cls)
    return WindowIndex(
        rec=np.zeros(n, np.int32),
        start=np.arange(n, dtype=np.int64),
        seizure_fraction=frac,
        cls=cls,
        window=10,
        stride=10,
        n_short=0,
    )


def test_class_counts_follow_ratios_exactly():
    s = BalancedSampler(make_index(40, 100, 1000), seed=1)
    draw = s.epoch_indices(0)
    assert s.class_counts(0) == {"background": 100, "partial": 40, "full": 12}
    assert len(draw) == len(np.unique(draw)) == 152 == len(s)
    # Positive fraction from the index alone: (40 * 0.25 + 12 * 1.0) / 152.
    assert s.expected_positive_fraction(0) == pytest.approx((40 * 0.25 + 12) / 152)


def test_counts_are_capped_by_availability_and_ratios_apply():
    s = BalancedSampler(make_index(40, 5, 50), partial=0.5, full=0.3, background=2.5, seed=0)
    assert s.class_counts(0) == {"background": 50, "partial": 20, "full": 5}


def test_base_without_partial_windows_is_the_seizure_count():
    s = BalancedSampler(make_index(0, 50, 1000), seed=0)
    assert s.class_counts(0) == {"background": 125, "partial": 0, "full": 15}


def test_no_seizure_windows_is_refused():
    with pytest.raises(ValueError, match="no seizure windows"):
        BalancedSampler(make_index(0, 0, 100), seed=0)


def test_new_draw_each_epoch_same_for_same_seed_and_epoch():
    index = make_index(40, 100, 1000)
    a, b = BalancedSampler(index, seed=7), BalancedSampler(index, seed=7)
    np.testing.assert_array_equal(a.epoch_indices(3), b.epoch_indices(3))
    assert not np.array_equal(a.epoch_indices(0), a.epoch_indices(1))
    assert set(a.epoch_indices(0)) != set(a.epoch_indices(1))  # background redrawn, not reshuffled
    assert not np.array_equal(a.epoch_indices(0), BalancedSampler(index, seed=8).epoch_indices(0))
    a.set_epoch(2)
    assert list(a) == a.epoch_indices(2).tolist()


def test_ranks_are_disjoint_complete_and_equal():
    index = make_index(40, 100, 1000)  # 152 windows: trimmed to 150 for 3 ranks
    ranks = [BalancedSampler(index, seed=3, rank=r, world_size=3) for r in range(3)]
    for s in ranks:
        s.set_epoch(5)
    parts = [list(s) for s in ranks]
    assert [len(p) for p in parts] == [50, 50, 50] == [len(s) for s in ranks]
    merged = np.concatenate(parts)
    assert len(np.unique(merged)) == 150
    np.testing.assert_array_equal(np.sort(merged), np.sort(ranks[0].epoch_indices(5)))


def test_resume_mid_epoch_yields_exactly_the_rest():
    index = make_index(40, 100, 1000)
    s = BalancedSampler(index, seed=11, rank=1, world_size=2)
    s.set_epoch(4)
    it = iter(s)
    head = [next(it) for _ in range(30)]
    state = json.loads(json.dumps(s.state_dict()))
    assert state == {"epoch": 4, "position": 30}

    resumed = BalancedSampler(index, seed=11, rank=1, world_size=2)
    resumed.load_state_dict(state)
    resumed.set_epoch(4)  # the loop re-announces the same epoch: position is kept
    assert head + list(resumed) == s.rank_indices(4).tolist()
    resumed.set_epoch(5)
    assert resumed.position == 0 and len(list(resumed)) == len(resumed)


def test_state_dict_records_consumed_samples_not_read_ahead():
    s = BalancedSampler(make_index(40, 100, 1000), seed=0)
    it = iter(s)
    for _ in range(20):
        next(it)
    assert s.state_dict(consumed=16) == {"epoch": 0, "position": 16}
    with pytest.raises(ValueError, match="outside the epoch"):
        s.state_dict(consumed=10_000)
