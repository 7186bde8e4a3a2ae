"""Window dataset and loader: mmap slices, labels, pickling, worker processes, data-wait meter."""

import pickle
import time

import numpy as np
import pytest
import torch

from ictal.data.dataset import WindowDataset, model_input
from ictal.data.loader import DataWaitMeter, ThreadLoader, default_num_workers, make_loader
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
    loader = make_loader(ds, sampler, batch_size=4, num_workers=2, prefetch_factor=2,
                         backend="processes")  # fmt: skip
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


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_worker_batches_are_allocated_in_shared_memory(monkeypatch, dtype):
    from ictal.data import dataset as dataset_mod

    assert not dataset_mod._empty((2, 3, 4), dtype).is_shared()  # training process: plain
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())
    t = dataset_mod._empty((2, 3, 4), dtype)
    assert t.is_shared() and t.is_contiguous()
    assert t.shape == (2, 3, 4) and t.numpy().dtype == dtype
    t.numpy()[...] = 1.5
    assert float(t.sum()) == 1.5 * 24


@pytest.mark.parametrize("num_workers", [0, 1])
def test_float16_batches_travel_as_float16_and_reach_the_model_as_float32(cache, num_workers):
    paths, arrays, intervals, index = cache
    ds = WindowDataset(paths, index, intervals, WINDOW, np.float16)
    sampler = BalancedSampler(index, seed=0)
    loader = make_loader(ds, sampler, batch_size=4, num_workers=num_workers, prefetch_factor=2)
    ids = sampler.epoch_indices(0)[:4]
    xb, _ = next(iter(loader))
    assert xb.dtype == torch.float16 and xb.shape == (4, WINDOW, CHANNELS)
    x = model_input(xb, "cpu")
    assert x.dtype == torch.float32 and x.shape == (4, CHANNELS, WINDOW)
    for b, i in enumerate(ids):
        r, s = index.rec[i], index.start[i]
        want = arrays[r][s : s + WINDOW].astype(np.float16).astype(np.float32).T
        np.testing.assert_array_equal(x[b].numpy(), want)
    del loader


@pytest.mark.parametrize("threads", [1, 3])
def test_thread_loader_yields_the_sampler_order_for_every_epoch(cache, threads):
    paths, _, intervals, index = cache
    ds = WindowDataset(paths, index, intervals, WINDOW)
    sampler = BalancedSampler(index, seed=0)
    loader = make_loader(ds, sampler, batch_size=3, num_workers=threads, prefetch_factor=1)
    assert isinstance(loader, ThreadLoader) and loader.num_workers == threads
    assert len(loader) == -(-len(sampler) // 3)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        order = sampler.epoch_indices(epoch)
        xs, ys = zip(*loader, strict=True)
        assert len(xs) == len(loader)
        expected = [ds[int(i)] for i in order]
        torch.testing.assert_close(torch.cat(xs), torch.stack([e[0] for e in expected]))
        torch.testing.assert_close(torch.cat(ys), torch.stack([e[1] for e in expected]))
    loader.close()


def test_thread_loader_raises_a_read_error_in_the_caller(cache, tmp_path):
    paths, arrays, intervals, index = cache
    bad = tmp_path / "bad.npy"
    np.save(bad, arrays[0][:100])  # shorter than the index says
    ds = WindowDataset([str(bad), *paths[1:]], index, intervals, WINDOW)
    loader = make_loader(ds, range(len(ds)), batch_size=4, num_workers=2)
    with pytest.raises(IndexError, match="runs past the end"):
        list(loader)
    loader.close()


def test_thread_loader_times_out_with_the_setting_named():
    class Stuck:
        def __getitems__(self, ids):
            time.sleep(2)
            return ids

    loader = ThreadLoader(Stuck(), range(4), batch_size=2, num_threads=1, timeout_s=0.2)
    with pytest.raises(TimeoutError, match=r"loader\.timeout_s"):
        next(iter(loader))
    loader.close()


def test_processes_backend_gives_a_torch_dataloader(cache):
    paths, _, intervals, index = cache
    ds = WindowDataset(paths, index, intervals, WINDOW)
    loader = make_loader(ds, range(len(ds)), batch_size=4, num_workers=1, backend="processes")
    assert isinstance(loader, torch.utils.data.DataLoader) and loader.num_workers == 1
    with pytest.raises(ValueError, match="backend"):
        make_loader(ds, range(len(ds)), batch_size=4, backend="fibers")
    per_item = torch.utils.data.TensorDataset(torch.zeros(4, 2))  # no __getitems__
    with pytest.raises(TypeError, match="reads whole batches"):
        make_loader(per_item, range(4), batch_size=2, num_workers=1)  # no silent fallback
    inline = make_loader(per_item, range(4), batch_size=2, num_workers=0)  # any dataset inline
    assert len(list(inline)) == 2
