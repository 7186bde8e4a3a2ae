"""Signal preprocessing: montages, resampling, filters, normalisation and the pipeline."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from scipy.signal import butter, iirnotch, sosfiltfilt, sosfreqz, tf2sos

from ictal.config import SignalConfig
from ictal.corpus.channels import CANONICAL_19
from ictal.signal.filters import effective_band, notch_frequencies, squared_response
from ictal.signal.montage import apply_montage, montage_channels
from ictal.signal.normalise import FLAT_SCALE, clip, normalise
from ictal.signal.pipeline import preprocess
from ictal.signal.quantiles import BRACKETED, SAMPLE, _bracketed, row_quantiles
from ictal.signal.resample import resampled_length
from ictal.signal.spectral import filter_resample


def zero_phase_filter(x: np.ndarray, fs: float, **kw) -> np.ndarray:
    """The filters alone: a rate change from ``fs`` to ``fs``."""
    return filter_resample(x, fs, fs, **kw)


def _eeg(fs: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Channel-major (19, n) float32 noise in µV with per-channel offsets."""
    rng = np.random.default_rng(seed)
    n = round(fs * seconds)
    x = 20.0 * rng.standard_normal((19, n)) + rng.uniform(-500, 500, (19, 1))
    return x.astype(np.float32)


def _sine(freq: float, fs: float, seconds: float, amp: float = 1.0) -> np.ndarray:
    t = np.arange(round(fs * seconds)) / fs
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _db(ratio: float) -> float:
    return 20.0 * np.log10(ratio)


# --- montage -----------------------------------------------------------------------------


def test_average_reference_sums_to_zero() -> None:
    x = _eeg(256, 4)
    y, names = apply_montage(x, "average")
    assert names == CANONICAL_19 and y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y.sum(axis=0)).max() < 1e-2  # float32 over values of hundreds of µV
    np.testing.assert_allclose(y[3], x[3] - x.mean(axis=0), atol=1e-3)


def test_referential_is_as_recorded() -> None:
    x = _eeg(256, 1)
    y, names = apply_montage(x, "referential")
    assert names == CANONICAL_19
    np.testing.assert_array_equal(y, x)


def test_bipolar_double_banana() -> None:
    x = _eeg(256, 2)
    y, names = apply_montage(x, "bipolar")
    assert len(names) == 18 == y.shape[0]
    assert names[0] == "Fp1-F3" and names[8] == "Fz-Cz" and names[-1] == "T6-O2"
    np.testing.assert_array_equal(y[0], x[0] - x[1])  # Fp1 - F3, exact for ±1 weights
    i = CANONICAL_19.index
    np.testing.assert_array_equal(y[17], x[i("T6")] - x[i("O2")])


def test_tcp_without_ear_references() -> None:
    x = _eeg(256, 2)
    y, names = apply_montage(x, "tcp")
    assert len(names) == 20 == y.shape[0]
    assert names[0] == "FP1-F7" and "C3-CZ" in names
    assert not any("A1" in n or "A2" in n for n in names)
    i = CANONICAL_19.index
    k = names.index("C3-CZ")
    np.testing.assert_array_equal(y[k], x[i("C3")] - x[i("Cz")])
    assert montage_channels("tcp") == names


def test_montage_rejects_unknown_and_bad_shape() -> None:
    with pytest.raises(ValueError, match="unknown montage"):
        montage_channels("laplacian")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="19"):
        apply_montage(np.zeros((18, 10), np.float32), "average")


# --- resample ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"), [(512, 256), (400, 256), (250, 256), (256, 256), (200, 256)]
)
@pytest.mark.parametrize("n", [2, 3, 101, 1000, 12_345])
def test_resample_length_rule(source: int, target: int, n: int) -> None:
    expected = int(Fraction(n * target, source) + Fraction(1, 2))  # round, halves up
    assert resampled_length(n, source, target) == expected
    y = filter_resample(np.ones((2, n), np.float32), source, target)
    assert y.shape == (2, expected) and y.dtype == np.float32 and y.flags.c_contiguous
    assert np.isfinite(y).all()


@pytest.mark.parametrize("source", [512, 250, 400, 200])
def test_resample_keeps_sine(source: int) -> None:
    x = _sine(10.0, source, 20.0, amp=50.0)[None, :]
    y = filter_resample(x, source, 256)[0]
    ideal = _sine(10.0, 256, 20.0, amp=50.0)[: y.size]
    core = slice(1024, -1024)  # the 0.5 Hz high-pass rings at the edges (as filtfilt does)
    assert np.abs(y[core] - ideal[core]).max() < 0.01 * 50.0
    spectrum = np.abs(np.fft.rfft(y[core]))
    freqs = np.fft.rfftfreq(y[core].size, 1 / 256)
    assert freqs[np.argmax(spectrum)] == pytest.approx(10.0, abs=0.1)


def test_resample_removes_what_the_new_rate_cannot_hold() -> None:
    # 150 Hz at 512 Hz would alias to 106 Hz at 256 Hz: it must be gone, not folded
    x = (_sine(150.0, 512, 20.0, amp=100.0) + _sine(10.0, 512, 20.0, amp=10.0))[None, :]
    y = filter_resample(x, 512, 256)[0][1024:-1024]
    spectrum = np.abs(np.fft.rfft(y)) / (y.size / 2)  # amplitude per frequency
    freqs = np.fft.rfftfreq(y.size, 1 / 256)
    assert spectrum[np.argmin(np.abs(freqs - 106.0))] < 1e-3 * 100.0  # nothing folded in
    assert spectrum[np.argmin(np.abs(freqs - 10.0))] == pytest.approx(10.0, rel=0.01)


def test_spectral_filter_is_the_forward_backward_sos_filter() -> None:
    # the same |H|^2 as sosfiltfilt over the same design: equal away from the edges
    x = _eeg(256, 60, seed=3)
    x += 80.0 * _sine(0.2, 256, 60.0) + 30.0 * _sine(60.0, 256, 60.0)
    sos = _scipy_sos(256.0, (0.5, 120.0), 60.0, 4, False)
    ref = sosfiltfilt(sos, x.astype(np.float64), axis=1, padtype="odd", padlen=1536)
    y = zero_phase_filter(x, 256.0)
    core = slice(20 * 256, -20 * 256)
    assert np.abs(y[:, core] - ref[:, core]).max() < 1e-3 * np.std(ref[:, core])
    assert np.std(y - ref) < 0.01 * np.std(ref)  # edges too, within 1 %


def test_spectral_filter_is_deterministic_float32() -> None:
    x = _eeg(250, 30, seed=4)
    a, b = filter_resample(x, 250, 256), filter_resample(x.copy(), 250, 256)
    assert a.dtype == np.float32 and a.tobytes() == b.tobytes()


# --- filters -----------------------------------------------------------------------------


def test_filter_zero_phase_in_band() -> None:
    fs = 256.0
    x = _sine(10.0, fs, 30.0, amp=40.0)[None, :]
    y = zero_phase_filter(x, fs)
    assert y.dtype == np.float32 and y.shape == x.shape
    core = slice(int(2 * fs), int(-2 * fs))
    assert np.abs(y[0, core] - x[0, core]).max() < 0.02 * 40.0  # same phase, amplitude
    lags = np.arange(-5, 6)
    xc = [np.dot(np.roll(y[0, core], k), x[0, core]) for k in lags]
    assert lags[int(np.argmax(xc))] == 0


def test_filter_notch_attenuates_mains() -> None:
    fs = 256.0
    x = (_sine(60.0, fs, 30.0, amp=100.0) + _sine(10.0, fs, 30.0, amp=10.0))[None, :]
    y = zero_phase_filter(x, fs, notch=60.0)[0]
    core = slice(int(2 * fs), int(-2 * fs))
    residual = y[core] - _sine(10.0, fs, 30.0, amp=10.0)[core]
    assert _db(np.std(residual) / np.std(_sine(60.0, fs, 30.0, amp=100.0))) < -20.0


def test_filter_removes_dc_and_slow_drift() -> None:
    fs = 256.0
    drift = 300.0 + 80.0 * _sine(0.1, fs, 60.0)
    alpha = _sine(10.0, fs, 60.0, amp=10.0)
    y = zero_phase_filter((drift + alpha)[None, :], fs)[0]
    core = slice(int(5 * fs), int(-5 * fs))
    assert abs(float(y[core].mean())) < 0.5
    assert np.abs(y[core] - alpha[core]).max() < 0.3


def test_filter_high_edge_clamped_below_nyquist() -> None:
    assert effective_band(256, (0.5, 120.0)) == (0.5, 115.2)
    assert effective_band(250, (0.5, 120.0)) == (0.5, 112.5)
    assert effective_band(512, (0.5, 120.0)) == (0.5, 120.0)
    with pytest.raises(ValueError, match="empty"):
        effective_band(100, (50.0, 120.0))
    # A 120 Hz edge at 200 Hz (Nyquist 100) still designs and filters.
    y = zero_phase_filter(_eeg(200, 5), 200, bandpass=(0.5, 120.0))
    assert np.isfinite(y).all()


def test_notch_skipped_above_nyquist_and_harmonics() -> None:
    assert notch_frequencies(100, 60.0) == ()
    assert notch_frequencies(256, None) == ()
    assert notch_frequencies(256, 60.0) == (60.0,)
    assert notch_frequencies(512, 60.0, harmonics=True) == (60.0, 120.0, 180.0, 240.0)
    assert notch_frequencies(240, 60.0, harmonics=True) == (60.0,)  # 120 == Nyquist


def _scipy_sos(fs: float, band: tuple[float, float], notch: float | None, order: int,
               harmonics: bool) -> np.ndarray:  # fmt: skip
    """The same design made by scipy.signal: Butterworth band-pass (or low-pass) and notches."""
    low, high = effective_band(fs, band)
    if low > 0:
        sections = [butter(order, [low, high], btype="bandpass", fs=fs, output="sos")]
    else:
        sections = [butter(order, high, fs=fs, output="sos")]
    for f0 in notch_frequencies(fs, notch, harmonics):
        b, a = iirnotch(f0, 30.0, fs=fs)
        sections.append(tf2sos(b, a))
    return np.vstack(sections)


@pytest.mark.parametrize(
    ("fs", "band", "notch", "order", "harmonics"),
    [(256.0, (0.5, 120.0), 60.0, 4, False), (250.0, (1.0, 40.0), 50.0, 2, True),
     (512.0, (0.0, 70.0), None, 6, False), (200.0, (0.5, 120.0), 60.0, 4, False)],
)  # fmt: skip
def test_squared_response_is_scipys_design(fs, band, notch, order, harmonics) -> None:
    freqs = np.linspace(0.0, fs / 2, 20_001)
    _, h = sosfreqz(_scipy_sos(fs, band, notch, order, harmonics), worN=freqs, fs=fs)
    got = squared_response(freqs, fs, band, notch, 30.0, harmonics, order)
    assert np.abs(got - np.abs(h) ** 2).max() < 1e-9


# --- normalise ---------------------------------------------------------------------------


def test_robust_stats_ignore_outliers() -> None:
    rng = np.random.default_rng(1)
    x = (3.0 + 5.0 * rng.standard_normal((2, 100_000))).astype(np.float32)
    x[:, ::100] = 1e4  # 1 % artifacts
    y, stats = normalise(x, "robust")
    assert stats.center == pytest.approx([3.0, 3.0], abs=0.2)
    assert stats.scale == pytest.approx([5.0, 5.0], rel=0.05)
    assert all(isinstance(v, float) for v in stats.center + stats.scale)
    assert abs(float(np.median(y))) < 0.05 and y.dtype == np.float32
    _, z = normalise(x, "zscore")
    assert z.scale[0] > 100.0  # the contrast that motivates the robust default


def _hostile_rows(n: int, seed: int) -> np.ndarray:
    """Rows a selection can get wrong: random, heavy ties, all equal, signed zeros, sorted,
    reversed, spikes at both ends, and float32 extremes (no NaN: the pipeline refuses it)."""
    rng = np.random.default_rng(seed)
    rows = [
        rng.standard_normal(n),
        rng.integers(-3, 4, n).astype(np.float64),  # a handful of values, each tied many times
        np.full(n, 7.25),
        rng.choice([0.0, -0.0, 1.0, -1.0], n),
        np.sort(rng.standard_normal(n)),
        np.sort(rng.standard_normal(n))[::-1],
        np.where(rng.random(n) < 0.3, 1e6, rng.standard_normal(n)),
        rng.choice([np.finfo(np.float32).max, np.finfo(np.float32).min, 0.0], n),
        np.where(np.arange(n) % max(1, n // SAMPLE) == 0, 1e6, rng.standard_normal(n)),
    ]
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize(
    "n", [2, 3, 4, 5, 8, 9, 100, 101, 1_000, 1_001, BRACKETED - 1, BRACKETED, 65_537, 100_002]
)
@pytest.mark.parametrize("qs", [(0.25, 0.5, 0.75), (0.0, 1.0), (0.5,), (0.1, 0.33, 0.999)])
def test_row_quantiles_by_selection_equal_numpy(n: int, qs: tuple[float, ...]) -> None:
    x = _hostile_rows(n, seed=n)
    before = x.copy()
    got = row_quantiles(x, qs)
    np.testing.assert_array_equal(x, before)  # the caller's rows are left in order
    # np.quantile interpolates from the upper value above a fraction of 0.5: within an ulp
    np.testing.assert_allclose(got, np.quantile(x.astype(np.float64), qs, axis=1), rtol=1e-14)
    s = np.sort(x, axis=1).astype(np.float64)  # bit for bit as the sorted rows interpolate
    for j, q in enumerate(qs):
        pos = q * (n - 1)
        i = min(int(np.floor(pos)), n - 1)
        lo, hi = s[:, i], s[:, min(i + 1, n - 1)]
        np.testing.assert_array_equal(got[j], lo + (hi - lo) * (pos - i))
    assert not np.signbit(got[got == 0.0]).any()  # a zero quantile is +0.0 either way


def test_a_bracket_that_misses_falls_back_to_the_whole_row() -> None:
    """A row whose every subsampled value is an outlier places its brackets wrongly, as a
    non-finite row cannot be bracketed: both are partitioned whole, with the same result."""
    n = 4 * BRACKETED
    rng = np.random.default_rng(3)
    row = rng.standard_normal(n).astype(np.float32)
    row[:: n // SAMPLE] = 1e6
    ranks = [n // 4, n // 4 + 1, n // 2, n // 2 + 1]
    assert _bracketed(row, ranks) is None
    assert _bracketed(np.where(row > 3, np.inf, row).astype(np.float32), ranks) is None
    good = rng.standard_normal(n).astype(np.float32)
    assert _bracketed(good, ranks) is not None
    x = np.stack([row, good])
    want = np.quantile(np.sort(x, axis=1).astype(np.float64), (0.25, 0.5), axis=1)
    np.testing.assert_allclose(row_quantiles(x, (0.25, 0.5)), want, rtol=1e-14)


def test_flat_channel_scale_one_and_counted() -> None:
    x = _eeg(256, 4)
    x[5] = 42.0
    y, stats = normalise(x, "robust")
    assert stats.flat_channels == [5] and stats.scale[5] == 1.0
    np.testing.assert_array_equal(y[5], 0.0)
    assert min(stats.scale[:5] + stats.scale[6:]) > FLAT_SCALE


def test_normalise_inplace_and_copy() -> None:
    x = _eeg(256, 2)
    before = x.copy()
    normalise(x, "zscore")
    np.testing.assert_array_equal(x, before)
    y, _ = normalise(x, "zscore", inplace=True)
    assert y is x and abs(float(x.std(axis=1).mean()) - 1.0) < 1e-3


def test_clip_counts() -> None:
    x = np.array([[-12.0, -5.0, 0.0, 9.9, 10.0, 10.5, 30.0]], np.float32)
    assert clip(x, 10.0) == 3
    expected = np.array([[-10.0, -5.0, 0.0, 9.9, 10.0, 10.0, 10.0]], np.float32)
    np.testing.assert_array_equal(x, expected)
    assert clip(x, 10.0) == 0


# --- pipeline ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fs_in", "montage", "n_ch"),
    [(512, "average", 19), (400, "bipolar", 18), (250, "tcp", 20), (256, "referential", 19)],
)
def test_pipeline_shape_dtype_layout(fs_in: int, montage: str, n_ch: int) -> None:
    x = _eeg(fs_in, 10)
    before = x.copy()
    out = preprocess(x, fs_in, SignalConfig(montage=montage))
    assert out.data.shape == (resampled_length(x.shape[1], fs_in, 256), n_ch)
    assert out.data.dtype == np.float32 and out.data.flags.c_contiguous
    assert out.fs == 256.0 and len(out.channels) == n_ch
    assert len(out.stats["center"]) == len(out.stats["scale"]) == n_ch
    assert out.counts == {"clipped_values": 0, "flat_channels": 0}
    np.testing.assert_array_equal(x, before)  # input untouched


def test_pipeline_is_time_major() -> None:
    x = np.zeros((19, 2560), np.float32)
    x[3] = _sine(10.0, 256, 10.0, amp=30.0)  # P3 only
    x += np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    out = preprocess(x, 256, SignalConfig(montage="referential", normalisation="none"))
    power = (out.data**2).mean(axis=0)
    assert int(np.argmax(power)) == 3 and out.channels[3] == "P3"


def test_pipeline_float16_matches_float32() -> None:
    x = _eeg(400, 20)
    d32 = preprocess(x, 400, SignalConfig()).data
    d16 = preprocess(x, 400, SignalConfig(dtype="float16")).data
    assert d16.dtype == np.float16 and d16.flags.c_contiguous
    np.testing.assert_allclose(d16.astype(np.float32), d32, rtol=2.0**-11, atol=1e-4)


def test_pipeline_deterministic_bytes() -> None:
    x = _eeg(250, 20)
    sig = SignalConfig(montage="tcp", clip=3.0)
    a, b = preprocess(x, 250, sig), preprocess(x.copy(), 250, sig)
    assert a.data.tobytes() == b.data.tobytes()
    assert a.stats == b.stats and a.counts == b.counts
    assert a.counts["clipped_values"] > 0  # Gaussian tails beyond 3 sigma
    assert np.abs(a.data).max() <= 3.0


def test_pipeline_counts_flat_channel() -> None:
    x = _eeg(256, 10)
    x[CANONICAL_19.index("O2")] = 7.0
    out = preprocess(x, 256, SignalConfig(montage="referential"))
    assert out.counts["flat_channels"] == 1


def test_pipeline_rejects_bad_input() -> None:
    x = _eeg(256, 2)
    x[0, 10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        preprocess(x, 256, SignalConfig())
    with pytest.raises(ValueError, match="19"):
        preprocess(np.zeros((20, 512), np.float32), 256, SignalConfig())
    big = _eeg(256, 4)
    big[0, 100] = 1e9  # one channel: the average reference must not cancel it
    with pytest.raises(ValueError, match="float16"):
        preprocess(big, 256, SignalConfig(dtype="float16", normalisation="none"))


@pytest.mark.parametrize("n", [2, 3, 17, 250, 1_000, 4_097, 46_080])
def test_pocketfft_rows_are_scipy_fft_bit_for_bit(n: int) -> None:
    """The transforms loaded without `import scipy.fft` are scipy.fft's, byte for byte."""
    import scipy.fft

    from ictal.signal import pocketfft

    assert pocketfft._PFFT is not None, "scipy's pocketfft module was not found"
    rng = np.random.default_rng(n)
    for dtype in (np.float32, np.float64):
        x = (40.0 * rng.standard_normal((8, n))).astype(dtype)
        spectrum = pocketfft.rfft_rows(x)
        want = scipy.fft.rfft(x, axis=1)
        assert spectrum.dtype == want.dtype
        np.testing.assert_array_equal(spectrum.view(np.uint8), want.view(np.uint8))
        for m in (n, n + 1):
            bins = (
                np.ascontiguousarray(spectrum[:, : m // 2 + 1])
                if m == n
                else np.hstack(
                    [spectrum, np.zeros((8, m // 2 + 1 - spectrum.shape[1]), spectrum.dtype)]
                )
            )
            got = pocketfft.irfft_rows(bins, m)
            np.testing.assert_array_equal(
                got.view(np.uint8), scipy.fft.irfft(bins, n=m, axis=1).view(np.uint8)
            )
    for target in (1, 2, 7, 97, 1_009, 123_457, 1_000_003):
        assert pocketfft.next_fast_len(target) == scipy.fft.next_fast_len(target, real=True)


def test_preprocessing_never_imports_scipy_fft() -> None:
    """The pipeline's imports stay light (a build worker's start-up): no scipy.fft, whose
    import costs about 0.2 s of CPU per process."""
    import subprocess
    import sys

    code = (
        "import sys, ictal.signal.pipeline, ictal.cache.build; "
        "print(sorted(m for m in sys.modules if m in ('scipy.fft', 'scipy.special')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
