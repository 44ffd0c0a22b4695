"""ST deviation measured against the PR baseline, at any rate, and the MI criteria it feeds."""

from __future__ import annotations

import numpy as np
import pytest

from ecgaudit.clinical.criteria import cut_points_mv, meets_st_elevation
from ecgaudit.clinical.measure import clinical_metrics, front_end_highpass, st_change
from ecgaudit.clinical.st import detect_r_peaks, measure_beat, record_fiducials
from ecgaudit.leads import STANDARD_LEADS

V2, V3 = STANDARD_LEADS.index("V2"), STANDARD_LEADS.index("V3")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def beat_train(fs: float, *, st_shift_mv: float = 0.0, n_records: int = 3, seed: int = 0) -> np.ndarray:
    """10 s records `(N, 12, T)` of Gaussian P, Q, R, S, T waves (isoelectric ST), with an ST shift from the
    terminal QRS to the end of T in V2 and V3: full height (99%) at the J point, 60 ms after QRS end."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(10 * fs)) / fs
    out = np.zeros((n_records, 12, t.size))
    waves = {"P": (-0.16, 0.02, (0.05, 0.15)), "Q": (-0.025, 0.008, (-0.15, 0.0)), "R": (0.0, 0.01, (0.3, 1.5)),
             "S": (0.03, 0.01, (-0.8, -0.1)), "T": (0.28, 0.05, (0.1, 0.4))}
    for n in range(n_records):
        rr = 60 / rng.uniform(55, 90)
        for r in np.arange(0.4, 10.0, rr):
            tau = t - r
            for centre, sigma, (lo, hi) in waves.values():
                amp = rng.uniform(lo, hi, size=(12, 1))
                out[n] += amp * np.exp(-0.5 * ((tau - centre) / sigma) ** 2)
            shift = st_shift_mv * _sigmoid((tau - 0.045) / 0.004) * _sigmoid((0.40 - tau) / 0.02)
            out[n, [V2, V3]] += shift
        out[n] += 0.01 * rng.standard_normal(out[n].shape)
    return out.astype(np.float32)


@pytest.mark.parametrize(("fs", "shift"), [(100.0, 0.15), (500.0, 0.15), (500.0, -0.1)])
def test_a_known_st_shift_in_v2_v3_is_measured_within_20_microvolts(fs: float, shift: float) -> None:
    clean, shifted = beat_train(fs), beat_train(fs, st_shift_mv=shift)
    for x0, x1 in zip(clean, shifted):
        peaks = detect_r_peaks(x0, fs, STANDARD_LEADS)
        before = measure_beat(x0, fs, peaks)
        assert before is not None
        after = measure_beat(x1, fs, peaks, (before.qrs_onset, before.j_point, before.pr_window))
        assert before is not None and after is not None
        change = after.st_j_mv - before.st_j_mv
        assert change[[V2, V3]] == pytest.approx([shift, shift], abs=0.02)
        own = measure_beat(x1, fs, peaks)  # delineated on its own, the shifted record reads the same
        assert own is not None and (own.st_j_mv - before.st_j_mv)[[V2, V3]] == pytest.approx([shift] * 2, abs=0.02)
        assert np.abs(np.delete(change, [V2, V3])).max() < 0.02
        # the clean ST is isoelectric: the absolute deviation is read against the PR baseline, not against 0 mV
        assert np.abs(before.st_j_mv).max() < 0.03
        # QRS end of these beats is ~60 ms after R (S at +30 ms, sigma 10 ms)
        assert 40 <= before.ms(before.j_point) <= 80


def test_a_pure_dc_offset_changes_no_st_deviation() -> None:
    from ecgaudit.data.synthetic import generate_synthetic

    x, _ = generate_synthetic(4, 500.0, 5000, 2)
    offset = np.random.default_rng(3).uniform(-0.2, 0.2, size=(12, 1)).astype(np.float32)
    result = st_change(x, np.broadcast_to(offset, (12, 5000)), 500.0, STANDARD_LEADS)
    assert result["n_measured"] == 4
    changes = [abs(row[key]) for row in result["per_lead"].values() for key in ("change_j_mv", "change_j60_mv")]
    assert max(changes) < 1e-5
    # and the same offset is not invisible to the rest of the bundle: it is all power below 0.5 Hz
    bundle = clinical_metrics(x, np.broadcast_to(offset, (12, 5000)), 500.0, STANDARD_LEADS)
    assert bundle["power_below_0p5_hz"] > 0.99


def test_mi_criteria_use_the_v2_v3_cut_point_for_sex_and_age() -> None:
    assert cut_points_mv(STANDARD_LEADS, "F", 30)[V2] == 0.15
    assert cut_points_mv(STANDARD_LEADS, "M", 30)[V2] == 0.25
    assert cut_points_mv(STANDARD_LEADS, "M", 65)[V3] == 0.2
    assert cut_points_mv(STANDARD_LEADS, None, None)[V3] == 0.2
    st = np.zeros((5, 12))
    st[0, [V2, V3]] = 0.18                                    # women: yes; men ≥ 40 / unknown: no
    st[1, [STANDARD_LEADS.index("II"), STANDARD_LEADS.index("aVF")]] = 0.1   # inferior: yes for all
    st[2, [STANDARD_LEADS.index("aVR"), STANDARD_LEADS.index("I")]] = 0.3    # aVR is in no group: no
    st[3, [STANDARD_LEADS.index("V1"), V3]] = 0.3             # V1 and V3 are not neighbours: no
    st[4, V2] = 0.5                                           # one lead: no
    assert meets_st_elevation(st, STANDARD_LEADS, "F", 50).tolist() == [True, True, False, False, False]
    assert meets_st_elevation(st, STANDARD_LEADS).tolist() == [False, True, False, False, False]
    per_record = meets_st_elevation(st[:2], STANDARD_LEADS, ["F", "M"], [50, 50])
    assert per_record.tolist() == [True, True]


def test_newly_met_criteria_count_forged_st_elevation_only() -> None:
    fs = 250.0
    clean = beat_train(fs, n_records=4, seed=1)
    forged = beat_train(fs, st_shift_mv=0.18, n_records=4, seed=1)
    women = st_change(clean, forged - clean, fs, STANDARD_LEADS, sex="F", age=55)["mi_criteria"]
    assert women["newly_met"]["successes"] == 4 and women["clean_met"] == 0
    default = st_change(clean, forged - clean, fs, STANDARD_LEADS)["mi_criteria"]
    assert default["newly_met"]["successes"] == 0 and "unknown" in default["rule"]


def test_front_end_highpass_removes_an_offset_and_keeps_the_qrs_band() -> None:
    fs = 500.0
    t = np.arange(5000) / fs
    offset_plus_tone = 0.2 + 0.05 * np.sin(2 * np.pi * 10 * t)
    for cutoff in (0.05, 0.5):
        out = front_end_highpass(offset_plus_tone[None], fs, cutoff)[0]
        assert abs(out.mean()) < 1e-3
        assert np.std(out) == pytest.approx(0.05 / np.sqrt(2), rel=0.02)


def test_fooling_after_highpass_runs_on_a_decision_callable() -> None:
    from ecgaudit.clinical.measure import fooling_after_highpass

    def predict(x: np.ndarray) -> np.ndarray:  # a "model" that reads the mean level of lead I
        m = x[:, 0].mean(axis=1)
        return np.stack([m, -m], axis=1)

    def decide(p: np.ndarray) -> np.ndarray:
        return p.argmax(axis=1)

    x = np.full((6, 12, 1000), -0.05, np.float32)
    result = fooling_after_highpass(x, np.full((12, 1000), 0.1, np.float32), 100.0, predict, decide)
    assert result["unfiltered"]["value"] == 1.0
    assert [h["fooling_rate"]["value"] for h in result["highpass"]] == [0.0, 0.0]


def test_record_fiducials_give_the_points_the_pdf_marks() -> None:
    fs = 500.0
    clean = beat_train(fs, n_records=1)[0]
    forged = beat_train(fs, st_shift_mv=0.15, n_records=1)[0]
    fid = record_fiducials(clean, forged - clean, fs, STANDARD_LEADS)
    assert fid is not None
    pr0, pr1 = fid["clean"]["pr_baseline_ms"]
    assert pr0 < pr1 <= fid["clean"]["qrs_onset_ms"] < 0 < fid["clean"]["j_point_ms"] < fid["clean"]["j60_ms"]
    assert fid["adversarial"]["per_lead"]["V2"]["st_j_mv"] == pytest.approx(0.15, abs=0.03)
    assert len(fid["time_ms"]) == len(fid["clean"]["median_beat_mv"][0])
