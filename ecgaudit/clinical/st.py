"""ST deviation measured as a cardiologist (and an electrocardiograph) measures it.

Per record: R peaks, a median beat per lead, one global delineation of that beat (QRS onset and J point from all
12 leads together), then per lead the ST deviation at the J point and at J + 60 ms against the PR-segment
baseline. A record and its adversarial twin share their heartbeats: the R peaks and the fiducial points (PR
window, QRS onset, J point) are found on the clean record and the adversarial median beat is read at the same
points. A 0.1–0.2 mV perturbation does not move the ventricles' depolarisation, but it does pull a velocity
threshold: delineated on its own, the adversarial beat's J point moved by more than 20 ms (up to 127 ms, into
the T wave) in 9 of 60 records under band-limited SCAR on the bundled CNN, and could not be found in 16 more.

Libraries. R peaks come from `neurokit2` (`ecg_clean` + `ecg_findpeaks`, method "neurokit", Makowski et al.
2021). `wfdb.processing` was the other candidate: on the 50 PhysioNet Challenge 2021 records (500 Hz) its XQRS
took 57 ms per record against neurokit2's 8 ms, and after decimation to 100 Hz its peaks matched its own 500 Hz
peaks (within 30 ms) in 1 of 50 records, neurokit2's in 45 (the 5 others are arrhythmic Ningbo records).
Neither library delineates a median beat: neurokit2's `ecg_delineate` (DWT) works on raw beats of one lead,
took 225 ms per lead and record (about 18 minutes for 200 records × 12 leads, clean and adversarial) and put
P offsets after QRS onsets on our synthetic beats; wfdb has no delineator. So the delineation here is the
multi-lead method of computerised ECG programs: QRS onset and end (the J point) are where the spatial velocity
of the 12-lead median beat, √Σ(dV/dt)², crosses a fraction of its QRS peak, interpolated between samples.
It is offset-free by construction (only derivatives locate the points), and the PR baseline is a mean, so a
DC offset moves the baseline and the ST level alike and changes no deviation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BEAT_PRE_MS = 250.0
"""Median-beat window before the R peak: room for a PR interval of up to ~200 ms and its baseline."""
BEAT_POST_MS = 450.0
"""Median-beat window after the R peak: past the J point + 60 ms of a wide QRS and through most of the T wave."""
VELOCITY_FRACTION = 0.08
"""QRS onset / J point: where the spatial velocity crosses this share of its QRS peak."""
DERIVATIVE_MS = 10.0
"""Half-width of the central difference for the spatial velocity (a 20 ms difference at any fs)."""
MIN_BEATS = 3
"""Fewer complete beats than this and a record is not measured (its median would be one or two beats)."""
J_PLUS_MS = 60.0
PR_WINDOW_MS = 20.0
"""Length of the PR baseline window: the flattest 20 ms in the 80 ms before QRS onset."""
PR_SEARCH_MS = 80.0
DETECTION_LEADS: tuple[str, ...] = ("II", "V5", "I", "aVF", "V2", "V6")
"""Leads tried in turn for R peaks; the first with a plausible rhythm (≥ 3 beats, 30–240 bpm) is used."""


Fiducials = tuple[float, float, tuple[int, int]]
"""(QRS onset, J point, PR window) in median-beat samples, as `delineate` returns them."""


@dataclass(frozen=True)
class BeatMeasurement:
    """One record's median beat and where it was measured. Sample positions are fractional, in the median beat
    (`r_index` is the R peak); levels are mV per lead."""

    fs: float
    median_beat: np.ndarray
    """(L, W) mV."""
    r_index: int
    qrs_onset: float
    j_point: float
    pr_window: tuple[int, int]
    """[start, end) samples of the PR baseline window."""
    baseline_mv: np.ndarray
    st_j_mv: np.ndarray
    """ST deviation at the J point: level there minus the PR baseline, per lead."""
    st_j60_mv: np.ndarray

    def ms(self, sample: float) -> float:
        """A position in the median beat as ms from the R peak."""
        return float((sample - self.r_index) * 1000.0 / self.fs)

    def to_dict(self, leads: Sequence[str]) -> dict[str, Any]:
        """JSON-able: times in ms from the R peak, levels in mV per lead."""
        return {
            "qrs_onset_ms": self.ms(self.qrs_onset),
            "j_point_ms": self.ms(self.j_point),
            "j60_ms": self.ms(self.j_point) + J_PLUS_MS,
            "pr_baseline_ms": [self.ms(self.pr_window[0]), self.ms(self.pr_window[1])],
            "per_lead": {lead: {"baseline_mv": float(b), "st_j_mv": float(j), "st_j60_mv": float(j60)}
                         for lead, b, j, j60 in zip(leads, self.baseline_mv, self.st_j_mv, self.st_j60_mv)},
        }


def _plausible(peaks: np.ndarray, fs: float) -> bool:
    if len(peaks) < MIN_BEATS:
        return False
    rr_s = float(np.median(np.diff(peaks))) / fs
    return 0.25 <= rr_s <= 2.0


def detect_r_peaks(x_mv: np.ndarray, fs: float, leads: Sequence[str]) -> np.ndarray:
    """R-peak sample indices of one record `(L, T)` mV (neurokit2); empty when no lead gives a plausible rhythm."""
    import warnings

    import neurokit2 as nk

    order = [list(leads).index(lead) for lead in DETECTION_LEADS if lead in leads] + list(range(len(leads)))
    for i in dict.fromkeys(order):
        signal = np.asarray(x_mv[i], dtype=np.float64)
        if not np.ptp(signal) > 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # neurokit2 warns on short or 100 Hz records; the check below decides
            try:
                cleaned = nk.ecg_clean(signal, sampling_rate=int(round(fs)))
                peaks = np.asarray(nk.ecg_findpeaks(cleaned, sampling_rate=int(round(fs)))["ECG_R_Peaks"], int)
            except (ValueError, IndexError, ZeroDivisionError):
                continue
        if _plausible(peaks, fs):
            return peaks
    return np.zeros(0, dtype=int)


def beat_window(fs: float) -> tuple[int, int]:
    """Samples before and after the R peak in a median beat."""
    return int(round(BEAT_PRE_MS * fs / 1000.0)), int(round(BEAT_POST_MS * fs / 1000.0))


def median_beat(x_mv: np.ndarray, r_peaks: np.ndarray, fs: float) -> np.ndarray | None:
    """The sample-wise median over complete beats, `(L, pre + post + 1)`, R at index `pre`; None when fewer
    than `MIN_BEATS` beats fit in the record."""
    pre, post = beat_window(fs)
    keep = r_peaks[(r_peaks >= pre) & (r_peaks + post < x_mv.shape[-1])]
    if len(keep) < MIN_BEATS:
        return None
    index = keep[:, None] + np.arange(-pre, post + 1)[None, :]  # (B, W)
    return np.median(x_mv[:, index], axis=1)  # (L, W)


def _spatial_velocity(beat: np.ndarray, fs: float) -> np.ndarray:
    k = max(1, int(round(DERIVATIVE_MS * fs / 1000.0)))
    d = np.zeros_like(beat, dtype=np.float64)
    d[:, k:-k] = (beat[:, 2 * k:] - beat[:, :-2 * k]) * fs / (2 * k)
    return np.sqrt((d**2).sum(axis=0))


def _crossing(sv: np.ndarray, inside: int, outside: int, threshold: float) -> float:
    """Fractional position between samples `inside` (≥ threshold) and `outside` (< threshold) where sv crosses."""
    a, b = sv[inside], sv[outside]
    frac = (a - threshold) / (a - b) if a != b else 0.0
    return inside + frac * (outside - inside)


def delineate(beat: np.ndarray, fs: float) -> Fiducials | None:
    """(QRS onset, J point, PR window) of a median beat `(L, W)` with R at `beat_window(fs)[0]`; None when the
    QRS cannot be found (no velocity, or a QRS that runs off the window)."""
    pre, _ = beat_window(fs)
    sv = _spatial_velocity(beat, fs)
    ms = fs / 1000.0
    core = slice(max(0, pre - int(60 * ms)), pre + int(60 * ms) + 1)
    peak = core.start + int(np.argmax(sv[core]))
    if not sv[peak] > 0:
        return None
    threshold = VELOCITY_FRACTION * sv[peak]
    gap = max(1, int(round(20 * ms)))  # dips shorter than 20 ms (an R or S apex) stay inside the QRS
    low, high = max(1, pre - int(150 * ms)), min(len(sv) - 2, pre + int(200 * ms))
    start = peak
    while start - 1 >= low:
        back = sv[max(low, start - gap):start]
        above = np.flatnonzero(back >= threshold)
        if not len(above):
            break
        start = max(low, start - gap) + int(above[0])
    end = peak
    while end + 1 <= high:
        ahead = sv[end + 1:min(high, end + gap) + 1]
        above = np.flatnonzero(ahead >= threshold)
        if not len(above):
            break
        end = end + 1 + int(above[-1])
    if start <= low or end >= high:
        return None
    onset = _crossing(sv, start, start - 1, threshold)
    j_point = _crossing(sv, end, end + 1, threshold)
    width = max(2, int(round(PR_WINDOW_MS * ms)))
    first = max(0, int(np.floor(onset)) - int(round(PR_SEARCH_MS * ms)))
    last = int(np.floor(onset)) - width + 1  # the window ends at or before QRS onset
    if last < first:
        return None
    starts = np.arange(first, last + 1)
    csum = np.concatenate(([0.0], np.cumsum(sv)))
    flattest = int(starts[np.argmin(csum[starts + width] - csum[starts])])
    return onset, j_point, (flattest, flattest + width)


def _level(beat: np.ndarray, position: float) -> np.ndarray:
    i = min(int(np.floor(position)), beat.shape[1] - 2)
    frac = position - i
    return beat[:, i] * (1 - frac) + beat[:, i + 1] * frac


def measure_beat(x_mv: np.ndarray, fs: float, r_peaks: np.ndarray, fiducials: Fiducials | None = None
                 ) -> BeatMeasurement | None:
    """Median beat and ST deviation of one record `(L, T)` mV, at `fiducials` when given (those of its clean
    twin), else at its own delineation; None when it cannot be measured."""
    beat = median_beat(np.asarray(x_mv, dtype=np.float64), r_peaks, fs)
    if beat is None:
        return None
    points = delineate(beat, fs) if fiducials is None else fiducials
    if points is None:
        return None
    onset, j_point, pr = points
    j60 = j_point + J_PLUS_MS * fs / 1000.0
    if j60 > beat.shape[1] - 1:
        return None
    baseline = beat[:, pr[0]:pr[1]].mean(axis=1)
    return BeatMeasurement(fs, beat, beat_window(fs)[0], onset, j_point, pr, baseline,
                           _level(beat, j_point) - baseline, _level(beat, j60) - baseline)


@dataclass(frozen=True)
class StDeviations:
    """ST deviation per record and lead, NaN where a record could not be measured."""

    st_j_mv: np.ndarray
    """(N, L) mV."""
    st_j60_mv: np.ndarray

    fiducials: tuple[Fiducials | None, ...]
    """Per record, the points it was read at (None where not measured)."""

    @property
    def measured(self) -> np.ndarray:
        return ~np.isnan(self.st_j_mv).any(axis=1)


def st_deviations(x_mv: np.ndarray, fs: float, r_peaks: Sequence[np.ndarray],
                  fiducials: Sequence[Fiducials | None] | None = None) -> StDeviations:
    """ST deviation at J and J + 60 ms of every record `(N, L, T)` mV, given each record's R peaks, read at
    `fiducials` (one per record, e.g. the clean twins' `StDeviations.fiducials`) or at each record's own."""
    n, n_leads, _ = x_mv.shape
    st_j = np.full((n, n_leads), np.nan)
    st_j60 = np.full((n, n_leads), np.nan)
    points: list[Fiducials | None] = [None] * n
    for i in range(n):
        given = None if fiducials is None else fiducials[i]
        if fiducials is not None and given is None:
            continue
        m = measure_beat(x_mv[i], fs, r_peaks[i], given)
        if m is not None:
            st_j[i], st_j60[i] = m.st_j_mv, m.st_j60_mv
            points[i] = (m.qrs_onset, m.j_point, m.pr_window)
    return StDeviations(st_j, st_j60, tuple(points))


def record_fiducials(x_clean_mv: np.ndarray, delta_mv: np.ndarray, fs: float, leads: Sequence[str]
                     ) -> dict[str, Any] | None:
    """What the PDF's zoomed beat needs for one record `(L, T)`: the clean and adversarial median beats (mV, time
    axis in ms from the R peak) and, for each, the PR baseline window, QRS onset, J point, J + 60 ms (the same
    points for both) and the ST deviations per lead. None when the record cannot be measured."""
    r_peaks = detect_r_peaks(x_clean_mv, fs, leads)
    clean = measure_beat(x_clean_mv, fs, r_peaks)
    if clean is None:
        return None
    adversarial = measure_beat(np.asarray(x_clean_mv) + np.asarray(delta_mv), fs, r_peaks,
                               (clean.qrs_onset, clean.j_point, clean.pr_window))
    if adversarial is None:
        return None
    times = [clean.ms(i) for i in range(clean.median_beat.shape[1])]
    return {
        "fs": float(fs), "leads": list(leads), "r_peaks": [int(r) for r in r_peaks], "time_ms": times,
        "clean": {**clean.to_dict(leads), "median_beat_mv": clean.median_beat.tolist()},
        "adversarial": {**adversarial.to_dict(leads), "median_beat_mv": adversarial.median_beat.tolist()},
    }
