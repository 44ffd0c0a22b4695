"""The physical lead space: perturbations that obey Einthoven's and Goldberger's laws within ε on all 12 leads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from ecgaudit.clinical.leads import LIMB_FROM_I_II, einthoven_residual_mv, project_physical
from ecgaudit.constraints import PhysioConstraint, default_eps_mv
from ecgaudit.leads import STANDARD_LEADS

EPS = default_eps_mv()
UNEVEN_EPS = (0.1, 0.05, 0.2, 0.03, 0.15, 0.08, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2)
ONE_MICROVOLT = 1e-3  # mV


def _random_v(seed: int, shape: tuple[int, ...] = (3, 12, 400), scale: float = 0.3) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.mark.parametrize("eps", [EPS, UNEVEN_EPS])
def test_projection_obeys_einthoven_and_every_leads_budget(eps: tuple[float, ...]) -> None:
    v = project_physical(_random_v(0), eps, STANDARD_LEADS)
    assert einthoven_residual_mv(v.numpy(), STANDARD_LEADS) <= ONE_MICROVOLT
    bound = torch.tensor(eps).view(-1, 1)
    assert bool((v.abs() <= bound + 1e-6).all())
    # the budget is used, not dodged: some limb samples sit on the boundary of their ε
    assert bool((v[:, :6].abs() >= bound[:6] - 1e-6).any())


def test_projection_is_idempotent_and_keeps_physical_perturbations_inside_the_box() -> None:
    v = project_physical(_random_v(1), UNEVEN_EPS, STANDARD_LEADS)
    assert torch.allclose(project_physical(v, UNEVEN_EPS, STANDARD_LEADS), v, atol=1e-7)
    small = 0.01 * torch.randn(2, 8, 300, generator=torch.Generator().manual_seed(2))
    physical = torch.zeros(2, 12, 300)
    physical[:, :6] = torch.einsum("kj,njt->nkt", torch.tensor(LIMB_FROM_I_II, dtype=torch.float32), small[:, :2])
    physical[:, 6:] = small[:, 2:]
    assert torch.allclose(project_physical(physical, UNEVEN_EPS, STANDARD_LEADS), physical, atol=1e-7)


def test_projection_is_the_nearest_point_in_the_12_lead_space() -> None:
    """Against a general-purpose solver: min ‖v_limb − D·p‖² subject to |D·p| ≤ ε, for single samples."""
    eps = np.array(UNEVEN_EPS[:6])
    v = _random_v(3, (1, 12, 12))
    got = project_physical(v, UNEVEN_EPS, STANDARD_LEADS)[0, :6].numpy().astype(np.float64)
    for t in range(v.shape[-1]):
        target = v[0, :6, t].numpy().astype(np.float64)
        constraints = [{"type": "ineq", "fun": lambda p, k=k, s=s: eps[k] - s * (LIMB_FROM_I_II[k] @ p)}
                       for k in range(6) for s in (1.0, -1.0)]
        best = minimize(lambda p, y=target: np.sum((y - LIMB_FROM_I_II @ p) ** 2), np.zeros(2), method="SLSQP",
                        constraints=constraints, options={"ftol": 1e-12, "maxiter": 200})
        assert np.allclose(got[:, t], LIMB_FROM_I_II @ best.x, atol=2e-5)


def test_residual_is_zero_for_derived_leads_and_large_for_free_ones() -> None:
    from ecgaudit.data.synthetic import generate_synthetic

    x, _ = generate_synthetic(3, 100.0, 300, 0)
    assert einthoven_residual_mv(x, STANDARD_LEADS) < 1e-5
    assert einthoven_residual_mv(_random_v(4, (12, 300), 0.1).numpy(), STANDARD_LEADS) > 0.05


def test_lead_space_needs_the_limb_leads() -> None:
    from ecgaudit.errors import EcgauditError

    with pytest.raises(EcgauditError, match="limb leads"):
        PhysioConstraint((0.1,) * 8, lead_space="8", leads=("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"))
    with pytest.raises(EcgauditError, match="lead_space"):
        PhysioConstraint(EPS, lead_space="9")


def test_low_band_edge_removes_dc_from_the_smoothed_gradient() -> None:
    c = PhysioConstraint(EPS, low_hz=0.5)
    g = torch.full((12, 1000), 0.3) + 0.01 * torch.randn(12, 1000, generator=torch.Generator().manual_seed(5))
    assert float(c.smooth(g, 100.0).mean(dim=1).abs().max()) < 1e-3
    assert float(PhysioConstraint(EPS).smooth(g, 100.0).mean(dim=1).abs().min()) > 0.29


class _Linear(torch.nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T


@pytest.mark.parametrize("attack_name", ["scar", "uap-deepfool"])
def test_attacks_in_the_physical_lead_space_obey_einthoven_within_budget(tmp_path: Path, attack_name: str) -> None:
    from ecgaudit.attacks import build_attack
    from ecgaudit.attacks.harness import run_attack
    from ecgaudit.data.interface import EcgDataset
    from ecgaudit.models import load_model

    n_samples, classes = 200, ["NORM", "MI", "STTC"]
    weight = torch.randn(3, 12 * n_samples, generator=torch.Generator().manual_seed(6)) / 20
    path = tmp_path / "linear.pt"
    torch.jit.trace(_Linear(weight), torch.zeros(1, 12, n_samples)).save(str(path))
    path.with_suffix(".card.json").write_text(json.dumps({
        "fs": 100, "n_samples": n_samples, "leads": list(STANDARD_LEADS), "layout": "NCT",
        "scaling": {"kind": "none"}, "classes": classes, "output": "logits"}))
    model = load_model(path)
    x = (0.5 * torch.randn(24, 12, n_samples, generator=torch.Generator().manual_seed(7))).numpy()
    ids = tuple(f"r{i}" for i in range(24))
    data = EcgDataset(X=x, fs=100.0, leads=STANDARD_LEADS, record_ids=ids, labels=None, classes=None,
                      source="test", manifest=tuple((r, "0" * 64) for r in ids))
    params = {"lead_space": "8", "low_hz": 0.5}
    params.update({"epochs": 3} if attack_name == "scar" else {"max_passes": 1})
    attack = build_attack(attack_name, fs=100.0, leads=STANDARD_LEADS, params=params)
    outcome = run_attack(attack, model, data.subset(np.arange(12)), data.subset(np.arange(12, 24)), seed=0)
    v = outcome.perturbation
    assert v is not None and float(np.abs(v).max()) > 0.01
    assert einthoven_residual_mv(v, STANDARD_LEADS) <= ONE_MICROVOLT
    assert bool((np.abs(v) <= np.array(EPS)[:, None] + 1e-6).all())
    # without the option the same attack breaks Einthoven's laws: the test above is not vacuous
    free = build_attack(attack_name, fs=100.0, leads=STANDARD_LEADS, params={k: v for k, v in params.items()
                                                                              if k != "lead_space"})
    v_free = run_attack(free, model, data.subset(np.arange(12)), data.subset(np.arange(12, 24)), seed=0).perturbation
    assert einthoven_residual_mv(v_free, STANDARD_LEADS) > 0.01
