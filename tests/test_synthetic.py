"""Tests of the synthetic 12-lead ECG generator: contract, physiology and class separability."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import find_peaks

from ecgaudit.data.interface import SUPERCLASSES
from ecgaudit.data.synthetic import generate_synthetic
from ecgaudit.errors import DataError
from ecgaudit.leads import STANDARD_LEADS

LEAD = {name: i for i, name in enumerate(STANDARD_LEADS)}
NORM, MI, STTC, CD, HYP = (SUPERCLASSES.index(c) for c in ("NORM", "MI", "STTC", "CD", "HYP"))
FS = 250.0


def _ms(fs: float, z: int, a_ms: float, b_ms: float) -> slice:
    """Samples from a_ms to b_ms (inclusive) around sample z."""
    return slice(z + round(a_ms * fs / 1e3), z + round(b_ms * fs / 1e3) + 1)


def _smooth(x: np.ndarray, fs: float, win_ms: float) -> np.ndarray:
    k = max(1, round(win_ms * fs / 1e3))
    return np.apply_along_axis(lambda r: np.convolve(r, np.ones(k) / k, mode="same"), -1, x)


def _median_beat(x: np.ndarray, fs: float) -> tuple[np.ndarray, int]:
    """Median beat (12, W) aligned on the peak of all-lead QRS energy, baseline taken from the PR segment.

    The median over ~10 beats cuts the white noise ~3x, which the thresholds below rely on.
    """
    # Low-pass first: differentiating raw samples would let the white noise dominate at high fs.
    energy = _smooth(np.abs(np.diff(_smooth(x, fs, 20.0), axis=1)).sum(axis=0), fs, 40.0)
    peaks, _ = find_peaks(energy, distance=round(0.33 * fs), height=0.4 * np.percentile(energy, 99))
    pre, post = round(0.3 * fs), round(0.5 * fs)
    peaks = peaks[(peaks >= pre) & (peaks + post < x.shape[1])]
    beat = np.median(np.stack([x[:, p - pre : p + post] for p in peaks]), axis=0)
    return beat - beat[:, _ms(fs, pre, -90, -60)].mean(axis=1, keepdims=True), pre


def _features(x: np.ndarray, fs: float) -> dict[str, np.ndarray | float]:
    beat, z = _median_beat(x, fs)
    qrs = beat[:, _ms(fs, z, -80, 80)]
    speed = np.abs(np.diff(_smooth(beat, fs, 20.0), axis=1)).sum(axis=0)[_ms(fs, z, -120, 120)]
    fast = np.flatnonzero(speed > 0.1 * speed.max())
    return {
        "st_mv": beat[:, _ms(fs, z, 60, 100)].mean(axis=1),
        "t_mv": beat[:, _ms(fs, z, 180, 320)].mean(axis=1),
        "r_mv": qrs.max(axis=1),
        "s_mv": -qrs.min(axis=1),
        "qrs_ms": (fast[-1] - fast[0]) / fs * 1e3,
    }


@pytest.fixture(scope="module")
def cohort() -> tuple[np.ndarray, np.ndarray, list[dict]]:
    X, y = generate_synthetic(250, FS, round(10 * FS), seed=3)
    return X, y, [_features(x, FS) for x in X]


def _per_class(feats: list[dict], y: np.ndarray, cls: int, fn) -> np.ndarray:
    return np.array([fn(f) for f, label in zip(feats, y, strict=True) if label == cls])


def test_shape_dtype_and_finite() -> None:
    X, y = generate_synthetic(7, 500.0, 2000, seed=0)
    assert X.shape == (7, 12, 2000) and X.dtype == np.float32
    assert y.shape == (7,) and y.dtype == np.int64
    assert np.isfinite(X).all()
    assert set(y.tolist()) <= set(range(len(SUPERCLASSES)))
    assert 0.01 < np.abs(X).max() < 10.0  # millivolts, not volts or microvolts


def test_seeded_and_deterministic() -> None:
    a = generate_synthetic(6, 360.0, 1000, seed=42)
    b = generate_synthetic(6, 360.0, 1000, seed=42)
    c = generate_synthetic(6, 360.0, 1000, seed=43)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_classes_balanced() -> None:
    _, y = generate_synthetic(23, 100.0, 300, seed=1)
    counts = np.bincount(y, minlength=len(SUPERCLASSES))
    assert counts.max() - counts.min() <= 1
    _, y2 = generate_synthetic(23, 100.0, 300, seed=2)
    assert not np.array_equal(y, y2)  # shuffled, not just round-robin


@pytest.mark.parametrize("fs", [100.0, 250.0, 360.0, 500.0, 1000.0])
@pytest.mark.parametrize("duration_s", [3.0, 10.0])
def test_any_rate_gives_plausible_heart_rate(fs: float, duration_s: float) -> None:
    X, _ = generate_synthetic(10, fs, round(duration_s * fs), seed=5)
    assert X.shape == (10, 12, round(duration_s * fs)) and np.isfinite(X).all()
    for lead_ii in X[:, LEAD["II"]]:
        span = np.percentile(lead_ii, 99.5) - np.median(lead_ii)
        peaks, _ = find_peaks(lead_ii, distance=round(0.33 * fs), prominence=0.5 * span)
        assert len(peaks) >= 2
        bpm = 60.0 * fs / np.median(np.diff(peaks))
        assert 40.0 <= bpm <= 110.0


def test_einthoven_and_goldberger_hold() -> None:
    # Limb leads are derived from I and II after noise is added, as an electrocardiograph does, so the
    # identities hold to float32 rounding (~1e-7 relative), far below the 10-30 uV noise.
    X, _ = generate_synthetic(20, 500.0, 5000, seed=7)
    i, ii = X[:, LEAD["I"]], X[:, LEAD["II"]]
    assert np.abs(X[:, LEAD["III"]] - (ii - i)).max() < 1e-5
    assert np.abs(X[:, LEAD["aVR"]] + (i + ii) / 2).max() < 1e-5
    assert np.abs(X[:, LEAD["aVL"]] - (i - ii / 2)).max() < 1e-5
    assert np.abs(X[:, LEAD["aVF"]] - (ii - i / 2)).max() < 1e-5
    # The chest leads are not sums of limb leads: they carry the horizontal-plane (z) component.
    v2 = X[:, LEAD["V2"]]
    assert np.abs(v2).max() > 0.3


def test_r_amplitude_in_lead_ii(cohort) -> None:
    _, y, feats = cohort
    r_ii = np.array([f["r_mv"][LEAD["II"]] for f in feats])
    assert 0.5 < np.median(r_ii) < 2.5
    assert 0.8 < np.median(r_ii[y == NORM]) < 1.8


def test_mi_has_territorial_st_elevation_with_reciprocal_depression(cohort) -> None:
    _, y, feats = cohort
    norm_max = _per_class(feats, y, NORM, lambda f: f["st_mv"].max())
    mi_max = _per_class(feats, y, MI, lambda f: f["st_mv"].max())
    assert np.median(mi_max) > np.median(norm_max) + 0.1
    assert np.mean(mi_max > 0.1) > 0.8 and np.mean(norm_max > 0.1) < 0.1
    norm_min = _per_class(feats, y, NORM, lambda f: f["st_mv"].min())
    mi_min = _per_class(feats, y, MI, lambda f: f["st_mv"].min())
    assert np.median(mi_min) < np.median(norm_min) - 0.04
    # The injury vector never points at aVR's territory, so aVR is never the most elevated lead.
    mi_top = _per_class(feats, y, MI, lambda f: int(np.argmax(f["st_mv"])))
    assert LEAD["aVR"] not in mi_top


def test_sttc_has_st_depression_or_t_inversion(cohort) -> None:
    _, y, feats = cohort
    score = lambda f: min(f["st_mv"][[LEAD["V5"], LEAD["V6"], LEAD["II"]]].min(), f["t_mv"][LEAD["V5"]])  # noqa: E731
    norm, sttc = _per_class(feats, y, NORM, score), _per_class(feats, y, STTC, score)
    assert np.median(sttc) < np.median(norm) - 0.1


def test_cd_has_wide_qrs(cohort) -> None:
    _, y, feats = cohort
    norm = _per_class(feats, y, NORM, lambda f: f["qrs_ms"])
    cd = _per_class(feats, y, CD, lambda f: f["qrs_ms"])
    assert np.median(cd) > np.median(norm) + 25.0
    assert np.percentile(cd, 25) > np.percentile(norm, 75)


def test_hyp_meets_sokolow_lyon_and_norm_does_not(cohort) -> None:
    _, y, feats = cohort
    sokolow = lambda f: f["s_mv"][LEAD["V1"]] + f["r_mv"][[LEAD["V5"], LEAD["V6"]]].max()  # noqa: E731
    norm, hyp = _per_class(feats, y, NORM, sokolow), _per_class(feats, y, HYP, sokolow)
    assert np.mean(hyp > 3.5) > 0.8
    assert np.mean(norm > 3.5) < 0.2


def test_nearest_centroid_on_hand_features_separates_classes(cohort) -> None:
    def vectors(feats: list[dict]) -> np.ndarray:
        rows = []
        for f in feats:
            st, t, p2p = f["st_mv"], f["t_mv"], f["r_mv"] + f["s_mv"]
            rows.append(np.concatenate([np.sort(st), np.sort(t), [p2p.max(), p2p.mean(), f["qrs_ms"] / 100]]))
        return np.array(rows)

    _, y_train, feats_train = cohort
    X_test, y_test = generate_synthetic(150, FS, round(10 * FS), seed=4)  # held-out seed
    train, test = vectors(feats_train), vectors([_features(x, FS) for x in X_test])
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-9
    train, test = (train - mean) / std, (test - mean) / std
    centroids = np.stack([train[y_train == c].mean(axis=0) for c in range(len(SUPERCLASSES))])
    pred = np.argmin(((test[:, None, :] - centroids[None]) ** 2).sum(axis=-1), axis=1)
    assert np.mean(pred == y_test) >= 0.7


@pytest.mark.parametrize("n_samples", [0, 199])
def test_rejects_records_too_short(n_samples: int) -> None:
    with pytest.raises(DataError):
        generate_synthetic(3, 100.0, n_samples, seed=0)
