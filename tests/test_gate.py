"""The gate's baseline comparison: the change of each rule's metric with its interval, improvement or worsening."""

from __future__ import annotations

import pytest

from ecgaudit.metrics import wilson
from ecgaudit.report.gate import difference_interval, regressions


def _interval(successes: int, total: int) -> tuple[float, list[float]]:
    rate = wilson(successes, total)
    return rate.value, list(rate.ci95)


def test_difference_interval_matches_newcombes_worked_example() -> None:
    # Newcombe (1998), Stat Med 17:873, Table II, example (a): 56/70 vs 48/80, method 10: 0.0524 to 0.3339.
    new, new_ci = _interval(56, 70)
    old, old_ci = _interval(48, 80)
    change = difference_interval(new, new_ci, old, old_ci)
    assert change is not None
    assert change["difference"] == pytest.approx(0.2)
    assert change["ci95"][0] == pytest.approx(0.0524, abs=5e-4)
    assert change["ci95"][1] == pytest.approx(0.3339, abs=5e-4)


def _report(fooling: tuple[int, int], accuracy: tuple[int, int]) -> dict:
    return {"profile": {"name": "p"}, "clean": {"accuracy": wilson(*accuracy).to_dict()},
            "attacks": [{"id": "scar", "metrics": {"fooling_rate": wilson(*fooling).to_dict()}}]}


RULES = [{"id": "scar-fooling", "attack": "scar", "metric": "fooling_rate", "op": "<=", "threshold": 0.2, "why": "w"},
         {"id": "clean-accuracy", "metric": "accuracy", "op": ">=", "threshold": 0.8, "why": "w"}]


def test_a_hardened_model_shows_its_improvement_per_rule() -> None:
    standard = _report(fooling=(147, 200), accuracy=(200, 200))
    hardened = _report(fooling=(1, 200), accuracy=(182, 200))
    by_id = {r["id"]: r for r in regressions(hardened, standard, RULES, tolerance=0.05)}
    scar = by_id["regression-scar-fooling"]
    assert scar["change"]["direction"] == "improved" and scar["passed"]
    assert scar["change"]["ci95"][1] < 0
    accuracy = by_id["regression-clean-accuracy"]
    assert accuracy["change"]["direction"] == "worse" and not accuracy["passed"]
    assert "improved" in scar["message"] and "worse" in accuracy["message"]


def test_a_change_within_the_noise_is_no_significant_change() -> None:
    old = _report(fooling=(40, 200), accuracy=(190, 200))
    new = _report(fooling=(44, 200), accuracy=(188, 200))
    by_id = {r["id"]: r for r in regressions(new, old, RULES, tolerance=0.05)}
    assert {r["change"]["direction"] for r in by_id.values()} == {"no significant change"}
    assert all(r["passed"] for r in by_id.values())
