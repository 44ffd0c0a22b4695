"""Transfer: a universal perturbation crafted on one model, carried to another model's rate, length and leads,
and measured on that model's own runtime."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from ecgaudit.attacks.measure import measure
from ecgaudit.data.interface import EcgDataset
from ecgaudit.evaluation import evaluate_clean
from ecgaudit.models.interface import ModelAdapter


def conform_perturbation(v: np.ndarray, source_fs: float, target_fs: float, n_samples: int) -> np.ndarray:
    """Carry a perturbation to another model's rate and length (resample, then crop or zero-pad)."""
    if source_fs != target_fs:
        ratio = Fraction(target_fs / source_fs).limit_denominator(1000)
        v = resample_poly(v, ratio.numerator, ratio.denominator, axis=-1)
    if v.shape[-1] >= n_samples:
        return np.ascontiguousarray(v[..., :n_samples], dtype=np.float32)
    return np.pad(v, ((0, 0), (0, n_samples - v.shape[-1]))).astype(np.float32)


def transfer(
    v: np.ndarray,
    source_fs: float,
    target: ModelAdapter,
    evaluation: EcgDataset,
    *,
    cutoff_hz: float | None,
    lead_index: Sequence[int],
) -> dict[str, Any]:
    """Measure a crafted universal perturbation on another model (and/or dataset), on its runtime.

    `lead_index[i]` is the row of `v` that feeds the target's i-th lead (resolved when the run is planned).
    """
    carried = conform_perturbation(v[list(lead_index)], source_fs, target.card.fs, target.card.n_samples)
    clean = evaluate_clean(target, evaluation)
    return measure(target, evaluation, clean, carried, cutoff_hz=cutoff_hz)
