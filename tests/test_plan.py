"""`plan_scan` / `plan_attack`: everything that can fail before model work fails there, naming the cause."""

from __future__ import annotations

import copy

import pytest

from ecgaudit.errors import AttackError
from ecgaudit.models import load_model
from ecgaudit.plan import ScanConfig, plan_attack, plan_scan
from ecgaudit.profiles import Profile, load_profile

from .conftest import MODELS


@pytest.fixture(scope="module")
def light():
    return load_model(MODELS / "cnn-ml100.onnx")


def _profile_with(attack_params: dict, name: str = "scar") -> Profile:
    base = load_profile("ci")
    data = copy.deepcopy(base.data)
    for entry in data["attacks"]:
        if entry["attack"] == name:
            entry["params"] = attack_params
    return Profile(name=base.name, source="test", text=b"", data=data)


@pytest.fixture
def no_data(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any data load: planning must not reach it."""
    import ecgaudit.data as data

    loads: list[str] = []
    monkeypatch.setattr(data, "load_dataset", lambda spec, **kw: loads.append(spec))
    return loads


@pytest.mark.parametrize("params, message", [
    ({"epochs": 0}, "epochs"),
    ({"alpha": -1}, "alpha"),
    ({"epochs": 2, "no_such_knob": 1}, "no_such_knob"),
    ({"eps_mv": [0.1, 0.2]}, "eps_mv has 2 values"),
    ({"eps_mv": "wide"}, "eps_mv"),
])
def test_a_parameter_the_attack_rejects_fails_at_planning(light, no_data, params: dict, message: str) -> None:
    with pytest.raises(AttackError, match=message):
        plan_scan(ScanConfig(model=light, profile=_profile_with(params)))
    assert no_data == []


def test_a_pgd_budget_of_the_wrong_length_fails_at_planning(light, no_data) -> None:
    with pytest.raises(AttackError, match="eps_mv has 3 values but the model has 12 leads"):
        plan_scan(ScanConfig(model=light, profile=_profile_with({"eps_mv": [0.01] * 3}, "pgd")))
    assert no_data == []


def test_transfer_to_a_model_with_leads_the_source_lacks_fails_at_planning(light, no_data) -> None:
    narrow = copy.copy(light)
    narrow.card = type(light.card)(**{**light.card.__dict__, "leads": ("I", "II")})
    with pytest.raises(AttackError, match=r"takes lead\(s\) III, aVR"):
        plan_attack(narrow, "scar", transfer_models=[light])
    plan = plan_attack(light, "scar", transfer_models=[narrow])  # a 12-lead source feeds a 2-lead target
    assert plan.transfer_targets[0].lead_index == (0, 1)
    assert no_data == []


def test_a_negative_seed_fails_at_planning(light, no_data) -> None:
    with pytest.raises(AttackError, match="seed"):
        plan_scan(ScanConfig(model=light, profile=load_profile("ci"), seed=-1))
    with pytest.raises(AttackError, match="--sweep applies"):
        plan_attack(light, "pgd", sweep_chest_mv=(0.1,))
