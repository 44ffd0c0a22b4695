"""What a vendor's model returns and takes: logits or probabilities, multi-label thresholds, extra
inputs held at the card's constants, the load probe's findings and budgets relative to each lead."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ecgaudit.errors import CardError, ModelError
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.models import load_model, relative_budget
from ecgaudit.models.probe import realistic_signals

FS, N_SAMPLES = 100.0, 1000
CLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]
DEMOGRAPHICS = {"name": "demographics", "shape": [6], "value": [0.1, -0.2, 0.3, 0.0, 1.0, 0.5],
                "why": "the training set's mean features"}


def write_card(path: Path, **changes: object) -> Path:
    card = {"fs": FS, "n_samples": N_SAMPLES, "leads": list(STANDARD_LEADS), "layout": "NCT",
            "scaling": {"kind": "none"}, "classes": CLASSES, "output": "logits"}
    card.update(changes)
    path.with_name(path.stem + ".card.json").write_text(json.dumps({k: v for k, v in card.items() if v is not None}))
    return path


class Tiny(nn.Module):
    def __init__(self, zscore: bool = False, eps: float = 1e-6, sigmoid: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(12, 4, 9, stride=4)
        self.head = nn.Linear(4, 5)
        self.zscore, self.eps, self.sigmoid = zscore, eps, sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.zscore:
            x = (x - x.mean(dim=2, keepdim=True)) / (x.std(dim=2, keepdim=True) + self.eps)
        out = self.head(torch.relu(self.conv(x)).mean(dim=2))
        return torch.sigmoid(out) if self.sigmoid else out


class WithDemographics(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ecg = Tiny()
        self.demo = nn.Linear(6, 5)

    def forward(self, ecg: torch.Tensor, demographics: torch.Tensor) -> torch.Tensor:
        return self.ecg(ecg) + self.demo(demographics)


def export(net: nn.Module, path: Path, *, n_inputs: int = 1) -> Path:
    example = (torch.randn(2, 12, N_SAMPLES), torch.randn(2, 6))[:n_inputs]
    names = ["ecg", "demographics"][:n_inputs]
    if path.suffix == ".pt":
        torch.jit.trace(net.eval(), example).save(str(path))
    else:
        torch.onnx.export(net.eval(), example, str(path), dynamo=False, opset_version=17, input_names=names,
                          dynamic_axes={name: {0: "batch"} for name in names})
    return path


def signals(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.3, (n, 12, N_SAMPLES)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_multilabel_logits_are_scored_with_sigmoid_and_per_class_thresholds(tmp_path: Path, suffix: str) -> None:
    thresholds = [0.3, 0.4, 0.5, 0.6, 0.7]
    path = write_card(export(Tiny(), tmp_path / f"m{suffix}"), task="multilabel", thresholds=thresholds)
    model = load_model(path)
    x = signals()
    raw = model.raw_predict(x)
    probabilities = model.predict(x)
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-raw.astype(np.float64))), rtol=1e-6)
    assert (model.decide(probabilities) == (probabilities >= np.array(thresholds))).all()
    logits = model.torch_forward(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(logits, raw, atol=1e-5)  # BCE-with-logits gets the raw logits
    assert model.check_parity(x) < 1e-5


def test_probabilities_card_on_a_logits_model_says_exactly_that(tmp_path: Path) -> None:
    path = write_card(export(Tiny(), tmp_path / "m.onnx"), task="multilabel", output="probabilities", thresholds=0.5)
    with pytest.raises(CardError, match=r"says its outputs are probabilities, but .* outside \[0, 1\]"):
        load_model(path)
    probs = write_card(export(Tiny(sigmoid=True), tmp_path / "p.onnx"), task="multilabel", output="probabilities",
                       thresholds=0.5)
    assert load_model(probs).check_parity(signals()) < 1e-5


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_extra_inputs_are_fed_the_cards_constants(tmp_path: Path, suffix: str) -> None:
    net = WithDemographics().eval()
    path = write_card(export(net, tmp_path / f"m{suffix}", n_inputs=2), inputs=[DEMOGRAPHICS])
    model = load_model(path)
    x = signals()
    demo = torch.tensor([DEMOGRAPHICS["value"]] * len(x), dtype=torch.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x), demo).numpy()
    np.testing.assert_allclose(model.raw_predict(x), expected, atol=1e-5)
    assert model.check_parity(x) < 1e-5
    assert model.describe()["extra_inputs"][0]["why"] == DEMOGRAPHICS["why"]


def test_multi_input_model_without_constants_names_every_input_and_the_card_lines(tmp_path: Path) -> None:
    path = write_card(export(WithDemographics(), tmp_path / "m.onnx", n_inputs=2))
    with pytest.raises(CardError) as info:
        load_model(path)
    message = str(info.value)
    for fragment in ("has 2 inputs", "'ecg' (N, 12, 1000)", "'demographics' (N, 6)", '"inputs": [{"name": '
                     '"demographics", "shape": [6], "value": 0.0', '"why"'):
        assert fragment in message, message
    ts = write_card(export(WithDemographics(), tmp_path / "m.pt", n_inputs=2))
    with pytest.raises(CardError, match=r"'ecg' \(shape not recorded\), 'demographics' \(shape not recorded\)"):
        load_model(ts)


@pytest.mark.parametrize(("extra", "fragment"), [
    ({**DEMOGRAPHICS, "name": "age"}, "has no such input (its inputs: 'ecg' (N, 12, 1000), 'demographics' (N, 6))"),
    ({**DEMOGRAPHICS, "shape": [3], "value": 0.0}, "'demographics' is shaped (N, 6), but the card's field 'inputs'"),
])
def test_extra_inputs_that_do_not_fit_are_named(tmp_path: Path, extra: dict, fragment: str) -> None:
    path = write_card(export(WithDemographics(), tmp_path / "m.onnx", n_inputs=2), inputs=[extra])
    with pytest.raises(CardError) as info:
        load_model(path)
    assert fragment in str(info.value)


def test_nan_on_flat_input_is_a_finding_not_a_refusal(tmp_path: Path) -> None:
    """A per-lead z-score without epsilon: NaN on flat leads, finite on realistic ECGs."""
    path = write_card(export(Tiny(zscore=True, eps=0.0), tmp_path / "zscore.onnx"))
    model = load_model(path)
    assert any("all-zero (flat-line) record" in f for f in model.findings)
    flat = next(f for f in model.findings if "one lead flat" in f)
    assert "I, II, III, aVR, aVL, aVF, V1, V2, V3, V4, V5, V6" in flat  # every lead's flatness breaks it
    assert np.isfinite(model.predict(realistic_signals(model, 4))).all()
    assert "findings" in model.describe() and model.describe()["findings"] == model.findings
    healthy = load_model(write_card(export(Tiny(zscore=True), tmp_path / "eps.onnx")))
    assert healthy.findings == []


def test_model_that_fails_on_realistic_ecgs_is_refused(tmp_path: Path) -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(x[:, :5, 0] - 100.0)  # NaN for any ECG in mV

    path = write_card(export(Broken(), tmp_path / "broken.pt"))
    with pytest.raises(ModelError, match="NaN or infinite"):
        load_model(path)


def test_relative_budget_from_the_card_and_from_the_model(tmp_path: Path) -> None:
    x = realistic_signals(load_model(write_card(export(Tiny(), tmp_path / "plain.onnx"))), 6)
    x[0, 3] = 0.0  # one flat lead
    eps = [0.1] * 6 + [0.2] * 6

    plain = load_model(tmp_path / "plain.onnx")
    assert relative_budget(plain, x, eps) is None

    std = [0.05 * (i + 1) for i in range(12)]
    standardised = write_card(export(Tiny(), tmp_path / "std.onnx"),
                              scaling={"kind": "standardize", "mean": [0.0] * 12, "std": std})
    card_budget = relative_budget(load_model(standardised), x, eps)
    assert card_budget is not None and card_budget["source"] == "card"
    assert card_budget["leads"][7]["eps_over_sigma"]["median"] == pytest.approx(0.2 / std[7])

    internal = load_model(write_card(export(Tiny(zscore=True), tmp_path / "z.onnx")))
    model_budget = relative_budget(internal, x, eps)
    assert model_budget is not None and model_budget["source"] == "model"
    avr = model_budget["leads"][3]
    assert avr["flat_records"] == 1
    sigma = x[1:, 3].std(axis=1)
    assert avr["eps_over_sigma"]["max"] == pytest.approx(float((0.1 / sigma).max()), rel=1e-4)
    assert "standard deviations of the lead" in model_budget["summary"]


def test_surrogate_that_fails_on_realistic_ecgs_leaves_a_runtime_only_model(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from ecgaudit.models.onnx import OnnxAdapter

    def broken(self: OnnxAdapter, inputs: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("shape mismatch in a converted node")

    monkeypatch.setattr(OnnxAdapter, "_surrogate_forward", broken)
    model = load_model(write_card(export(Tiny(), tmp_path / "m.onnx")))
    assert model.gradient_modes == ()
    assert model.surrogate_error is not None and "shape mismatch in a converted node" in model.surrogate_error
    assert model.predict(signals(2)).shape == (2, 5)  # the runtime still judges
