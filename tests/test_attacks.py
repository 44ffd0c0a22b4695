"""Attack properties on the bundled 500 Hz and 100 Hz models: budgets, spectra, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from ecgaudit.attacks import build_attack
from ecgaudit.attacks.harness import run_attack, split_craft_eval
from ecgaudit.constraints import default_eps_mv
from ecgaudit.data import load_dataset
from ecgaudit.metrics import power_fraction_below
from ecgaudit.models import load_model

from .conftest import MODELS

# Small splits and few steps: these tests check properties, not attack strength.
FAST = {
    "pgd": {"eps_mv": 0.05, "steps": 3},
    "uap-deepfool": {"max_passes": 1, "deepfool_max_iter": 3},
    "scar": {"epochs": 2, "batch_size": 8},
    "scar-stealth": {"epochs": 2, "batch_size": 8},
}


@pytest.fixture(scope="module", params=["cnn.onnx", "cnn-ml100.onnx"])
def setup(request: pytest.FixtureRequest):
    model = load_model(MODELS / request.param)
    c = model.card
    data = load_dataset("builtin:synthetic:n=32,seed=5", fs=c.fs, n_samples=c.n_samples, leads=c.leads)
    craft, evaluation = split_craft_eval(data, n_craft=16, n_eval=16, seed=0)
    return model, craft, evaluation


@pytest.mark.parametrize("name", list(FAST))
def test_every_attack_respects_its_budget_and_spectrum(setup, name: str) -> None:
    model, craft, evaluation = setup
    c = model.card
    attack = build_attack(name, fs=c.fs, leads=c.leads, params=FAST[name])
    outcome = run_attack(attack, model, craft, evaluation, seed=0)
    if name == "pgd":
        # per-record perturbations are not stored; the measured L∞ is
        assert outcome.metrics["linf_mv"] <= 0.05 + 1e-6
        return
    v = outcome.perturbation
    assert v is not None and v.shape == (len(c.leads), c.n_samples)
    eps = np.array(default_eps_mv(c.leads))[:, None]
    assert np.all(np.abs(v) <= eps + 1e-6)
    cutoff = 5.0 if name == "scar-stealth" else 15.0
    assert outcome.metrics["cutoff_hz"] == cutoff
    assert power_fraction_below(v, c.fs, cutoff) >= 0.95
    assert outcome.metrics["power_below_cutoff"] >= 0.95
    if name == "uap-deepfool":
        raw = outcome.variants["unfiltered"]
        assert raw["linf_mv"] <= 0.2 + 1e-6


def test_same_seed_gives_identical_perturbation_bytes(setup) -> None:
    model, craft, evaluation = setup
    c = model.card
    runs = [
        run_attack(build_attack("scar", fs=c.fs, leads=c.leads, params=FAST["scar"]), model, craft, evaluation,
                   seed=3).perturbation
        for _ in range(2)
    ]
    other = run_attack(build_attack("scar", fs=c.fs, leads=c.leads, params=FAST["scar"]), model, craft,
                       evaluation, seed=4).perturbation
    assert runs[0].tobytes() == runs[1].tobytes()
    assert runs[0].tobytes() != other.tobytes()


def test_pgd_large_budget_collapses_robust_accuracy() -> None:
    model = load_model(MODELS / "cnn.onnx")
    c = model.card
    data = load_dataset("builtin:synthetic:n=24,seed=9", fs=c.fs, n_samples=c.n_samples, leads=c.leads)
    attack = build_attack("pgd", fs=c.fs, leads=c.leads, params={"eps_mv": 0.1, "steps": 10})
    outcome = run_attack(attack, model, None, data, seed=0)
    assert outcome.metrics["clean_accuracy"]["value"] >= 0.8
    assert outcome.metrics["robust_accuracy"]["value"] < 0.1
    assert outcome.metrics["linf_mv"] <= 0.1 + 1e-6
