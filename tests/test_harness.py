"""The harness, not the attack, enforces the budget and measures success (foolbox's rule); SCAR's eq. 5 step and
transfer across rates and lead sets, each checked against an answer computed independently."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ecgaudit.attacks import build_attack
from ecgaudit.attacks.harness import run_attack
from ecgaudit.attacks.interface import PerSampleAttack, UniversalAttack, UniversalResult
from ecgaudit.attacks.transfer import conform_perturbation
from ecgaudit.constraints import LinfBox, PhysioConstraint
from ecgaudit.data import load_dataset
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.models import load_model

from .conftest import MODELS
from .test_deepfool import T, _linear_model


@dataclass(frozen=True)
class RogueUniversal(UniversalAttack):
    """Returns a perturbation far outside its own constraint."""

    name = "rogue-universal"
    constraint: PhysioConstraint

    def craft(self, model, x_mv, targets, *, generator, progress=None) -> UniversalResult:  # noqa: ANN001
        return UniversalResult(perturbation=torch.full(x_mv.shape[1:], 5.0))

    def params(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class RoguePerSample(PerSampleAttack):
    name = "rogue-per-sample"
    eps: float = 0.01

    @property
    def constraint(self) -> LinfBox:
        return LinfBox((self.eps,))

    def perturb(self, model, x_mv, targets, *, generator, progress=None) -> torch.Tensor:  # noqa: ANN001
        return torch.randn(x_mv.shape, generator=generator) * 3.0

    def params(self) -> dict[str, Any]:
        return {"eps_mv": self.eps}


@pytest.fixture(scope="module")
def light():
    model = load_model(MODELS / "cnn-ml100.onnx")
    c = model.card
    data = load_dataset("builtin:synthetic:n=8,seed=4", fs=c.fs, n_samples=c.n_samples, leads=c.leads)
    return model, data


def test_the_harness_clips_a_universal_attack_that_overshoots_its_budget(light) -> None:
    model, data = light
    eps = tuple(0.1 if i < 7 else 0.2 for i in range(12))
    outcome = run_attack(RogueUniversal(PhysioConstraint(eps)), model, data, data, seed=0)
    v = outcome.perturbation
    assert v is not None
    assert np.allclose(np.abs(v), np.array(eps)[:, None])  # every sample pushed to its lead's bound, no further
    assert outcome.metrics["linf_mv"] == pytest.approx(0.2)


def test_the_harness_clips_a_per_record_attack_that_overshoots_its_budget(light) -> None:
    model, data = light
    outcome = run_attack(RoguePerSample(0.01), model, None, data, seed=0)
    assert outcome.record_perturbations is not None
    assert float(np.abs(outcome.record_perturbations).max()) == pytest.approx(0.01)
    assert outcome.metrics["linf_mv"] <= 0.01 + 1e-7


@dataclass(frozen=True)
class RogueInPlace(RoguePerSample):
    """Returns the records it was given, overshooting: a perturbation that aliases the data."""

    name = "rogue-in-place"

    def perturb(self, model, x_mv, targets, *, generator, progress=None) -> torch.Tensor:  # noqa: ANN001
        return x_mv[:, :, :]


def test_the_harness_projects_an_attacks_own_output_in_place_but_never_the_records(light) -> None:
    model, data = light
    outputs: list[torch.Tensor] = []

    @dataclass(frozen=True)
    class Keeping(RoguePerSample):
        def perturb(self, *args, **kwargs) -> torch.Tensor:  # noqa: ANN002, ANN003
            outputs.append(super().perturb(*args, **kwargs))
            return outputs[-1]

    outcome = run_attack(Keeping(0.01), model, None, data, seed=0)
    # the attack's own tensor became the projected set (no second copy)...
    assert np.shares_memory(outcome.record_perturbations, outputs[0].numpy())
    assert float(np.abs(outcome.record_perturbations).max()) == pytest.approx(0.01)
    # ...but an attack handing back the records themselves gets them copied, never clipped where they lie
    before = data.X.copy()
    aliased = run_attack(RogueInPlace(0.01), model, None, data, seed=0)
    assert np.array_equal(data.X, before)
    assert float(np.abs(aliased.record_perturbations).max()) == pytest.approx(0.01)


def test_attacks_themselves_stay_within_their_constraint(light) -> None:
    """The attacks' own outputs, before the harness clips them: each must already respect its budget."""
    model, data = light
    c = model.card
    g = torch.Generator().manual_seed(0)
    x = torch.from_numpy(data.X)
    targets = torch.from_numpy(model.decide(model.predict(data.X)).astype(np.float32))
    for name, params in (("scar", {"epochs": 1, "batch_size": 4}), ("scar-stealth", {"epochs": 1}),
                         ("uap-deepfool", {"max_passes": 1, "deepfool_max_iter": 2})):
        attack = build_attack(name, fs=c.fs, leads=c.leads, params=params)
        v = attack.craft(model, x, targets, generator=g).perturbation  # type: ignore[union-attr]
        assert attack.constraint.check(v), name
    pgd = build_attack("pgd", fs=c.fs, leads=c.leads, params={"eps_mv": 0.02, "steps": 2})
    delta = pgd.perturb(model, x, targets, generator=g)  # type: ignore[union-attr]
    assert float(delta.abs().max()) <= 0.02 + 1e-7


def test_one_scar_step_is_eq_5_on_a_linear_model(tmp_path: Path) -> None:
    """One minibatch, one epoch: v1 = Π_ε(α‖ε‖√T · g'/‖g'‖) with g' = K * F_low(∇_v Σ CE), computed here by hand."""
    model, weight, bias = _linear_model(tmp_path, sigmoid=False)
    x = torch.randn(5, 12, T, generator=torch.Generator().manual_seed(7)) * 0.5
    y = torch.tensor([0, 1, 2, 3, 4])
    attack = build_attack("scar", fs=100, leads=STANDARD_LEADS, params={"epochs": 1, "batch_size": 5, "alpha": 0.05})
    v = attack.craft(model, x, y, generator=torch.Generator().manual_seed(0)).perturbation  # type: ignore[union-attr]
    # d/dv Σ_i CE(W(x_i + v) + b, y_i) = Wᵀ Σ_i (softmax(z_i) − onehot(y_i)), at v = 0
    z = x.flatten(1) @ weight.T + bias
    residual = torch.softmax(z, dim=1) - torch.nn.functional.one_hot(y, 5).float()
    grad = (residual.sum(dim=0) @ weight).view(12, T)
    smoothed = attack.constraint.smooth(grad, 100.0)
    eps = attack.constraint.eps_tensor(grad)
    step = 0.05 * math.sqrt(T) * float(eps.norm())
    expected = attack.constraint.project(step * smoothed / smoothed.norm())
    assert torch.allclose(v, expected, atol=1e-6)
    assert float(v.abs().max()) > 0  # the step did something


@pytest.mark.parametrize("source_fs, target_fs, source_n, target_n", [(500, 100, 5000, 1000), (100, 500, 1000, 5000),
                                                                     (500, 250, 5000, 2000)])
def test_a_perturbation_carries_across_rates_and_lengths(source_fs, target_fs, source_n, target_n) -> None:
    """A 3 Hz sine at one rate is the same 3 Hz sine at another, cropped to the target's length."""
    t = np.arange(source_n) / source_fs
    v = np.stack([np.sin(2 * np.pi * 3 * t) * (k + 1) / 10 for k in range(2)]).astype(np.float32)
    carried = conform_perturbation(v, source_fs, target_fs, target_n)
    assert carried.shape == (2, target_n)
    t_target = np.arange(target_n) / target_fs
    expected = np.stack([np.sin(2 * np.pi * 3 * t_target) * (k + 1) / 10 for k in range(2)])
    n = min(target_n, int(source_n * target_fs / source_fs))
    core = slice(int(0.1 * n), int(0.9 * n))  # resample_poly's edges are padded
    assert np.allclose(carried[:, core], expected[:, core], atol=2e-3)
    if n < target_n:
        assert np.all(carried[:, n:] == 0)  # a shorter source is zero-padded, never stretched


def test_transfer_maps_leads_by_name_and_zero_fills_what_the_source_lacks() -> None:
    from ecgaudit.threats import Surrogate, carry

    class Card:
        fs, n_samples, leads = 100.0, 100, ("V6", "I", "aVR")

    class Target:
        card = Card()

    class SurrogateModel:
        card = type("C", (), {"fs": 100.0})()

    v = np.stack([np.full(100, k + 1, dtype=np.float32) for k in range(12)])  # lead k holds k + 1 mV
    surrogate = Surrogate("s", SurrogateModel(), None, None, (11, 0, None))  # type: ignore[arg-type]
    carried = carry(v, surrogate, Target())  # type: ignore[arg-type]
    assert np.allclose(carried[0], 12) and np.allclose(carried[1], 1) and np.allclose(carried[2], 0)
    records = np.stack([v, v + 1])  # per-record perturbations carry the same way
    assert np.allclose(carry(records, surrogate, Target())[1, 0], 13)  # type: ignore[arg-type]


def test_the_runtime_labels_the_craft_split_only_for_attacks_that_use_targets(light, monkeypatch) -> None:
    """uap-deepfool moves records off the surrogate's own decisions; a runtime pass over its craft split is waste."""
    model, data = light
    craft, evaluation = data.subset(np.arange(5)), data.subset(np.arange(5, 8))
    seen: list[int] = []
    raw_predict = model.raw_predict

    def counting(x_mv: np.ndarray, **kwargs: Any) -> np.ndarray:
        seen.append(len(x_mv))
        return raw_predict(x_mv, **kwargs)

    monkeypatch.setattr(model, "raw_predict", counting)
    c = model.card
    for name, params, labels_craft in (("uap-deepfool", {"max_passes": 1, "deepfool_max_iter": 2}, False),
                                       ("scar", {"epochs": 1, "batch_size": 4}, True)):
        seen.clear()
        run_attack(build_attack(name, fs=c.fs, leads=c.leads, params=params), model, craft, evaluation, seed=0)
        assert (craft.n_records in seen) == labels_craft, (name, seen)
