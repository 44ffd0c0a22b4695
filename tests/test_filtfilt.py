"""The card's `filtfilt` / `sosfiltfilt` kinds reproduce scipy's functions of those names, and their
gradient is the transpose of the same linear map.

Records: the real ones under tests/data/ when that folder holds WFDB records, else built-in synthetic
ECGs with a strong baseline drift (the edges are where padding and initial conditions matter).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import signal

from ecgaudit.card import FilterStep, parse_card
from ecgaudit.data.synthetic import generate_synthetic
from ecgaudit.dsp import scipy_filtfilt
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.models.interface import prepare_input

TEST_DATA = Path(__file__).resolve().parent / "data"
TOLERANCE_MV = 1e-4


def records() -> list[tuple[str, float, np.ndarray]]:
    """(name, fs, (leads, T) mV) for each test record."""
    found = []
    if TEST_DATA.is_dir():
        import wfdb

        for header in sorted(TEST_DATA.rglob("*.hea"))[:6]:
            try:
                record = wfdb.rdrecord(str(header.with_suffix("")))
            except Exception:  # a multi-segment or odd record: the synthetic set still covers the kinds
                continue
            if record.p_signal is not None and record.fs and np.isfinite(record.p_signal).all():
                found.append((header.stem, float(record.fs), record.p_signal.T.astype(np.float32)))
    if found:
        return found
    out = []
    for fs, n in ((100.0, 1000), (500.0, 5000)):
        x, _ = generate_synthetic(2, fs, n, seed=3)
        drift = np.linspace(-1.5, 2.0, n, dtype=np.float32)  # mV over the record: a large edge step
        out += [(f"synthetic-{fs:g}Hz-{i}", fs, x[i] + drift) for i in range(2)]
    return out


def scipy_reference(step: FilterStep, fs: float, x: np.ndarray) -> np.ndarray:
    edges = [step.low_hz, step.high_hz] if step.low_hz and step.high_hz else (step.high_hz or step.low_hz)
    band = "bandpass" if step.low_hz and step.high_hz else ("lowpass" if step.high_hz else "highpass")
    padtype = None if step.padtype == "none" else step.padtype
    if step.kind == "sosfiltfilt":
        sos = signal.butter(step.order, edges, btype=band, output="sos", fs=fs)
        return signal.sosfiltfilt(sos, x, padtype=padtype, padlen=step.padlen)
    b, a = signal.butter(step.order, edges, btype=band, fs=fs)
    return signal.filtfilt(b, a, x, padtype=padtype, padlen=step.padlen)


STEPS = [
    FilterStep("filtfilt", 0.5, 40.0, 4, "odd"),
    FilterStep("sosfiltfilt", 0.5, 40.0, 4, "odd"),
    FilterStep("filtfilt", None, 25.0, 2, "even"),
    FilterStep("sosfiltfilt", 1.0, None, 3, "constant"),
    FilterStep("sosfiltfilt", 0.67, 35.0, 2, "none"),
    FilterStep("filtfilt", 0.5, 30.0, 3, "odd", 40),
]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: f"{s.kind}-{s.low_hz}-{s.high_hz}-{s.order}-{s.padtype}")
def test_matches_scipy_everywhere_including_the_edges(step: FilterStep) -> None:
    for name, fs, x in records():
        ours = scipy_filtfilt(torch.from_numpy(x), fs, step).numpy()
        reference = scipy_reference(step, fs, x.astype(np.float64))
        second = int(fs)
        err = np.abs(ours - reference)
        assert err.max() <= TOLERANCE_MV, (name, float(err.max()))
        assert err[:, :second].max() <= TOLERANCE_MV and err[:, -second:].max() <= TOLERANCE_MV
        assert ours.dtype == np.float32 and ours.shape == x.shape


@pytest.mark.parametrize("step", STEPS, ids=lambda s: f"{s.kind}-{s.low_hz}-{s.high_hz}-{s.order}-{s.padtype}")
def test_gradient_is_the_transpose_of_scipys_linear_map(step: FilterStep) -> None:
    """The backward of filtfilt is M^T for scipy's M (built column by column by filtering the identity)."""
    fs, n = 100.0, 300
    transpose = scipy_reference(step, fs, np.eye(n))  # row i = M e_i, so this is M^T
    grads = np.random.default_rng(0).standard_normal((2, 12, n))
    x = torch.zeros(2, 12, n, dtype=torch.float64, requires_grad=True)
    scipy_filtfilt(x, fs, step).backward(torch.from_numpy(grads))
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), grads @ transpose.T, atol=1e-9)


def test_batched_and_differentiable() -> None:
    step = FilterStep("sosfiltfilt", 0.5, 20.0, 2, "odd")
    x = torch.randn(3, 12, 200, dtype=torch.float64, requires_grad=True)
    batched = scipy_filtfilt(x, 100.0, step)
    single = torch.stack([scipy_filtfilt(x[i], 100.0, step) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-12)
    small = torch.randn(1, 1, 64, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: scipy_filtfilt(v, 100.0, step), (small,))


def test_card_step_runs_inside_the_adapter_input() -> None:
    """A card with a `filtfilt` step hands the model exactly scipy's output (then the card's scaling)."""
    fs, n = 100.0, 1000
    card = parse_card({"fs": fs, "n_samples": n, "leads": list(STANDARD_LEADS), "layout": "NTC",
                       "scaling": {"kind": "affine", "scale": 2.0, "offset": 0.0}, "classes": ["a", "b"],
                       "output": "logits",
                       "preprocessing": [{"kind": "filtfilt", "low_hz": 0.5, "high_hz": 40, "order": 4}]},
                      source="t")
    x, _ = generate_synthetic(2, fs, n, seed=1)
    ours = prepare_input(card, torch.from_numpy(x)).numpy()
    b, a = signal.butter(4, [0.5, 40], btype="bandpass", fs=fs)
    expected = 2.0 * signal.filtfilt(b, a, x.astype(np.float64)).transpose(0, 2, 1)
    assert np.abs(ours - expected).max() <= 2 * TOLERANCE_MV
