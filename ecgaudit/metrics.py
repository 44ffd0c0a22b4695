"""Pure metric functions on numpy arrays: rates with Wilson intervals, AUC, and what a perturbation does."""

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


SSIM_WINDOW_MS = 50.0
"""The SSIM window: 50 ms, the paper's smoothing window W (25 samples at 500 Hz) and exactly 5 samples at 100 Hz."""


def ssim_1d(clean: np.ndarray, adversarial: np.ndarray, fs: float, *, window_ms: float = SSIM_WINDOW_MS) -> float:
    """Structural similarity per lead (Wang et al. 2004), averaged over leads and records.

    ECG has no natural zero for the luminance term, so both signals are min-max normalised by the clean
    lead's range (data range 1), as is usual for 1-D SSIM on ECG. The sliding (uniform) window spans
    `window_ms` of signal, rounded to an odd number of samples and at least 3, so that the same signal scores
    the same at 100 Hz and 500 Hz: a window fixed in samples (skimage's 7) is 14 ms at 500 Hz but 70 ms at
    100 Hz. For the same reason the local (co)variances are population moments: the sample correction
    `w / (w - 1)` is 1.25 for a 5-sample window but 1.04 for 25 samples. What still differs between rates is
    content the slower rate cannot carry (power above its Nyquist). Shapes: `(N, L, T)` mV each.
    """
    width = max(3, int(round(window_ms * fs / 1000.0)) | 1)
    total, count = 0.0, 0
    # Sixteen records at a time: the float64 maps of a whole 200-record eval split at 500 Hz cost ~1 GB.
    for start in range(0, clean.shape[0], 16):
        ssim_map = _ssim_map(clean[start : start + 16], adversarial[start : start + 16], width)
        total, count = total + float(ssim_map.sum()), count + ssim_map.size
    return total / count if count else float("nan")


def _ssim_map(clean: np.ndarray, adversarial: np.ndarray, width: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    x = clean.astype(np.float64)
    y = adversarial.astype(np.float64)
    low = x.min(axis=2, keepdims=True)
    span = np.ptp(x, axis=2, keepdims=True)
    span = np.where(span > 0, span, 1.0)
    x, y = (x - low) / span, (y - low) / span
    c1, c2 = 0.01**2, 0.03**2

    def mean(a: np.ndarray) -> np.ndarray:
        return uniform_filter1d(a, width, axis=2, mode="reflect")

    mu_x, mu_y = mean(x), mean(y)
    var_x = mean(x * x) - mu_x**2
    var_y = mean(y * y) - mu_y**2
    cov = mean(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def power_fraction_below(perturbation: np.ndarray, fs: float, cutoff_hz: float) -> float:
    """Share of the perturbation's power (Welch PSD, summed over leads) at frequencies ≤ `cutoff_hz`.

    Welch segments are 4 s long (or the whole record if shorter), so the bins are 0.25 Hz wide at any fs;
    the mean is kept (no detrending), since a DC offset is low-frequency power too.
    Shapes: `(L, T)` or `(N, L, T)` mV.
    """
    from scipy.signal import welch

    n_samples = perturbation.shape[-1]
    nperseg = min(n_samples, int(round(4 * fs)))
    rows = perturbation.reshape(-1, n_samples)
    total = below = 0.0
    # 64 lead-records at a time: Welch's float64 segments of a whole eval split at 500 Hz cost ~0.4 GB.
    for start in range(0, len(rows), 64):
        freqs, psd = welch(rows[start : start + 64].astype(np.float64), fs=fs, nperseg=nperseg, detrend=False,
                           axis=-1)
        total += float(psd.sum())
        below += float(psd[..., freqs <= cutoff_hz].sum())
    return 1.0 if total == 0.0 else below / total


def decisions_changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per record: did the model's decision change? Class indices `(N,)`, or multi-hot `(N, K)` (any label)."""
    diff = before != after
    return diff.any(axis=1) if diff.ndim == 2 else diff


RECORDS_AT_ONCE = 64
"""Records handled together wherever a copy of a whole split would be large (adversarial records, float64 work):
memory then grows with this, not with the number of records."""


def record_chunks(n_records: int) -> list[slice]:
    """Consecutive slices of at most `RECORDS_AT_ONCE` records that cover `n_records`."""
    return [slice(start, start + RECORDS_AT_ONCE) for start in range(0, n_records, RECORDS_AT_ONCE)]


def per_lead_norms(perturbation: np.ndarray, leads: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """L∞ and RMS (mV) per lead; for `(N, L, T)` input, the mean over records of each.

    RMS, not the L2 norm: an L2 norm over samples grows with √fs and with the record's length, RMS does not.
    """
    p = perturbation if perturbation.ndim == 3 else perturbation[None]
    linf = np.maximum(p.max(axis=2), -p.min(axis=2)).mean(axis=0)  # |p| would copy a per-record perturbation
    # float64 squares of a whole per-record eval split would be twice its size again
    rms = np.concatenate([np.sqrt((p[rows].astype(np.float64) ** 2).mean(axis=2))
                          for rows in record_chunks(len(p))]).mean(axis=0)
    return {lead: {"linf_mv": float(a), "rms_mv": float(b)} for lead, a, b in zip(leads, linf, rms)}


def misdiagnosis(clean: np.ndarray, adversarial: np.ndarray, classes: tuple[str, ...]) -> dict[str, object]:
    """Where successful attacks land, as counts of records.

    Single-label: `clean`, `adversarial` are class indices `(N,)`; `matrix[i][j]` counts records whose class
    changed from i to j. Multi-label: multi-hot `(N, K)`; labels are not exclusive, so there is no
    clean→adversarial matrix (`matrix` is empty) and `per_label` is the table to read.

    `per_label[label]` = `{"gained", "lost", "clean_positive"}`: records that gained / lost the label under
    attack, and records that had it clean (for single-label, "had the class"). `top_targets` are the
    labels gained by the most changed records (all of them when tied), `top_target_share` the share of changed
    records that gained each of them, and `top_target` the same names joined by " / " for display.
    """
    k = len(classes)
    matrix = np.zeros((k, k), dtype=np.int64)
    if clean.ndim == 1:
        changed = clean != adversarial
        np.add.at(matrix, (clean[changed], adversarial[changed]), 1)
        gained = np.bincount(adversarial[changed], minlength=k)
        lost = np.bincount(clean[changed], minlength=k)
        positive = np.bincount(clean, minlength=k)
        matrix_out: list[list[int]] = matrix.tolist()
    else:
        c, a = clean.astype(bool), adversarial.astype(bool)
        changed = np.any(c != a, axis=1)
        gained = (a & ~c).sum(axis=0)
        lost = (c & ~a).sum(axis=0)
        positive = c.sum(axis=0)
        matrix_out = []
    n_changed = int(changed.sum())
    most = int(gained.max()) if n_changed and k else 0
    tops = [classes[i] for i in np.flatnonzero(gained == most)] if most > 0 else []
    return {
        "classes": list(classes),
        "matrix": matrix_out,
        "per_label": {label: {"gained": int(g), "lost": int(lo), "clean_positive": int(p)}
                      for label, g, lo, p in zip(classes, gained, lost, positive)},
        "n_changed": n_changed,
        "top_targets": tops,
        "top_target": " / ".join(tops) if tops else None,
        "top_target_share": float(most / n_changed) if n_changed else float("nan"),
    }
