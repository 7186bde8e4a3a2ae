"""Window dataset and loader: mmap slices, labels, pickling, worker processes, data-wait meter."""

import pickle
import time

import numpy as np
import pytest
import torch

from ictal.data.dataset import WindowDataset, model_input
from ictal.data.loader import DataWaitMeter, default_num_workers, make_loader
from ictal.data.sampler import BalancedSampler
from ictal.data.windows import build_window_index, label_mask

WINDOW, STRIDE, CHANNELS = 64, 32, 3


@pytest.fixture
def cache(tmp_path):
    """Three time-major recordings (float32, float16, float32) with seizure intervals."""
    rng = np.random.default_rng(0)
    lengths = [400, 300, 50]
    dtypes = [np.float32, np.float16, np.float32]
    intervals = [
        np.array([[100, 180]], np.int64),
        np.array([[0, 40], [250, 300]], np.int64),
        np.zeros((0, 2), np.int64),
    ]
    paths, arrays = [], []
    for k, (n, dt) in enumerate(zip(lengths, dtypes, strict=True)):
        a = rng.standard_normal((n, CHANNELS)).astype(dt)
        path = tmp_path / f"rec{k}.npy"
        np.save(path, a)
        paths.append(str(path))
        arrays.append(a)
    index = build_window_index(np.array(lengths), intervals, WINDOW, STRIDE)
    return paths, arrays, intervals, index


def test_items_are_time_major_slices_with_labels(cache):
    paths, arrays, intervals, index = cache
    ds = WindowDataset(paths, index, intervals, WINDOW)
    assert len(ds) == len(index) and index.n_short == 1
    for i in range(len(ds)):
        x, y = ds[i]
        r, s = index.rec[i], index.start[i]
        assert x.dtype == torch.float32 and x.shape == (WINDOW, CHANNELS) and x.is_contiguous()
        np.testing.assert_array_equal(x.numpy(), arrays[r][s : s + WINDOW].astype(np.float32))
        np.testing.assert_array_equal(y.numpy(), label_mask(intervals[r], s, WINDOW))
        assert y.mean().item() == pytest.approx(index.seizure_fraction[i])
    x, y = ds[int(np.flatnonzero((index.rec == 0) & (index.start == 96))[0])]
    np.testing.assert_array_equal(y.numpy()[:4], [0, 0, 0, 0])
    np.testing.assert_array_equal(y.numpy()[4:], np.ones(60))


def test_handles_are_per_process_and_not_pickled(cache):
    paths, _, intervals, index = cache
    ds = WindowDataset(paths, index, intervals, WINDOW)
    ds[0]
    assert list(ds._handles) == [paths[0]]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._handles == {}
    np.testing.assert_array_equal(clone[0][0].numpy(), ds[0][0].numpy())
    ds._pid = -1  # as seen from a forked child: inherited maps are dropped, then reopened
    ds[len(ds) - 1]
    assert list(ds._handles) == [paths[1]]


def test_window_past_the_array_end_is_an_error(cache, tmp_path):
    paths, arrays, intervals, index = cache
    np.save(tmp_path / "rec0.npy", arrays[0][:100])  # cache disagrees with the index
    with pytest.raises(IndexError, match="runs past the end"):
        WindowDataset(paths, index, intervals, WINDOW)[int(np.flatnonzero(index.rec == 0)[-1])]


def test_loader_with_worker_processes_yields_the_sampler_order(cache):
    paths, _, intervals, index = cache
    ds = WindowDataset(paths, index, intervals, WINDOW)
    sampler = BalancedSampler(index, seed=0)
    loader = make_loader(ds, sampler, batch_size=4, num_workers=2, prefetch_factor=2)
    assert loader.num_workers == 2 and loader.persistent_workers
    order = sampler.epoch_indices(0)
    xs, ys = zip(*loader, strict=True)
    expected = [ds[int(i)] for i in order]
    torch.testing.assert_close(torch.cat(xs), torch.stack([e[0] for e in expected]))
    torch.testing.assert_close(torch.cat(ys), torch.stack([e[1] for e in expected]))
    del loader


def test_loader_without_workers_drops_worker_options(cache):
    paths, _, intervals, index = cache
    ds = WindowDataset(paths, index, intervals, WINDOW)
    loader = make_loader(ds, BalancedSampler(index, seed=0), batch_size=2, num_workers=0)
    assert loader.num_workers == 0 and loader.timeout == 0 and not loader.persistent_workers
    xb, yb = next(iter(loader))
    assert xb.shape == (2, WINDOW, CHANNELS) and yb.shape == (2, WINDOW)
    assert model_input(xb, "cpu").shape == (2, CHANNELS, WINDOW)
    assert 1 <= default_num_workers() <= 8


def test_data_wait_meter_separates_waiting_from_work():
    def slow_batches(n):
        for k in range(n):
            time.sleep(0.03)
            yield k

    meter = DataWaitMeter()
    assert list(meter.wrap(slow_batches(4))) == [0, 1, 2, 3]
    assert meter.batches == 4 and meter.fraction() > 0.8

    meter.reset()
    for _ in meter.wrap(range(4)):
        time.sleep(0.03)  # the training step is the slow part
    assert meter.fraction() < 0.2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_worker_batches_are_allocated_in_shared_memory(monkeypatch, dtype):
    from ictal.data import dataset as dataset_mod

    assert not dataset_mod._empty((2, 3, 4), dtype).is_shared()  # training process: plain
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())
    t = dataset_mod._empty((2, 3, 4), dtype)
    assert t.is_shared() and t.is_contiguous()
    assert t.shape == (2, 3, 4) and t.dtype == dtype
    t.numpy()[...] = 1.5
    assert float(t.sum()) == 1.5 * 24
