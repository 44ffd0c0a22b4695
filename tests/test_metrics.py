from __future__ import annotations

import numpy as np
import pytest

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
