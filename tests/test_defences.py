"""The adversarially trained example models (examples/build_zoo.py recipes) and the training adversary."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgaudit.card import parse_card
from ecgaudit.data.synthetic import generate_synthetic
from ecgaudit.models import load_model
from ecgaudit.plan import plan_attack
from ecgaudit.scan import attack_document, execute

from .conftest import MODELS

HARDENED = ("cnn-pgdat", "cnn-scarat", "cnn-hybridat")
MOST_ROBUST = "cnn-hybridat"
"""The hardened model benchmarks/defences.py found most robust (benchmarks/README.md, `defences.py`)."""


@pytest.mark.parametrize("name", HARDENED)
@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_hardened_model_loads_with_its_card_and_passes_parity(name: str, suffix: str) -> None:
    path = MODELS / f"{name}{suffix}"
    assert path.stat().st_size < 5 * 1024 * 1024
    model = load_model(path)
    assert model.card.name == name
    assert model.card.fs == 500.0 and model.card.n_samples == 5000 and model.card.output == "logits"
    x, _ = generate_synthetic(16, model.card.fs, model.card.n_samples, seed=99)
    assert model.check_parity(x) <= 1e-3


def test_hardened_model_resists_scar_beyond_the_intervals() -> None:
    """Same data, split, seed and SCAR settings (the ci profile's) on both models: the hardened model's fooling
    rate lies wholly below the standard model's, intervals included."""
    rates = {}
    for name in ("cnn", MOST_ROBUST):
        plan = plan_attack(load_model(MODELS / f"{name}.onnx"), "scar", n_craft=64, n_eval=64, seed=0,
                           params={"epochs": 5, "batch_size": 16})
        doc = attack_document(execute(plan))
        rates[name] = doc["metrics"]["fooling_rate"]
    standard, hardened = rates["cnn"], rates[MOST_ROBUST]
    assert hardened["ci95"][1] < standard["ci95"][0], (standard, hardened)


def tiny(*, pgd: bool, scar: bool):
    """A width-4 CNN at 100 Hz x 256 samples and the recipe's adversary over 24 synthetic records."""
    import build_zoo
    import zoo_models

    torch.manual_seed(0)
    fs, n_samples = 100.0, 256
    card = parse_card(build_zoo.base_card("tiny", fs, n_samples), source="test")
    x, y = generate_synthetic(24, fs, n_samples, seed=5)
    net = zoo_models.PlainCNN(width=4)
    recipe = build_zoo.Recipe(pgd={"eps_mv": build_zoo.SCAR_BOX_MV, "steps": 2} if pgd else None,
                              scar={"epochs": 1, "batch_size": 8} if scar else None,
                              epochs=1, refresh_batches=2, n_craft=8)
    adversary = build_zoo._adversary(recipe, net, card, torch.from_numpy(x), torch.from_numpy(y))
    return adversary, net, torch.from_numpy(x[:8]), torch.from_numpy(y[:8])


@pytest.fixture
def tiny_training(examples_on_path: None):
    return tiny(pgd=True, scar=True)


def test_scar_adversary_keeps_half_the_batch_clean(examples_on_path: None) -> None:
    adversary, net, xb, yb = tiny(pgd=False, scar=True)
    delta = adversary(xb, yb) - xb
    assert torch.equal(delta[:4], torch.zeros_like(delta[:4]))
    assert torch.allclose(delta[4:], adversary.v.expand(4, -1, -1), atol=1e-6) and float(adversary.v.abs().max()) > 0


def test_hybrid_adversary_splits_the_batch_and_refreshes_scar_on_schedule(tiny_training) -> None:
    adversary, net, xb, yb = tiny_training
    eps = torch.tensor(adversary.scar.constraint.eps_mv).view(1, -1, 1)
    net.train()
    seen = []
    for _ in range(3):
        out = adversary(xb, yb)
        delta = out - xb
        # PGD half: its own perturbation per record, inside the per-lead box.
        assert bool((delta[:4].abs() <= eps + 1e-6).all())
        assert not torch.equal(delta[0], delta[1])
        # SCAR half: the one universal perturbation, inside the box.
        assert torch.allclose(delta[4], delta[7], atol=1e-6)
        assert bool((delta[4:].abs() <= eps + 1e-6).all()) and float(delta[4:].abs().max()) > 0
        seen.append(delta[4].clone())
        assert net.training  # the adversary crafts in eval mode and hands the network back in train mode
    assert torch.equal(seen[0], seen[1])  # refreshed every 2 batches: batch 1 reuses batch 0's v
    assert not torch.equal(seen[1], seen[2])


def test_adversary_does_not_touch_the_network_weights(tiny_training) -> None:
    adversary, net, xb, yb = tiny_training
    before = {k: v.clone() for k, v in net.state_dict().items()}  # batch-norm statistics included
    adversary(xb, yb)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in net.parameters())
    assert np.isfinite(adversary.v.numpy()).all()
