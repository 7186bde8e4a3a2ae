"""Recording edges (issue 30): the ends are mirrored by half a window in the training windows
and at inference alike, so a recording's first and last seconds are seen with context on both
sides; ``windows.edges=none`` keeps the old zero-padded tail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import roots, run_ictal, tiny_training
from ictal.config_file import load_config
from ictal.data.dataset import WindowDataset
from ictal.data.windows import build_window_index, label_mask
from ictal.models.metadata import trained_edges
from ictal.stitch import edge_pad, pad_for, reflect, stitch, window_starts


def step_means(x: np.ndarray) -> np.ndarray:
    """A stand-in model that is exact: each output step is the mean of channel 0 over it."""
    b, _, w = x.shape
    return x[:, 0, :].reshape(b, w // 4, 4).mean(-1)


def test_reflect_mirrors_about_the_end_samples_as_often_as_needed() -> None:
    assert reflect(np.arange(-4, 9), 5).tolist() == [4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0]
    assert reflect(np.arange(-3, 3), 1).tolist() == [0] * 6
    assert reflect(np.arange(-7, 0), 6).tolist() == [3, 4, 5, 4, 3, 2, 1]


@pytest.mark.parametrize("n", [1, 7, 31, 32, 103, 250])
def test_mirrored_stitching_covers_every_step_with_the_recording_itself(n: int) -> None:
    """With the ends mirrored, every step (the last partial one too) is the recording's own
    mean: no zeros are stitched in, whatever the length; the old way pads the tail."""
    a = (np.arange(n, dtype=np.float32) + 1.0)[:, None].repeat(3, 1)
    pad = edge_pad(32, 4)
    starts = window_starts(n, 32, 4, 16, pad)
    assert starts[0] == -pad and starts[-1] + 32 >= -(-n // 4) * 4 + pad
    probs = stitch(step_means, a, 32, 4, 16, pad=pad)
    padded = np.pad(a[:, 0], (0, -n % 4), "reflect") if n > 1 else np.ones(4, np.float32)
    assert probs.shape == (-(-n // 4),)
    np.testing.assert_allclose(probs, padded.reshape(-1, 4).mean(-1), rtol=1e-6)
    old = stitch(step_means, a, 32, 4, 16)
    if n % 4:
        assert old[-1] < probs[-1]  # zeros stitched into the last step
    np.testing.assert_allclose(old[: n // 4], probs[: n // 4], rtol=1e-6)


def test_recording_edges_sit_mid_window_at_inference() -> None:
    """The first and last steps get the full tent weight of a window's middle: a model that
    only answers well in the middle of its window answers well at the edges too."""
    n, window, stride = 384, 64, 4  # the last window ends at n
    m = window // stride

    def middle_only(x: np.ndarray) -> np.ndarray:
        out = np.zeros((x.shape[0], m))
        out[:, m // 4 : 3 * m // 4] = 1.0  # right only in the middle half of the window
        return out

    a = np.zeros((n, 2), dtype=np.float32)
    mirrored = stitch(middle_only, a, window, stride, default_hop := window // 2, pad=window // 2)
    old = stitch(middle_only, a, window, stride, default_hop)
    assert mirrored[0] > 0.5 and mirrored[-1] > 0.5
    assert old[0] == 0.0 and old[-1] == 0.0


def test_training_windows_hang_half_a_window_over_both_ends() -> None:
    """Edge windows start at -pad and end at n + pad; their seizure fractions count the
    mirrored samples as what they mirror, exactly as the labels the dataset gives them."""
    rng = np.random.default_rng(3)
    n = np.array([100, 50, 40, 77])
    intervals = [np.array([[0, 10], [90, 100]]), np.zeros((0, 2)), np.array([[3, 38]]),
                 np.sort(rng.integers(0, 77, (2, 2)), axis=1)]  # fmt: skip
    index = build_window_index(n, intervals, window=40, stride=10, pad=20)
    for r, length in enumerate(n):
        starts = index.start[index.rec == r]
        assert starts[0] == -20 and starts[-1] + 40 <= length + 20 < starts[-1] + 50
    for i in range(len(index)):
        r, s = int(index.rec[i]), int(index.start[i])
        mask = label_mask(intervals[r], s, 40, int(n[r]))
        assert index.seizure_fraction[i] == pytest.approx(mask.mean()), (r, s)
    old = build_window_index(n, intervals, window=40, stride=10)
    assert old.start.min() == 0 and len(index) == len(old) + 4 * len(n)
    with pytest.raises(ValueError, match="half a window"):
        build_window_index(n, intervals, window=40, stride=10, pad=21)


def test_dataset_reads_mirrored_windows_from_the_cached_array(tmp_path: Path) -> None:
    arr = np.arange(60 * 3, dtype=np.float32).reshape(60, 3)
    np.save(tmp_path / "r.npy", arr)
    iv = [np.array([[0, 5]])]
    index = build_window_index(np.array([60]), iv, window=20, stride=10, pad=10)
    ds = WindowDataset([str(tmp_path / "r.npy")], index, iv, 20)
    x, y = ds.__getitems__(list(range(len(ds))))
    for b, s in enumerate(index.start):
        rows = reflect(np.arange(s, s + 20), 60)
        assert np.array_equal(x[b].numpy(), arr[rows])
        assert np.array_equal(y[b].numpy(), (rows < 5).astype(np.float32))
    x0, y0 = ds[0]
    assert torch.equal(x0, x[0]) and torch.equal(y0, y[0])


def test_the_checkpoint_decides_the_inference_edges() -> None:
    assert load_config(None, []).windows.edges == "reflect"
    assert trained_edges({"config": {"windows": {"edges": "reflect"}}}) == "reflect"
    assert trained_edges({"config": {}}) == "none"  # before the setting: trained without
    assert pad_for("reflect", 15360, 256) == 7680 and pad_for("none", 15360, 256) == 0
    with pytest.raises(ValueError, match="reflect or none"):
        trained_edges({"config": {"windows": {"edges": "wrap"}}})


@pytest.mark.slow
@pytest.mark.parametrize("edges", ["reflect", "none"])
def test_train_then_evaluate_mirror_the_ends_alike(tmp_path: Path, edges: str) -> None:
    """Through the CLI: the run trains on windows over the ends, and its evaluation mirrors
    them by half a window (none: neither), as scores.json says."""
    corpus, cache, runs = tmp_path / "corpus", tmp_path / "cache", tmp_path / "runs"
    assert run_ictal("synth", str(corpus), "--patients", "3", "--hours", "0.3").returncode == 0
    sets = roots(
        corpus,
        cache,
        runs,
        *tiny_training("train.epochs=1", "train.steps_per_epoch=3", f"windows.edges={edges}"),
    )
    assert run_ictal("build", *sets).returncode == 0
    train = run_ictal("train", *sets)
    assert train.returncode == 0, train.stderr[-2000:]
    (best,) = runs.glob("*/checkpoints/best.pt")
    meta = torch.load(best, map_location="cpu", weights_only=False)
    assert meta["config"]["windows"]["edges"] == edges
    ev = run_ictal("evaluate", str(best), "--split", "dev", *sets)
    assert ev.returncode == 0, ev.stderr[-2000:]
    scores = json.loads((best.parent.parent / "eval-best-dev" / "scores.json").read_text())
    inference = scores["inference"]
    pad = inference["edge_pad_samples"]
    assert pad == (inference["window_samples"] // 2 if edges == "reflect" else 0)
    assert ("mirrored" in inference["stitching"]) == (edges == "reflect")
