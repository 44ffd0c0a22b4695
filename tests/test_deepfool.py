"""DeepFool's inner step on a linear model, where the minimal perturbation is known in closed form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ecgaudit.attacks.uap_deepfool import deepfool_batch
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.models import load_model

T = 200
CLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]


class Linear(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, sigmoid: bool) -> None:
        super().__init__()
        self.weight, self.bias, self.sigmoid = weight, bias, sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.weight.T + self.bias
        return torch.sigmoid(z) if self.sigmoid else z


def _linear_model(tmp_path: Path, *, sigmoid: bool):
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(len(CLASSES), 12 * T, generator=g) / 40
    bias = torch.randn(len(CLASSES), generator=g)
    path = tmp_path / ("ml.pt" if sigmoid else "sl.pt")
    torch.jit.trace(Linear(weight, bias, sigmoid), torch.zeros(1, 12, T)).save(str(path))
    card = {"fs": 100, "n_samples": T, "leads": list(STANDARD_LEADS), "layout": "NCT", "scaling": {"kind": "none"},
            "classes": CLASSES, "output": "sigmoid" if sigmoid else "logits"}
    if sigmoid:
        card["thresholds"] = [0.5] * len(CLASSES)
    path.with_suffix(".card.json").write_text(json.dumps(card))
    return load_model(path), weight, bias


@pytest.mark.parametrize("overshoot", [0.0, 0.02])
def test_single_label_step_is_the_distance_to_the_nearest_boundary(tmp_path: Path, overshoot: float) -> None:
    model, weight, bias = _linear_model(tmp_path, sigmoid=False)
    x = torch.randn(6, 12, T, generator=torch.Generator().manual_seed(1)) * 0.5
    z = x.flatten(1) @ weight.T + bias
    original = z.argmax(dim=1)
    out = deepfool_batch(model, x, original, max_iter=5, overshoot=overshoot)
    assert out.flipped.all()
    for i in range(len(x)):
        o = original[i]
        dists = [(z[i, o] - z[i, k]) / (weight[k] - weight[o]).norm() for k in range(len(CLASSES)) if k != o]
        expected = (1 + overshoot) * min(dists)
        # one linearised step lands on the boundary (plus DeepFool's 1e-4 nudge in logit units)
        assert float(out.r[i].norm()) == pytest.approx(float(expected), rel=1e-3, abs=1e-3)
        assert int(((x[i] + out.r[i]).flatten() @ weight.T + bias).argmax()) != int(o)


def test_multilabel_step_flips_the_nearest_label(tmp_path: Path) -> None:
    model, weight, bias = _linear_model(tmp_path, sigmoid=True)
    x = torch.randn(4, 12, T, generator=torch.Generator().manual_seed(2)) * 0.5
    z = x.flatten(1) @ weight.T + bias
    original = z >= 0
    out = deepfool_batch(model, x, original, max_iter=5, overshoot=0.0)
    assert out.flipped.all()
    expected = (z.abs() / weight.norm(dim=1)).min(dim=1).values
    assert torch.allclose(out.r.flatten(1).norm(dim=1), expected, rtol=1e-3, atol=1e-3)
    after = ((x + out.r).flatten(1) @ weight.T + bias) >= 0
    assert ((after != original).sum(dim=1) >= 1).all()


def test_records_already_off_their_decision_get_no_step(tmp_path: Path) -> None:
    model, weight, bias = _linear_model(tmp_path, sigmoid=False)
    x = torch.randn(3, 12, T, generator=torch.Generator().manual_seed(3)) * 0.5
    # records already off the given decision count as flipped at once, with a zero step
    z = x.flatten(1) @ weight.T + bias
    not_theirs = (z.argmax(dim=1) + 1) % len(CLASSES)
    out = deepfool_batch(model, x, not_theirs, max_iter=3, overshoot=0.02)
    assert out.flipped.all()
    assert float(out.r.abs().max()) == 0.0


def test_batched_update_equals_the_record_by_record_update(tmp_path: Path) -> None:
    from ecgaudit.attacks import build_attack
    from ecgaudit.attacks.interface import changed, surrogate_decisions

    model, weight, bias = _linear_model(tmp_path, sigmoid=False)
    attack = build_attack("uap-deepfool", fs=100, leads=list(STANDARD_LEADS), params={"eps_mv": [2.0] * 12})
    g = torch.Generator().manual_seed(4)
    x = torch.randn(40, 12, T, generator=g) * 0.5
    with torch.no_grad():
        clean = surrogate_decisions(model, model.torch_forward(x))
    v0 = torch.zeros(12, T)
    records = torch.arange(40)
    # large steps, so that adding some records' steps fools later records before their turn
    steps = torch.randn(40, 12, T, generator=g) * 1.5
    expected, skipped = v0, 0
    for record, r in zip(records, steps):
        with torch.no_grad():
            now = surrogate_decisions(model, model.torch_forward((x[record] + expected).unsqueeze(0)))
        if changed(model, clean[record].unsqueeze(0), now).item():
            skipped += 1
            continue
        expected = attack.constraint.project(expected + r)
    assert 0 < skipped < 39  # the case under test: some records are skipped, most are not
    got = attack._add_steps(model, x, clean, v0, records, steps)
    assert torch.equal(got, expected)
