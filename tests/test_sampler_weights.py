"""Corpus weights in the balanced sampler: unweighted draw unchanged, exact per-corpus shares
within each class, weight 0 excluded, determinism, resume, rank split, and the config errors
of ``sampler.corpus_weights`` in ``make_sampler``."""

import json
from typing import Any

import numpy as np
import pytest

from ictal.config import Config, ConfigError
from ictal.data.sampler import BalancedSampler
from ictal.data.windows import BACKGROUND, CLASS_NAMES, FULL, PARTIAL, WindowIndex
from ictal.train.feed import describe_corpora, make_sampler, window_index

CLS = {"background": BACKGROUND, "partial": PARTIAL, "full": FULL}


def mixture(*corpora: dict[str, int]) -> tuple[WindowIndex, np.ndarray]:
    """A shuffled window index of several corpora (class -> window count each) and the
    per-window corpus ids."""
    cls_parts, ids = [], []
    for c, sizes in enumerate(corpora):
        for name, n in sizes.items():
            cls_parts.append(np.full(n, CLS[name], np.uint8))
            ids.append(np.full(n, c, np.int64))
    order = np.random.default_rng(0).permutation(sum(len(p) for p in ids))
    cls, corpus = np.concatenate(cls_parts)[order], np.concatenate(ids)[order]
    frac = np.select([cls == FULL, cls == PARTIAL], [1.0, 0.25], 0.0).astype(np.float32)
    n = len(cls)
    index = WindowIndex(
        rec=corpus.astype(np.int32),
        start=np.arange(n, dtype=np.int64),
        seizure_fraction=frac,
        cls=cls,
        window=10,
        stride=10,
        n_short=0,
    )
    return index, corpus


BIG = {"partial": 2000, "full": 1000, "background": 50_000}
SMALL = {"partial": 600, "full": 300, "background": 5000}


def per_corpus(s: BalancedSampler, epoch: int = 0) -> dict[str, list[int]]:
    """Drawn windows per class name, one count per corpus."""
    counts = s.corpus_class_counts(epoch)
    return {name: counts[:, k].tolist() for k, name in enumerate(CLASS_NAMES)}


def reference_draw(index: WindowIndex, seed: int, epoch: int, per_class: dict) -> np.ndarray:
    """The draw as the sampler made it before corpus weights existed (pinned stream)."""
    rng = np.random.default_rng([seed, epoch])
    pools = [np.flatnonzero(index.cls == c) for c in (PARTIAL, FULL, BACKGROUND)]
    chosen = [
        rng.choice(pool, size=per_class[name], replace=False)
        for name, pool in zip(("partial", "full", "background"), pools, strict=True)
    ]
    return rng.permutation(np.concatenate(chosen).astype(np.int64))


def test_without_weights_the_draw_is_byte_identical():
    index, corpus = mixture(BIG, SMALL)
    plain = BalancedSampler(index, seed=5)
    explicit = BalancedSampler(index, seed=5, corpus=None, corpus_weights=None)
    for epoch in (0, 3):
        draw = plain.epoch_indices(epoch)
        np.testing.assert_array_equal(draw, explicit.epoch_indices(epoch))
        np.testing.assert_array_equal(draw, reference_draw(index, 5, epoch, plain.per_class))
    with pytest.raises(ValueError, match="give both or neither"):
        BalancedSampler(index, seed=5, corpus=corpus)


def test_shares_follow_weights_within_each_class():
    index, corpus = mixture(BIG, SMALL)  # base: 2600 partial windows
    s = BalancedSampler(
        index, partial=0.3, full=0.3, background=2.5, seed=1, corpus=corpus,
        corpus_weights=[1.0, 2.0],
    )  # fmt: skip
    assert s.per_class == {"partial": 780, "full": 780, "background": 6500}
    got = per_corpus(s)
    # Uncapped classes: small gets 2/3 although it has a tenth of the windows.
    assert got["partial"] == [260, 520]
    assert abs(got["background"][1] - 6500 * 2 / 3) <= 1 and sum(got["background"]) == 6500
    # Full: small's share (520) exceeds its 300 windows: all of them, big gives the rest.
    assert got["full"] == [480, 300]
    # Within a corpus the draw is uniform and redrawn each epoch.
    small_bg = set(np.flatnonzero((corpus == 1) & (index.cls == BACKGROUND)).tolist())
    drawn = [set(s.epoch_indices(e).tolist()) & small_bg for e in range(2)]
    assert drawn[0] != drawn[1]
    assert len(drawn[0] | drawn[1]) > len(drawn[0])


def test_shares_without_weights_follow_corpus_size():
    index, corpus = mixture(BIG, SMALL)
    got = per_corpus(
        BalancedSampler(index, seed=1, corpus=corpus, corpus_weights=[1.0, 1.0]), epoch=0
    )
    assert got["background"] == [3250, 3250]  # equal weights: equal shares, not sizes


def test_weight_zero_excludes_and_counts_reflect_what_exists():
    index, corpus = mixture(
        {"partial": 100, "full": 50, "background": 200},
        {"partial": 100, "full": 50, "background": 5000},
    )
    s = BalancedSampler(index, seed=2, corpus=corpus, corpus_weights=[1.0, 0.0])
    # base = 200 partial windows; only corpus 0 may be drawn, so each class is capped.
    assert s.per_class == {"partial": 100, "full": 50, "background": 200}
    assert s.class_counts(0) == {"background": 200, "partial": 100, "full": 50}
    for epoch in range(3):
        assert not (corpus[s.epoch_indices(epoch)] == 1).any()
    assert len(s) == 350


def test_weighted_draw_is_deterministic_per_seed_and_epoch():
    index, corpus = mixture(BIG, SMALL)
    a, b = (
        BalancedSampler(index, seed=7, corpus=corpus, corpus_weights=[1.0, 3.0]) for _ in range(2)
    )
    np.testing.assert_array_equal(a.epoch_indices(4), b.epoch_indices(4))
    assert not np.array_equal(a.epoch_indices(0), a.epoch_indices(1))
    other = BalancedSampler(index, seed=8, corpus=corpus, corpus_weights=[1.0, 3.0])
    assert not np.array_equal(a.epoch_indices(0), other.epoch_indices(0))
    draw = a.epoch_indices(2)
    assert len(draw) == len(np.unique(draw)) == len(a)


def test_weighted_resume_mid_epoch_yields_exactly_the_rest():
    index, corpus = mixture(BIG, SMALL)
    kwargs: dict[str, Any] = {
        "seed": 11, "rank": 1, "world_size": 2, "corpus": corpus, "corpus_weights": [2.0, 1.0]
    }  # fmt: skip
    s = BalancedSampler(index, **kwargs)
    s.set_epoch(3)
    it = iter(s)
    head = [next(it) for _ in range(100)]
    state = json.loads(json.dumps(s.state_dict()))
    resumed = BalancedSampler(index, **kwargs)
    resumed.load_state_dict(state)
    resumed.set_epoch(3)
    assert head + list(resumed) == s.rank_indices(3).tolist()


def test_weighted_ranks_are_disjoint_and_complete():
    index, corpus = mixture(BIG, SMALL)
    ranks = [
        BalancedSampler(index, seed=3, rank=r, world_size=3, corpus=corpus,
                        corpus_weights=[1.0, 5.0])
        for r in range(3)
    ]  # fmt: skip
    for s in ranks:
        s.set_epoch(2)
    parts = [list(s) for s in ranks]
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) == len(ranks[0])
    merged = np.concatenate(parts)
    assert len(np.unique(merged)) == len(merged) == ranks[0].global_length
    np.testing.assert_array_equal(np.sort(merged), np.sort(ranks[0].epoch_indices(2)))


# make_sampler: per-window corpus ids from the recordings table, and the config errors.


def rows(corpus: str | None, n: int) -> list[dict[str, Any]]:
    """Fake train rows: recordings of 600 s at 1 Hz with one 100 s seizure each."""
    extra = {} if corpus is None else {"corpus": corpus}
    return [{"n_samples": 600, "seizures": [[200, 300]], **extra} for _ in range(n)]


def config(weights: dict[str, float]) -> Config:
    return Config.model_validate(
        {"sampler": {"corpus_weights": weights}, "windows": {"length_s": 20, "stride_s": 5}}
    )


def sampler_of(weights: dict[str, float], recs: list[dict[str, Any]]) -> BalancedSampler:
    cfg = config(weights)
    return make_sampler(cfg, window_index(cfg, recs, 1.0, 5), recs, 1.0)


def test_unknown_corpus_name_is_a_config_error_naming_what_exists():
    recs = rows("tusz", 4) + rows("chbmit", 2)
    with pytest.raises(ConfigError, match=r"sampler.corpus_weights.*'siena'.*chbmit, tusz"):
        sampler_of({"tusz": 1.0, "siena": 2.0}, recs)
    with pytest.raises(ConfigError, match=r"sampler.corpus_weights.*'tusz'.*single corpus"):
        sampler_of({"tusz": 1.0}, rows(None, 4))


def test_make_sampler_weighs_corpora_by_name():
    recs = rows("tusz", 8) + rows("chbmit", 2)
    s = sampler_of({"chbmit": 3.0}, recs)  # tusz unnamed: weight 1
    assert s.corpus_weights is not None and s.corpus_weights.tolist() == [3.0, 1.0]
    assert s.corpus is not None
    np.testing.assert_array_equal(s.corpus, np.where(s.index.rec < 8, 1, 0))
    got = s.corpus_class_counts(0)
    assert got[0, 0] > got[1, 0]  # background: chbmit (3x) outdraws the 4x larger tusz
    line = describe_corpora(s, ("chbmit", "tusz"))
    assert line.startswith("draw of epoch 1 per corpus: chbmit (weight 3)") and "tusz" in line
    assert describe_corpora(sampler_of({}, recs), ("chbmit", "tusz")) == ""

    none = sampler_of({"chbmit": 0.0}, recs)
    assert not (none.corpus[none.epoch_indices(0)] == 0).any()


def test_empty_weights_on_a_mixture_draw_as_before():
    mixed = rows("tusz", 4) + rows("chbmit", 2)
    a = sampler_of({}, mixed)
    b = sampler_of({}, rows(None, 6))
    assert a.corpus is None
    np.testing.assert_array_equal(a.epoch_indices(1), b.epoch_indices(1))
