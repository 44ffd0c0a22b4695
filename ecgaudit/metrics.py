"""Pure metric functions on numpy arrays: rates with Wilson intervals, AUC."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rate:
    """A proportion with its 95% Wilson score interval."""

    successes: int
    total: int
    value: float
    ci95: tuple[float, float]

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value, "ci95": list(self.ci95), "successes": self.successes, "total": self.total}


def wilson(successes: int, total: int, *, z: float = 1.959963984540054) -> Rate:
    """`successes / total` with the Wilson score interval (well-behaved at 0%, 100% and small n).

    An empty denominator gives value NaN and the uninformative interval (0, 1).
    """
    if total <= 0:
        return Rate(0, 0, float("nan"), (0.0, 1.0))
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    # the interval always contains p; rounding must not push a bound past it (e.g. 1e-17 > 0 at 0 successes)
    low = min(p, max(0.0, centre - half))
    high = max(p, min(1.0, centre + half))
    return Rate(int(successes), int(total), p, (low, high))


def binary_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney statistic with average ranks for ties; NaN without both classes."""
    positives = positives.astype(bool)
    n_pos = int(positives.sum())
    n_neg = positives.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < scores.size:
        j = i
        while j + 1 < scores.size and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def macro_auc(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean one-vs-rest AUC over the classes that have both positives and negatives."""
    aucs = [binary_auc(probabilities[:, k], labels[:, k]) for k in range(labels.shape[1])]
    valid = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(valid)) if valid else float("nan")


def snr_db(clean: np.ndarray, perturbation: np.ndarray) -> float:
    """Mean over records of 10·log10(signal power / perturbation power). Shapes: `(N, L, T)` mV each.

    A zero perturbation gives +inf.
    """
    signal_power = np.mean(clean.astype(np.float64) ** 2, axis=(1, 2))
    noise_power = np.mean(np.broadcast_to(perturbation, clean.shape).astype(np.float64) ** 2, axis=(1, 2))
    with np.errstate(divide="ignore"):
        per_record = 10 * np.log10(signal_power / noise_power)
    return float(np.mean(per_record))


def ssim_1d(clean: np.ndarray, adversarial: np.ndarray, fs: float, *, window_ms: float = 14.0) -> float:
    """Structural similarity per lead (Wang et al. 2004), averaged over leads and records.

    ECG has no natural zero for the luminance term, so both signals are min-max normalised by the clean
    lead's range (data range 1), as is usual for 1-D SSIM on ECG; the sliding window is `window_ms` long
    (7 samples at 500 Hz, skimage's default), at least 3 samples. Shapes: `(N, L, T)` mV each.
    """
    from scipy.ndimage import uniform_filter1d

    x = clean.astype(np.float64)
    y = adversarial.astype(np.float64)
    low = x.min(axis=2, keepdims=True)
    span = np.ptp(x, axis=2, keepdims=True)
    span = np.where(span > 0, span, 1.0)
    x, y = (x - low) / span, (y - low) / span
    width = max(3, int(round(window_ms * fs / 1000.0)) | 1)
    c1, c2 = 0.01**2, 0.03**2

    def mean(a: np.ndarray) -> np.ndarray:
        return uniform_filter1d(a, width, axis=2, mode="reflect")

    mu_x, mu_y = mean(x), mean(y)
    # sample (not population) covariance, as skimage does
    correction = width / (width - 1)
    var_x = (mean(x * x) - mu_x**2) * correction
    var_y = (mean(y * y) - mu_y**2) * correction
    cov = (mean(x * y) - mu_x * mu_y) * correction
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def power_fraction_below(perturbation: np.ndarray, fs: float, cutoff_hz: float) -> float:
    """Share of the perturbation's power (Welch PSD, summed over leads) at frequencies ≤ `cutoff_hz`.

    Welch segments are 4 s long (or the whole record if shorter), so the bins are 0.25 Hz wide at any fs;
    the mean is kept (no detrending), since a DC offset is low-frequency power too.
    Shapes: `(L, T)` or `(N, L, T)` mV.
    """
    from scipy.signal import welch

    n_samples = perturbation.shape[-1]
    nperseg = min(n_samples, int(round(4 * fs)))
    freqs, psd = welch(perturbation.astype(np.float64), fs=fs, nperseg=nperseg, detrend=False, axis=-1)
    total = float(psd.sum())
    if total == 0.0:
        return 1.0
    return float(psd[..., freqs <= cutoff_hz].sum() / total)


def per_lead_norms(perturbation: np.ndarray, leads: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """L∞ and L2 (mV) per lead; for `(N, L, T)` input, the mean over records of each."""
    p = perturbation if perturbation.ndim == 3 else perturbation[None]
    linf = np.abs(p).max(axis=2).mean(axis=0)
    l2 = np.sqrt((p.astype(np.float64) ** 2).sum(axis=2)).mean(axis=0)
    return {lead: {"linf_mv": float(a), "l2_mv": float(b)} for lead, a, b in zip(leads, linf, l2)}


def misdiagnosis(clean: np.ndarray, adversarial: np.ndarray, classes: tuple[str, ...]) -> dict[str, object]:
    """Where successful attacks land: a clean→adversarial count matrix and its concentration.

    Single-label: `clean`, `adversarial` are class indices `(N,)`; the matrix counts records whose class
    changed. Multi-label: multi-hot `(N, K)`; rows are the labels lost and columns the labels gained.
    `top_target_share` is the share of changed records whose new class (gained label) is the most frequent one.
    """
    k = len(classes)
    matrix = np.zeros((k, k), dtype=np.int64)
    if clean.ndim == 1:
        changed = clean != adversarial
        np.add.at(matrix, (clean[changed], adversarial[changed]), 1)
        targets = np.bincount(adversarial[changed], minlength=k)
        n_changed = int(changed.sum())
    else:
        c, a = clean.astype(bool), adversarial.astype(bool)
        changed = np.any(c != a, axis=1)
        gained = a & ~c
        lost = c & ~a
        for i in np.flatnonzero(changed):
            src = np.flatnonzero(lost[i]) if lost[i].any() else np.flatnonzero(c[i])
            for s in src:
                for t in np.flatnonzero(gained[i]):
                    matrix[s, t] += 1
        targets = gained[changed].sum(axis=0)
        n_changed = int(changed.sum())
    top = int(np.argmax(targets)) if n_changed else None
    share = float(targets[top] / n_changed) if top is not None and n_changed else float("nan")
    return {
        "classes": list(classes),
        "matrix": matrix.tolist(),
        "n_changed": n_changed,
        "top_target": classes[top] if top is not None else None,
        "top_target_share": share,
    }
