"""Seeded synthetic 12-lead ECGs with PTB-XL-style superclass labels, for tests and demos.

The model, per record:

* **Beat timing.** A heart rate of 50-100 bpm; each RR interval carries a respiratory sinus arrhythmia
  (a sinusoid at 0.15-0.4 Hz, 2-4 %) and ~1 % white jitter. R peaks are the cumulative sum of the RR
  intervals from a random phase before t = 0.
* **Beat shape.** Each beat is a sum of eight waves in time around its R peak, in the manner of McSharry's
  ECGSYN: P, septal q, pathological Q, R, a second R (notch or R'), S, an ST plateau and an asymmetric
  T. All are Gaussians except the ST plateau (a product of two sigmoids from the J point to the T peak).
  Repolarisation (ST, T) is time-warped by RR^(1/3) about the J point, so QT follows Fridericia's rule.
* **Leads.** Each wave owns a 3-D cardiac dipole vector (x to the left, y inferior, z anterior, in mV).
  Leads I and II and V1-V6 are projections of the dipole on their axes (0 and 60 degrees in the frontal
  plane; 115 to 0 degrees in the horizontal plane, with per-lead gains for their nearness to the heart).
  III, aVR, aVL and aVF are then derived from I and II as an electrocardiograph does, after the baseline
  wander and noise are added at the I/II level, so Einthoven's and Goldberger's equations hold exactly.
* **Variability.** Overall amplitude (x0.8-1.2), electrical axis (+/-20 degrees frontal, +/-12 degrees
  horizontal), wave widths (x0.9-1.1), PR, QT, beat-to-beat amplitude (respiration), baseline wander
  (three sinusoids below 0.5 Hz, up to ~0.15 mV) and white noise (10-30 uV).
* **Classes** change the dipole vectors and timings: MI adds a territorial injury (ST) vector and
  pathological Q waves; STTC a diffuse ST depression and/or inverted T; CD a wide QRS with a right or
  left bundle-branch pattern and sometimes first-degree AV block; HYP a large, left-rotated QRS vector,
  sometimes with a strain pattern.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ecgaudit.data.interface import SUPERCLASSES
from ecgaudit.errors import DataError
from ecgaudit.leads import STANDARD_LEADS

__all__ = ["generate_synthetic"]

# Wave slots; every record fills all of them (a zero vector turns a wave off).
P, QSEP, QPATH, R, R2, S, ST, T = range(8)
_N_WAVES = 8
_DEPOL = slice(P, S + 1)  # waves that live in plain time around the R peak

_V_ANGLES_DEG = np.array([115.0, 94.0, 75.0, 60.0, 35.0, 5.0])
# Chest electrodes sit closer to the heart than limb electrodes, and the nearest ones most of all.
_V_GAIN = np.array([1.3, 1.7, 1.7, 1.6, 1.4, 1.1])

# Heart-frame directions of the three MI territories: a vector pointing at the injured wall.
_TERRITORIES = {
    "anterior": (0.2, -0.3, 0.93),
    "inferior": (-0.25, 0.95, -0.1),
    "lateral": (0.85, -0.35, -0.15),
}


def _unit(*xyz: float) -> np.ndarray:
    v = np.asarray(xyz, dtype=float)
    return v / np.linalg.norm(v)


# Limb leads as combinations of the recorded I and II (Einthoven's and Goldberger's equations).
_LIMB_FROM_I_II = {
    "I": (1.0, 0.0),
    "II": (0.0, 1.0),
    "III": (-1.0, 1.0),
    "aVR": (-0.5, -0.5),
    "aVL": (1.0, -0.5),
    "aVF": (-0.5, 1.0),
}


def _channels_to_leads() -> np.ndarray:
    """(12, 8) map from the recorded channels (I, II, V1..V6) to STANDARD_LEADS."""
    d = np.zeros((len(STANDARD_LEADS), 8))
    for row, lead in enumerate(STANDARD_LEADS):
        if lead in _LIMB_FROM_I_II:
            d[row, :2] = _LIMB_FROM_I_II[lead]
        else:
            d[row, 1 + int(lead[1:])] = 1.0
    return d


def _channel_axes() -> np.ndarray:
    """(8, 3) lead vectors of the recorded channels I, II, V1..V6 in the heart frame."""
    axes = np.zeros((8, 3))
    axes[0] = (1.0, 0.0, 0.0)
    axes[1] = (np.cos(np.pi / 3), np.sin(np.pi / 3), 0.0)
    theta = np.deg2rad(_V_ANGLES_DEG)
    axes[2:, 0] = _V_GAIN * np.cos(theta)
    axes[2:, 2] = _V_GAIN * np.sin(theta)
    return axes


_TO_LEADS = _channels_to_leads()
_AXES = _channel_axes()


def _rotation(frontal_deg: float, horizontal_deg: float) -> np.ndarray:
    """Rotate the heart frame: frontal about z (positive turns the axis inferior/right), then about y."""
    a, b = np.deg2rad(frontal_deg), np.deg2rad(horizontal_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[np.cos(b), 0.0, -np.sin(b)], [0.0, 1.0, 0.0], [np.sin(b), 0.0, np.cos(b)]])
    return ry @ rz


class _Morphology(NamedTuple):
    """One record's beat: dipole vectors and wave timings (at RR = 1 s) relative to the R peak."""

    vec_mv: np.ndarray  # (3, 8)
    centre_s: np.ndarray  # (8,)
    sigma_s: np.ndarray  # (8, 2): rise and fall widths; for ST, the on and off sigmoid scales
    j_s: float  # J point, the pivot of the repolarisation time warp


def _morphology(label: str, rng: np.random.Generator) -> _Morphology:
    u = rng.uniform
    vec = np.zeros((3, _N_WAVES))
    width_scale = u(0.9, 1.1)
    qrs_ms = u(80.0, 100.0) * width_scale
    pr_ms = u(140.0, 180.0)
    qt_ms = u(380.0, 420.0)
    axis_deg = u(-20.0, 20.0)
    horiz_deg = u(-12.0, 12.0)

    vec[:, P] = u(0.12, 0.2) * _unit(0.55, 0.8, 0.2)
    vec[:, QSEP] = u(0.8, 1.2) * np.array([-0.12, 0.05, 0.2])
    r_dir = _unit(0.8, 0.8, -0.15)
    vec[:, R] = u(1.1, 1.7) * r_dir
    vec[:, S] = u(0.35, 0.55) * _unit(-0.25, -0.35, -0.9)
    vec[:, T] = u(0.8, 1.2) * np.array([0.3, 0.22, 0.2])
    t_sigma_ms = np.array([u(42.0, 52.0), u(32.0, 38.0)])

    centre_ms = np.zeros(_N_WAVES)
    sigma_ms = np.zeros((_N_WAVES, 2))  # (rise, fall) widths
    centre_ms[QSEP], sigma_ms[QSEP] = -0.38 * qrs_ms, 0.08 * qrs_ms
    centre_ms[QPATH], sigma_ms[QPATH] = -0.3 * qrs_ms, 16.0
    centre_ms[R], sigma_ms[R] = 0.0, 0.11 * qrs_ms
    centre_ms[S], sigma_ms[S] = 0.3 * qrs_ms, 0.1 * qrs_ms
    centre_ms[R2], sigma_ms[R2] = 0.3 * qrs_ms, 0.1 * qrs_ms
    onset_ms, end_ms = -0.5 * qrs_ms, 0.5 * qrs_ms

    if label == "MI":
        wall = _unit(*_TERRITORIES[("anterior", "inferior", "lateral")[rng.integers(3)]])
        vec[:, ST] = u(0.1, 0.3) * wall
        # Dead myocardium stops pulling the early QRS towards the wall: the net early force points away.
        vec[:, R] -= 0.6 * max(float(vec[:, R] @ wall), 0.0) * wall
        vec[:, QPATH] = -u(0.4, 0.7) * wall
        sigma_ms[QPATH] = u(14.0, 18.0)
        vec[:, T] += 0.15 * wall  # hyperacute T over the injured wall
    elif label == "STTC":
        mode = rng.integers(3)  # 0: ST depression, 1: T inversion, 2: both
        apex = _unit(0.7, 0.55, 0.45)
        if mode != 1:
            vec[:, ST] = -u(0.05, 0.2) * apex
        if mode != 0:
            vec[:, T] = -u(0.2, 0.8) * vec[:, T] - u(0.0, 0.1) * apex
    elif label == "CD":
        wide_ms = u(120.0, 160.0)
        if rng.random() < 0.3:
            pr_ms = u(210.0, 290.0)  # first-degree AV block
        if rng.random() < 0.5:
            # Right bundle-branch block: the left ventricle fires on time, then the right ventricle adds
            # a slow, rightward-anterior terminal force (R' in V1-V2, broad S in I and V6).
            end_ms = onset_ms + wide_ms
            sigma_ms[R2] = u(15.0, 20.0)
            centre_ms[R2] = end_ms - 2.2 * sigma_ms[R2, 1]
            vec[:, R2] = u(0.5, 0.8) * _unit(-0.6, 0.1, 0.8)
            vec[:, T] = u(0.8, 1.2) * np.array([0.3, 0.2, -0.15])  # discordant to R'
        else:
            # Left bundle-branch block: septum fires left-to-right (no septal q), then a slow leftward-
            # posterior sweep whose two halves give the broad notched R; ST-T turn discordant.
            onset_ms, end_ms = -0.5 * wide_ms, 0.5 * wide_ms
            lbbb = _unit(0.8, 0.35, -0.5)
            vec[:, QSEP] = np.array([0.1, 0.0, -0.1])
            vec[:, R] = u(1.0, 1.4) * lbbb
            vec[:, R2] = vec[:, R] * u(1.0, 1.2)
            vec[:, S] = 0.0
            centre_ms[R], centre_ms[R2] = -0.17 * wide_ms, 0.17 * wide_ms
            sigma_ms[R] = sigma_ms[R2] = 0.11 * wide_ms
            centre_ms[QSEP] = -0.42 * wide_ms
            vec[:, ST] = -u(0.05, 0.12) * lbbb
            vec[:, T] = -u(0.2, 0.35) * lbbb
            axis_deg -= u(0.0, 15.0)
    elif label == "HYP":
        # The thick left ventricle both enlarges the QRS vector and swings it leftward-posterior, which
        # is why the chest leads (S in V1, R in V5-V6) show it more than the limb leads.
        vec[:, [R, S]] = _rotation(0.0, -u(15.0, 30.0)) @ (vec[:, [R, S]] * u(1.9, 2.5))
        axis_deg -= u(10.0, 30.0)
        if rng.random() < 0.5:  # strain: repolarisation turns away from the thick wall
            vec[:, ST] = -u(0.04, 0.1) * r_dir
            vec[:, T] = -u(0.2, 0.4) * r_dir
    elif label != "NORM":
        raise DataError(f"unknown superclass {label!r}")

    # PR runs from P onset to QRS onset; the P wave lasts ~100 ms (+/-2.5 sigma).
    centre_ms[P], sigma_ms[P] = onset_ms - pr_ms + 50.0 * width_scale, 20.0 * width_scale
    centre_ms[T] = onset_ms + qt_ms - 2.5 * t_sigma_ms[1]
    sigma_ms[T] = t_sigma_ms
    j_ms = end_ms + 5.0
    centre_ms[ST], sigma_ms[ST] = j_ms, (6.0, 0.5 * t_sigma_ms[1])
    vec_mv = _rotation(axis_deg, horiz_deg) @ vec * u(0.8, 1.2)
    return _Morphology(vec_mv, centre_ms / 1e3, sigma_ms / 1e3, j_ms / 1e3)


def _beats(duration_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R-peak times (s), RR^(1/3) repolarisation warps and respiratory amplitude gains, per beat."""
    rr0_s = 60.0 / rng.uniform(50.0, 100.0)
    n = int(np.ceil(duration_s / (0.8 * rr0_s))) + 4
    resp_hz, resp_phase = rng.uniform(0.15, 0.4), rng.uniform(0.0, 2 * np.pi)
    resp = np.sin(2 * np.pi * resp_hz * rr0_s * np.arange(n) + resp_phase)
    rr_s = rr0_s * (1.0 + rng.uniform(0.02, 0.04) * resp + 0.01 * rng.standard_normal(n))
    rr_s = np.maximum(rr_s, 0.3)
    # Start one to two beats before t = 0 (random phase) so that every sample has a preceding beat.
    r_s = -(1.0 + rng.uniform()) * rr0_s + np.concatenate(([0.0], np.cumsum(rr_s[:-1])))
    warp = np.concatenate(([rr0_s], rr_s[:-1])) ** (1.0 / 3.0)
    gain = 1.0 + rng.uniform(0.02, 0.06) * resp
    return r_s, warp, gain


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * x)  # the tanh form cannot overflow


def _basis(
    t_s: np.ndarray, r_s: np.ndarray, warp: np.ndarray, gain: np.ndarray, m: _Morphology
) -> np.ndarray:
    """(8, T) wave time courses, summing the two beats around each sample (the only ones that reach it)."""
    # float32 halves the cost of the exponentials; times within a beat need only ~1 us resolution.
    centre, sigma = m.centre_s.astype(np.float32), m.sigma_s.astype(np.float32)
    inv_rise, inv_fall = 1.0 / sigma[_DEPOL, 0, None], 1.0 / sigma[_DEPOL, 1, None]
    j_s = np.float32(m.j_s)
    st_end_s = centre[T] + sigma[T, 1]
    out = np.zeros((_N_WAVES, t_s.size), dtype=np.float32)
    nxt = np.searchsorted(r_s, t_s)
    for beat in (nxt - 1, nxt):
        tau = (t_s - r_s[beat]).astype(np.float32)
        g = gain[beat].astype(np.float32)
        dz = tau - centre[_DEPOL, None]
        dz *= np.where(dz < 0, inv_rise, inv_fall)
        out[_DEPOL] += g * np.exp(-0.5 * dz * dz)
        tau_rep = j_s + (tau - j_s) / warp[beat].astype(np.float32)
        dz_t = tau_rep - centre[T]
        dz_t /= np.where(dz_t < 0, sigma[T, 0], sigma[T, 1])
        out[T] += g * np.exp(-0.5 * dz_t * dz_t)
        st = _sigmoid((tau_rep - centre[ST]) / sigma[ST, 0]) * _sigmoid((st_end_s - tau_rep) / sigma[ST, 1])
        out[ST] += g * st
    return out


def generate_synthetic(n_records: int, fs: float, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (X, y): X float32 (n_records, 12, n_samples) in millivolts, standard lead order
    I, II, III, aVR, aVL, aVF, V1..V6; y int64 (n_records,) indexing
    SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP").

    Deterministic in its arguments: the same call returns bit-identical arrays. Classes are balanced
    (round-robin, then shuffled).
    """
    if n_records < 0 or fs <= 0 or n_samples <= 0:
        raise DataError(f"need n_records >= 0, fs > 0 and n_samples > 0, got {n_records}, {fs}, {n_samples}")
    duration_s = n_samples / fs
    if duration_s < 2.0:
        raise DataError(f"synthetic records must last at least 2 s, got {duration_s:.3f} s")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n_records) % len(SUPERCLASSES)).astype(np.int64)
    X = np.empty((n_records, len(STANDARD_LEADS), n_samples), dtype=np.float32)
    t_s = np.arange(n_samples) / fs
    for i, label in enumerate(y):
        m = _morphology(SUPERCLASSES[label], rng)
        basis = _basis(t_s, *_beats(duration_s, rng), m)
        channels = _AXES @ (m.vec_mv @ basis)  # (8, T): I, II, V1..V6
        # Wander: three slow (< 0.5 Hz) sinusoids shared by all electrodes (breathing, movement), each
        # with its own amplitude and phase per channel; written as sin/cos pairs to evaluate only six.
        arg = (2 * np.pi * rng.uniform(0.05, 0.5, size=(3, 1)) * t_s).astype(np.float32)
        amp_mv = rng.uniform(0.015, 0.05, size=(8, 3))
        phase = rng.uniform(0.0, 2 * np.pi, size=(8, 3))
        mix = np.concatenate((amp_mv * np.cos(phase), amp_mv * np.sin(phase)), axis=1)
        channels += mix @ np.concatenate((np.sin(arg), np.cos(arg)))
        channels += rng.uniform(0.01, 0.03) * rng.standard_normal((8, n_samples), dtype=np.float32)
        X[i] = _TO_LEADS @ channels
    return X, y
