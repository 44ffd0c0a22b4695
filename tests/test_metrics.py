from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ecgaudit.metrics import binary_auc, misdiagnosis, power_fraction_below, snr_db, ssim_1d, wilson


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (3, 7), (0, 1), (1, 1), (500, 1000)])
def test_wilson_interval_contains_the_estimate_and_stays_in_unit_range(k: int, n: int) -> None:
    rate = wilson(k, n)
    assert 0.0 <= rate.ci95[0] <= rate.value <= rate.ci95[1] <= 1.0
    assert rate.ci95[1] - rate.ci95[0] < 1.0


def test_wilson_matches_the_textbook_value() -> None:
    # 8/10: Wilson 95% interval is (0.490, 0.943)
    low, high = wilson(8, 10).ci95
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)


def test_auc_is_one_for_perfect_and_half_for_ties() -> None:
    assert binary_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert binary_auc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([0, 1, 0, 1])) == 0.5


def test_snr_and_ssim_behave_at_the_extremes() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 12, 1000)).astype(np.float32)
    assert snr_db(x, np.full((12, 1000), 0.1, np.float32)) == pytest.approx(20.0, abs=0.3)
    assert ssim_1d(x, x, 500.0) == pytest.approx(1.0)
    assert ssim_1d(x, x + rng.normal(size=x.shape), 500.0) < 0.9


def test_power_fraction_separates_slow_from_fast_perturbations() -> None:
    fs = 500.0
    t = np.arange(5000) / fs
    slow = np.tile(0.1 * np.sin(2 * np.pi * 2 * t), (12, 1))
    fast = np.tile(0.1 * np.sin(2 * np.pi * 60 * t), (12, 1))
    assert power_fraction_below(slow, fs, 15.0) > 0.99
    assert power_fraction_below(fast, fs, 15.0) < 0.01


def test_misdiagnosis_counts_where_changed_records_land() -> None:
    classes = ("NORM", "MI", "STTC")
    result = misdiagnosis(np.array([0, 0, 0, 2, 1]), np.array([1, 1, 0, 1, 1]), classes)
    assert result["matrix"] == [[0, 2, 0], [0, 0, 0], [0, 1, 0]]
    assert result["n_changed"] == 3 and result["top_target"] == "MI" and result["top_target_share"] == 1.0


def _band_limited_record_at(fs: float) -> np.ndarray:
    """One synthetic 12-lead record, low-passed at 35 Hz at 500 Hz and decimated, so both rates hold the same
    signal (a 100 Hz record cannot carry content above 50 Hz)."""
    from scipy.signal import butter, resample_poly, sosfiltfilt

    from ecgaudit.data.synthetic import generate_synthetic

    x, _ = generate_synthetic(4, 500.0, 5000, 3)
    x = sosfiltfilt(butter(4, 35.0, fs=500.0, output="sos"), x, axis=-1)
    return resample_poly(x, int(fs), 500, axis=-1).astype(np.float32) if fs != 500 else x.astype(np.float32)


def _smooth_perturbation_at(fs: float, n_samples: int) -> np.ndarray:
    t = np.arange(n_samples) / fs
    phase = np.random.default_rng(1).uniform(0, 2 * np.pi, (12, 3, 1))
    parts = [a * np.sin(2 * np.pi * f * t + phase[:, k]) for k, (a, f) in enumerate(((0.05, 1.3), (0.04, 3.1),
                                                                                      (0.03, 7.0)))]
    return np.sum(parts, axis=0).astype(np.float32)


def test_ssim_of_the_same_signal_is_the_same_at_100_and_500_hz() -> None:
    scores = {}
    for fs, n in ((100.0, 1000), (500.0, 5000)):
        x = _band_limited_record_at(fs)
        scores[fs] = ssim_1d(x, x + _smooth_perturbation_at(fs, n), fs)
    assert scores[500.0] < 0.99  # the perturbation is visible: the check below is not two scores of 1
    assert abs(scores[100.0] - scores[500.0]) < 0.02


def test_per_lead_rms_does_not_grow_with_the_rate() -> None:
    from ecgaudit.metrics import per_lead_norms

    leads = tuple(f"L{i}" for i in range(12))
    norms = {fs: per_lead_norms(_smooth_perturbation_at(fs, int(10 * fs)), leads) for fs in (100.0, 500.0)}
    rms_100, rms_500 = (np.array([v["rms_mv"] for v in norms[fs].values()]) for fs in (100.0, 500.0))
    assert np.allclose(rms_100, rms_500, rtol=0.01)
    # three sinusoids of 0.05, 0.04 and 0.03 mV: RMS = sqrt(sum a²/2)
    assert rms_500[0] == pytest.approx(np.sqrt((0.05**2 + 0.04**2 + 0.03**2) / 2), rel=0.02)


def test_top_targets_show_ties_instead_of_picking_one() -> None:
    classes = ("NORM", "MI", "STTC")
    result = misdiagnosis(np.array([0, 0, 0, 0]), np.array([1, 2, 0, 0]), classes)
    assert result["top_targets"] == ["MI", "STTC"] and result["top_target_share"] == 0.5
    assert result["per_label"]["NORM"] == {"gained": 0, "lost": 2, "clean_positive": 4}
    assert misdiagnosis(np.array([0, 1]), np.array([0, 1]), classes)["top_targets"] == []


class _LeadSignModel(torch.nn.Module):
    """Multi-label: label k is on when lead k's mean is positive (probability = sigmoid(20·mean))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(20.0 * x[:, :5, :].mean(dim=2))


def test_multilabel_table_counts_records_per_label_on_a_model_with_a_known_answer(tmp_path: Path) -> None:
    import json

    from ecgaudit.attacks.measure import measure
    from ecgaudit.data.interface import EcgDataset
    from ecgaudit.evaluation import evaluate_clean
    from ecgaudit.leads import STANDARD_LEADS
    from ecgaudit.models import load_model

    classes = ["NORM", "MI", "STTC", "CD", "HYP"]
    path = tmp_path / "signs.pt"
    torch.jit.trace(_LeadSignModel(), torch.zeros(1, 12, 200)).save(str(path))
    path.with_suffix(".card.json").write_text(json.dumps({
        "fs": 100, "n_samples": 200, "leads": list(STANDARD_LEADS), "layout": "NCT", "scaling": {"kind": "none"},
        "classes": classes, "output": "sigmoid", "thresholds": 0.5}))
    model = load_model(path)
    # lead means (leads 0-4 decide the labels); the perturbation adds -1 mV to leads 0 and 1, +1 mV to 2 and 3
    means = np.array([[0.5, 0.5, -0.5, -0.5, 0.5],    # loses NORM, MI; gains STTC, CD: 2 lost x 2 gained
                      [0.5, -2.0, -0.5, 0.5, -0.5],   # loses NORM; gains STTC
                      [-2.0, -2.0, 2.0, 2.0, 0.5],    # unchanged
                      [0.5, 0.5, -2.0, -0.5, -0.5]])  # loses NORM, MI; gains CD
    x = np.zeros((4, 12, 200), np.float32)
    x[:, :5, :] = means[:, :, None]
    delta = np.zeros((12, 200), np.float32)
    delta[:2], delta[2:4] = -1.0, 1.0
    data = EcgDataset(X=x, fs=100.0, leads=STANDARD_LEADS, record_ids=tuple("abcd"), labels=None, classes=None,
                      source="test", manifest=tuple((r, "0" * 64) for r in "abcd"))
    mis = measure(model, data, evaluate_clean(model, data), delta, cutoff_hz=None)["misdiagnosis"]
    assert mis["n_changed"] == 3 and mis["matrix"] == []
    table = {label: (row["gained"], row["lost"]) for label, row in mis["per_label"].items()}
    assert table == {"NORM": (0, 3), "MI": (0, 2), "STTC": (2, 0), "CD": (2, 0), "HYP": (0, 0)}
    assert mis["top_targets"] == ["STTC", "CD"] and mis["top_target_share"] == pytest.approx(2 / 3)


def test_a_decision_changes_when_the_class_or_any_label_does() -> None:
    from ecgaudit.metrics import decisions_changed

    assert decisions_changed(np.array([0, 2, 1]), np.array([0, 1, 1])).tolist() == [False, True, False]
    before = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]], bool)
    after = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]], bool)
    assert decisions_changed(before, after).tolist() == [False, True, True]


def test_each_fooling_rate_comes_with_the_harm_it_did() -> None:
    """Issue 22: on cnn-hybridat every record the transferred SCAR 'fooled' was already misclassified (0 of 182
    correct decisions changed); the fooling rate alone hid that. Counted here on a hand-made case."""
    import numpy as np

    from ecgaudit.attacks import build_attack
    from ecgaudit.attacks.harness import measure_outcome
    from ecgaudit.attacks.interface import PerSampleAttack
    from ecgaudit.data import load_dataset
    from ecgaudit.evaluation import evaluate_clean
    from ecgaudit.models import load_model
    from tests.conftest import MODELS

    model = load_model(MODELS / "cnn-ml100.onnx")
    c = model.card
    data = load_dataset("builtin:synthetic:n=12,seed=1", fs=c.fs, n_samples=c.n_samples, leads=c.leads)
    clean = evaluate_clean(model, data)
    attack = build_attack("pgd", fs=c.fs, leads=c.leads, params={"eps_mv": 3.0})
    assert isinstance(attack, PerSampleAttack)
    delta = np.random.default_rng(0).uniform(-3, 3, data.X.shape).astype(np.float32)
    outcome = measure_outcome(attack, model, data, clean, delta, n_craft=0, craft_seconds=0.0)
    harm = outcome.metrics["harm"]
    after = model.decide(model.predict(data.X + delta))
    correct_after = np.all(after == clean.labels.astype(bool), axis=1)
    changed = np.any(after != clean.decisions, axis=1)
    assert harm["n_correct"] == int(clean.correct.sum()) and harm["n_wrong"] == len(data.X) - harm["n_correct"]
    assert harm["correct_made_wrong"] == int((clean.correct & ~correct_after).sum())
    assert harm["wrong_changed"] == int((~clean.correct & changed).sum())
    assert harm["correct_made_wrong"] + harm["wrong_changed"] <= outcome.metrics["fooling_rate"]["successes"]
