"""Differentiable signal operations in physical units, batched over records and leads.

Every function takes `(..., T)` tensors and the sampling rate `fs` in Hz; nothing assumes a rate.
Filtering is done in the frequency domain so one call covers a whole batch of 12-lead records.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def butterworth_power_gain(
    freqs_hz: torch.Tensor, *, low_hz: float | None, high_hz: float | None, order: int
) -> torch.Tensor:
    """The zero-phase gain |H(f)|^2 of a Butterworth band-pass (low- or high-pass when an edge is None).

    Forward-backward filtering (as `scipy.signal.filtfilt` does) multiplies the spectrum by H·H* =
    |H(f)|^2, which for an order-n Butterworth is 1 / (1 + (f/fc)^(2n)) per edge: real, so no phase shift.
    """
    gain = torch.ones_like(freqs_hz)
    if high_hz is not None:
        gain = gain / (1.0 + (freqs_hz / high_hz) ** (2 * order))
    if low_hz is not None:
        ratio = torch.where(freqs_hz > 0, low_hz / freqs_hz.clamp_min(1e-12), torch.full_like(freqs_hz, math.inf))
        gain = gain / (1.0 + ratio ** (2 * order))
    return gain


def zero_phase_filter(
    x: torch.Tensor,
    fs: float,
    *,
    low_hz: float | None = None,
    high_hz: float | None = None,
    order: int = 4,
    pad_s: float = 1.0,
) -> torch.Tensor:
    """Zero-phase Butterworth filter along the last axis (band-pass, low-pass or high-pass).

    The signal is reflect-padded by `pad_s` seconds on each side before the FFT, so the circular
    FFT does not wrap one end of a record onto the other.

    Shapes: `x` is `(..., T)` in any unit; the result has the same shape and unit.
    """
    if low_hz is None and high_hz is None:
        return x
    n_samples = x.shape[-1]
    pad = min(n_samples - 1, int(round(pad_s * fs)))
    lead_shape = x.shape[:-1]
    flat = x.reshape(-1, 1, n_samples)
    if pad > 0:
        flat = F.pad(flat, (pad, pad), mode="reflect")
    length = flat.shape[-1]
    spectrum = torch.fft.rfft(flat, dim=-1)
    freqs_hz = torch.fft.rfftfreq(length, d=1.0 / fs).to(dtype=x.dtype, device=x.device)
    gain = butterworth_power_gain(freqs_hz, low_hz=low_hz, high_hz=high_hz, order=order)
    filtered = torch.fft.irfft(spectrum * gain, n=length, dim=-1)
    return filtered[..., pad : pad + n_samples].reshape(*lead_shape, n_samples)


def gaussian_kernel(window_ms: float, fs: float) -> torch.Tensor:
    """A normalised Gaussian kernel spanning `window_ms` (±3 sigma), at least one sample wide.

    At 500 Hz the paper's 50 ms window is W = 25 samples.
    """
    width = max(1, int(round(window_ms * fs / 1000.0)))
    if width % 2 == 0:
        width += 1
    if width == 1:
        return torch.ones(1)
    sigma = width / 6.0
    t = torch.arange(width, dtype=torch.float64) - (width - 1) / 2
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    return (kernel / kernel.sum()).to(torch.float32)


def gaussian_smooth(x: torch.Tensor, fs: float, window_ms: float) -> torch.Tensor:
    """Convolve the last axis with `gaussian_kernel(window_ms, fs)` (reflect-padded, same length).

    Shapes: `x` is `(..., T)`; the result has the same shape.
    """
    kernel = gaussian_kernel(window_ms, fs).to(dtype=x.dtype, device=x.device)
    if kernel.numel() == 1:
        return x
    half = kernel.numel() // 2
    n_samples = x.shape[-1]
    flat = x.reshape(-1, 1, n_samples)
    flat = F.pad(flat, (half, half), mode="reflect" if n_samples > half else "replicate")
    out = F.conv1d(flat, kernel.view(1, 1, -1))
    return out.reshape(x.shape)
