"""bench/difficulty.py's pure parts: features, logistic fit, window means, targets (no CLI)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench():
    """The bench module, imported as its script runs (bench/ first on sys.path)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("difficulty")
    finally:
        sys.path.remove(str(BENCH))


def test_features_see_the_band_of_a_rhythm(bench):
    fs, n = 256.0, 2560
    t = np.arange(n) / fs
    rng = np.random.default_rng(0)
    noise = 0.05 * rng.standard_normal((2, n, 19))
    x = noise.copy()
    x[1] += 3 * np.sin(2 * np.pi * 6.0 * t)[:, None]  # theta on every channel
    f = bench.window_features(x, fs)
    assert f.shape == (2, 18)
    means = f[:, :6]  # channel means: line length, then the five bands
    assert np.argmax(means[1, 1:] - means[0, 1:]) == 1  # 4-8 Hz grew most
    assert means[1, 0] > means[0, 0]  # and the line length grew


def test_logistic_separates_and_scores_with_ictal_auroc(bench):
    rng = np.random.default_rng(1)
    y = (rng.random(600) < 0.05).astype(np.float64)  # imbalanced, as seizures are
    x = rng.standard_normal((600, 3)) + 3.0 * y[:, None] * np.array([1.0, 0.0, 0.0])
    theta = bench.fit_logistic(x, y)
    assert theta.shape == (4,) and theta[0] > 1.0 and abs(theta[1]) < 0.5
    p = 1 / (1 + np.exp(-(x @ theta[:-1] + theta[-1])))
    assert bench.window_auroc(y, p) > 0.95
    assert bench.window_auroc(y, 1 - p) < 0.05
    with pytest.raises(ValueError):
        bench.fit_logistic(x, np.zeros(600))


def test_window_means_and_labels_line_up(bench):
    fs = 256.0
    rows = [{"n_samples": 25 * 256, "seizures": [[2560 + 1000, 5120 + 100]]}]
    index = bench.window_index(rows, fs)
    assert len(index) == 2 and index.window == 2560  # the 5 s tail makes no window
    assert list(index.seizure_fraction > bench.SEIZURE_FRACTION) == [False, True]
    probs = np.repeat([0.1, 0.9, 0.5], [10, 10, 5])  # 1 Hz steps, stride 256
    assert np.allclose(bench.window_means(probs, 256, 2560, 2), [0.1, 0.9])


def test_targets_only_for_what_ran(bench):
    easy = bench.Result("easy", simple_window_auroc=0.99, model_window_auroc=0.99)
    hard = bench.Result("hard", simple_window_auroc=0.80, model_window_auroc=0.83)
    checks = {name: met for name, _, _, met in bench.targets([easy, hard])}
    assert checks["easy: simple window AUROC"] is True
    assert checks["hard: simple window AUROC"] is True
    assert checks["hard: model vs simple window AUROC"] is False  # 0.83 < 0.80 + 0.05
    assert checks["ordering: simple window AUROC"] is True
    assert not any(name.startswith("realistic") for name in checks)
    alone = bench.targets([bench.Result("realistic", simple_window_auroc=0.9)])
    assert [(name, met) for name, _, _, met in alone] == [
        ("realistic: model OVLP sens @10 FA/24h", None)
    ]
