from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import signal

from ecgaudit.dsp import gaussian_kernel, gaussian_smooth, zero_phase_filter


@pytest.mark.parametrize("fs", [100.0, 500.0, 1000.0])
def test_lowpass_matches_scipy_filtfilt_away_from_edges(fs: float) -> None:
    rng = np.random.default_rng(0)
    n = int(10 * fs)
    x = rng.normal(size=(3, n)).cumsum(axis=1) * 0.01
    ours = zero_phase_filter(torch.tensor(x), fs, high_hz=15.0, order=4).numpy()
    # filtfilt of an order-n Butterworth has the same |H|^2 gain; compare in the interior.
    sos = signal.butter(4, 15.0, btype="low", fs=fs, output="sos")
    ref = signal.sosfiltfilt(sos, x, axis=1)
    inner = slice(int(fs), n - int(fs))
    err = np.abs(ours[:, inner] - ref[:, inner]).max() / np.abs(ref[:, inner]).max()
    assert err < 0.02


def test_bandpass_removes_out_of_band_tones() -> None:
    fs = 500.0
    t = np.arange(5000) / fs
    tone = lambda f: np.sin(2 * np.pi * f * t)  # noqa: E731
    x = torch.tensor(tone(0.05) + tone(10) + tone(100))
    y = zero_phase_filter(x, fs, low_hz=0.5, high_hz=40.0, order=2).numpy()
    inner = slice(500, 4500)
    assert np.corrcoef(y[inner], tone(10)[inner])[0, 1] > 0.99


def test_gaussian_window_is_in_ms_not_samples() -> None:
    assert gaussian_kernel(50.0, 500.0).numel() == 25
    assert gaussian_kernel(50.0, 100.0).numel() == 5
    assert gaussian_kernel(50.0, 1000.0).numel() == 51
    assert torch.isclose(gaussian_kernel(50.0, 500.0).sum(), torch.tensor(1.0))


def test_smoothing_keeps_shape_and_mean_and_is_batched() -> None:
    x = torch.randn(4, 12, 1000)
    y = gaussian_smooth(x, 500.0, 50.0)
    assert y.shape == x.shape
    assert y.std() < x.std() * 0.5
    # each lead is smoothed on its own: a batch equals the leads done one at a time
    one = gaussian_smooth(x[1, 3], 500.0, 50.0)
    assert torch.allclose(y[1, 3], one, atol=1e-6)


def test_smoothing_is_the_kernel_convolution_with_reflected_ends() -> None:
    x = np.random.default_rng(1).normal(size=(2, 3, 400))
    kernel = gaussian_kernel(50.0, 500.0).double().numpy()
    half = len(kernel) // 2
    padded = np.pad(x, ((0, 0), (0, 0), (half, half)), mode="reflect")
    expected = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="valid"), -1, padded)
    assert np.allclose(gaussian_smooth(torch.tensor(x), 500.0, 50.0).numpy(), expected, atol=1e-12)
    assert gaussian_smooth(torch.zeros(0, 12, 400), 500.0, 50.0).shape == (0, 12, 400)


@pytest.mark.parametrize("fs", [250.0, 500.0])
def test_frequency_response_is_what_smooth_does_away_from_the_ends(fs: float) -> None:
    from ecgaudit.constraints import PhysioConstraint

    constraint = PhysioConstraint((0.1,), cutoff_hz=15.0, window_ms=50.0, low_hz=0.5)
    n = int(10 * fs)
    x = torch.tensor(np.random.default_rng(2).normal(size=(3, n)))
    spectral = torch.fft.irfft(torch.fft.rfft(x) * constraint.frequency_response(torch.fft.rfftfreq(n, 1 / fs), fs),
                               n=n)
    inner = slice(int(2 * fs), n - int(2 * fs))
    smoothed = constraint.smooth(x, fs)
    err = (spectral[:, inner] - smoothed[:, inner]).abs().max() / smoothed[:, inner].abs().max()
    assert err < 0.02
