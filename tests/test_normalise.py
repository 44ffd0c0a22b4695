"""Per-record normalisation in the card (zscore, minmax, demean, median): the same numbers as numpy on real
records, end to end included, gradients that match finite differences, and a vendor model whose z-score runs
outside its ONNX graph audited from the card alone with the vendor's own decisions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch

from ecgaudit.card import parse_card
from ecgaudit.data import load_dataset
from ecgaudit.errors import CardError
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.models import load_model, relative_budget
from ecgaudit.models.interface import prepare_input
from ecgaudit.normalise import NormaliseStep, apply_normalise_step
from tests.conftest import CHALLENGE_IDS, data_path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from matrix_models import VendorNetOutside, randomise_norms  # noqa: E402
from onnx_export import export_onnx  # noqa: E402

FS, N_SAMPLES = 500.0, 5000
DEMOGRAPHICS = [0.62, 0.48, 0.0, 0.0, 1.0, 0.0]


def _numpy(x: np.ndarray, step: dict) -> np.ndarray:
    """The definitions vendors write in numpy, float64."""
    axes = (-1,) if step.get("axis", "time") == "time" else (-2, -1)
    if step["kind"] == "zscore":
        return (x - x.mean(axis=axes, keepdims=True)) / (x.std(axis=axes, ddof=step.get("ddof", 0), keepdims=True)
                                                         + step["eps"])
    if step["kind"] == "minmax":
        low, high = step.get("range", (0.0, 1.0))
        lowest = x.min(axis=axes, keepdims=True)
        return low + (high - low) * (x - lowest) / (x.max(axis=axes, keepdims=True) - lowest + step["eps"])
    if step["kind"] == "demean":
        return x - x.mean(axis=axes, keepdims=True)
    return x - np.median(x, axis=axes, keepdims=True)


@pytest.fixture(scope="module")
def records() -> np.ndarray:
    data_path("physionet-challenge-2021")
    return load_dataset(str(data_path("physionet-challenge-2021")), fs=FS, n_samples=N_SAMPLES,
                        leads=STANDARD_LEADS).X


STEPS = [
    {"kind": "zscore", "axis": "time", "eps": 1e-8},
    {"kind": "zscore", "axis": "all", "eps": 1e-6, "ddof": 1},
    {"kind": "minmax", "axis": "time", "eps": 1e-6, "range": [-1, 1]},
    {"kind": "minmax", "axis": "all", "eps": 0},
    {"kind": "demean", "axis": "time"},
    {"kind": "median", "per_lead": True},
    {"kind": "median", "axis": "all"},
]


def _card(steps: list[dict]) -> dict:
    return {"fs": FS, "n_samples": N_SAMPLES, "leads": list(STANDARD_LEADS), "layout": "NCT",
            "scaling": {"kind": "none"}, "classes": ["a", "b"], "task": "multiclass", "output": "logits",
            "preprocessing": steps}


@pytest.mark.parametrize("step", STEPS, ids=[json.dumps(s) for s in STEPS])
def test_each_step_gives_numpys_numbers_on_real_records_to_the_first_and_last_second(records: np.ndarray,
                                                                                      step: dict) -> None:
    card = parse_card(_card([{"kind": "filtfilt", "low_hz": 0.5, "high_hz": 40, "order": 4}, step]), source="t")
    ours = prepare_input(card, torch.from_numpy(records)).numpy()
    b, a = scipy.signal.butter(4, [0.5, 40], btype="bandpass", fs=FS)
    reference = _numpy(scipy.signal.filtfilt(b, a, records.astype(np.float64), axis=-1), step)
    live = records.std(axis=-1) > 1e-3  # a flat lead's z-score is 0/eps: rounding, not the definition
    if step["kind"] == "zscore" and step["axis"] == "time":
        ours, reference = ours[live], reference[live]
    scale = max(1.0, float(np.abs(reference).max()))
    second = int(FS)
    for part in (slice(None), slice(0, second), slice(-second, None)):
        assert np.abs(ours[..., part] - reference[..., part]).max() <= 2e-5 * scale, part


@pytest.mark.parametrize("step", STEPS, ids=[json.dumps(s) for s in STEPS])
def test_gradients_match_finite_differences(step: dict) -> None:
    parsed = parse_card(_card([step]), source="t").preprocessing[0]
    assert isinstance(parsed, NormaliseStep)
    x = torch.randn(2, 3, 40, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: apply_normalise_step(v, parsed), (x,), eps=1e-6, atol=1e-5)


def test_a_flat_lead_gives_finite_values_and_gradients() -> None:
    step = NormaliseStep(kind="zscore", axis="time", eps=1e-8, ddof=0)
    x = torch.randn(1, 2, 50, dtype=torch.float64)
    x[0, 1] = 0.3
    x.requires_grad_(True)
    out = apply_normalise_step(x, step)
    out.sum().backward()
    assert torch.isfinite(out).all() and (out[0, 1] == 0).all()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(("step", "message"), [
    ({"kind": "zscore", "axis": "time"}, "needs 'eps'"),
    ({"kind": "zscore", "axis": "all", "per_lead": True, "eps": 0}, "make them agree"),
    ({"kind": "demean", "eps": 1e-8}, "takes no 'eps'"),
    ({"kind": "median", "range": [0, 1]}, "takes no 'range'"),
    ({"kind": "minmax", "eps": 0, "range": [1, 0]}, "low < high"),
    ({"kind": "zscore", "eps": 0, "ddof": 2}, "ddof"),
    ({"kind": "zcore", "eps": 0}, "'preprocessing.0.kind' is 'zcore', not a preprocessing step ecgaudit knows"),
    ({"kind": "bandpas", "low_hz": 1, "high_hz": 40}, "not a preprocessing step ecgaudit knows"),
    ({"kind": "filtfilt", "low_hz": 1, "high_hz": 40}, "required field 'preprocessing.0.order' is missing"),
])
def test_a_bad_step_is_one_sentence_naming_the_field(step: dict, message: str) -> None:
    with pytest.raises(CardError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_card(_card([step]), source="t")


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory, records: np.ndarray) -> tuple[Path, dict, torch.nn.Module]:
    """A two-input, multi-label logits model trained behind filtfilt + a per-lead z-score that its ONNX file does
    not contain, with the card that says so; thresholds split the real records."""
    folder = tmp_path_factory.mktemp("vendor-outside")
    torch.manual_seed(23)
    net = randomise_norms(VendorNetOutside(), seed=23)
    export_onnx(net, folder / "vendor.onnx", exporter="legacy", opset=17, n_samples=N_SAMPLES, dynamic_batch=True,
                extra_inputs=[("demographics", (6,))])
    card = {"name": "vendor-zscore-outside", "fs": FS, "n_samples": N_SAMPLES, "leads": list(STANDARD_LEADS),
            "layout": "NCT", "scaling": {"kind": "none"}, "classes": ["NORM", "MI", "STTC", "CD", "HYP"],
            "task": "multilabel", "output": "logits",
            "preprocessing": [{"kind": "filtfilt", "low_hz": 0.5, "high_hz": 40, "order": 4},
                              {"kind": "zscore", "axis": "time", "per_lead": True, "eps": 1e-6}],
            "inputs": [{"name": "demographics", "shape": [6], "value": DEMOGRAPHICS, "why": "median patient"}]}
    probabilities = _vendor_pipeline(folder / "vendor.onnx", records, thresholds=None)
    card["thresholds"] = [round(float(np.median(column)), 6) for column in probabilities.T]
    (folder / "vendor.card.json").write_text(json.dumps(card))
    return folder / "vendor.onnx", card, net


def _vendor_pipeline(model: Path, x_mv: np.ndarray, thresholds: list[float] | None) -> np.ndarray:
    """The vendor's own code: scipy's filtfilt, numpy's z-score, onnxruntime; probabilities, or decisions."""
    import onnxruntime

    b, a = scipy.signal.butter(4, [0.5, 40], btype="bandpass", fs=FS)
    filtered = scipy.signal.filtfilt(b, a, x_mv.astype(np.float64), axis=-1)
    z = (filtered - filtered.mean(axis=-1, keepdims=True)) / (filtered.std(axis=-1, keepdims=True) + 1e-6)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"ecg": z.astype(np.float32),
                                "demographics": np.tile(np.float32(DEMOGRAPHICS), (len(z), 1))})[0]
    probabilities = 1 / (1 + np.exp(-logits.astype(np.float64)))
    return probabilities if thresholds is None else probabilities >= np.asarray(thresholds)


def test_a_model_normalised_outside_its_graph_decides_as_the_vendor_does_from_the_card_alone(
        vendor: tuple[Path, dict, torch.nn.Module], records: np.ndarray) -> None:
    path, card, _ = vendor
    adapter = load_model(path)
    assert adapter.gradient_modes == ("white-box",), adapter.surrogate_error
    assert adapter.check_parity(records, tolerance=1e-4) <= 1e-4
    ours = adapter.decide(adapter.predict(records))
    theirs = _vendor_pipeline(path, records, card["thresholds"])
    assert len(records) == len(CHALLENGE_IDS)  # every record in tests/data
    assert (ours == theirs).all(), np.argwhere(ours != theirs)
    assert 0 < ours.mean() < 1
    budget = relative_budget(adapter, records, [0.1] * 6 + [0.2] * 6)
    assert budget is not None and budget["source"] == "card-zscore"
    b, a = scipy.signal.butter(4, [0.5, 40], btype="bandpass", fs=FS)
    sigma = scipy.signal.filtfilt(b, a, records.astype(np.float64), axis=-1).std(axis=-1)
    lead = budget["leads"][0]
    live = sigma[:, 0] >= 1e-3
    assert lead["eps_over_sigma"]["max"] == pytest.approx(float((0.1 / sigma[live, 0]).max()), rel=1e-4)


def test_the_same_model_without_its_card_step_decides_differently(vendor: tuple[Path, dict, torch.nn.Module],
                                                                  records: np.ndarray, tmp_path: Path) -> None:
    """What the card step changes: audited without it, the label sets are not the vendor's (the property the
    test above relies on is not vacuous)."""
    path, card, _ = vendor
    without = {**card, "preprocessing": card["preprocessing"][:1]}
    (tmp_path / "card.json").write_text(json.dumps(without))
    adapter = load_model(path, card_path=tmp_path / "card.json")
    ours = adapter.decide(adapter.predict(records))
    assert (ours != _vendor_pipeline(path, records, card["thresholds"])).any(axis=1).sum() >= 2


def test_the_relative_budget_is_on_the_console_and_the_pdfs_first_page(
        vendor: tuple[Path, dict, torch.nn.Module], run_cli, tmp_path: Path) -> None:
    """It was in report.json only: a reviewer reading the PDF never learnt that 0.1 mV is 0.5-2.3 sigma here."""
    from pypdf import PdfReader

    path, _, _ = vendor
    out = tmp_path / "out"
    code, stdout, err = run_cli("scan", path, "--profile", Path(__file__).parent / "profiles" / "scan-tiny.toml",
                                "--data", data_path("physionet-challenge-2021"), "--out", out)
    assert code in (0, 1, 4), err
    report = json.loads((out / "report.json").read_text())
    summaries = {a["relative_budget"]["summary"] for a in report["attacks"]}
    assert all(s.startswith("Because the card z-scores each record") for s in summaries)
    text = " ".join(stdout.split())
    page = " ".join(PdfReader(str(out / "report.pdf")).pages[0].extract_text().split())
    for summary in summaries:
        assert " ".join(summary.split()) in text
        assert "standard deviations of the lead" in page and "Relative budget, " in page


def test_a_flat_lead_in_the_craft_split_does_not_steer_or_stall_scar(vendor: tuple[Path, dict, torch.nn.Module],
                                                                     tmp_path: Path) -> None:
    """Issue 23: flat V2/V4/V6 under a z-score give a gradient ~1e13 times the others' (NaN on some graphs); one
    such record in every batch turned SCAR's step into that record's direction (or into NaN, which stalls it).
    Now it is left out of the steps, named, and the fooling rate is that of the same craft set without it."""
    from dataclasses import replace

    from ecgaudit.attacks import build_attack
    from ecgaudit.attacks.harness import run_attack
    from ecgaudit.evaluation import evaluate_clean

    path, card, _ = vendor
    steps = [card["preprocessing"][0], {**card["preprocessing"][1], "eps": 0}]
    (tmp_path / "card.json").write_text(json.dumps({**card, "preprocessing": steps}))
    model = load_model(path, card_path=tmp_path / "card.json")
    data = load_dataset("builtin:synthetic:n=56,seed=5", fs=FS, n_samples=N_SAMPLES, leads=STANDARD_LEADS)
    craft, evaluation = data.subset(np.arange(16)), data.subset(np.arange(16, 56))
    flat_x = craft.X.copy()
    flat_x[3, [7, 9, 11]] = 0.0
    clean = evaluate_clean(model, evaluation)
    attack = build_attack("scar", fs=FS, leads=STANDARD_LEADS, params={"epochs": 5, "batch_size": 16})
    with_flat = run_attack(attack, model, replace(craft, X=flat_x), evaluation, seed=0, clean_eval=clean)
    without = run_attack(attack, model, craft.subset(np.array([i for i in range(16) if i != 3])), evaluation, seed=0,
                         clean_eval=clean)
    assert with_flat.info["excluded_gradient_records"] == [craft.record_ids[3]]
    assert "excluded_gradient_records" not in without.info
    fooled = [o.metrics["fooling_rate"]["successes"] for o in (with_flat, without)]
    assert abs(fooled[0] - fooled[1]) <= 2 and fooled[1] > 0, fooled


class _NaNOnFlat(torch.nn.Module):
    """Z-scores each lead inside the graph with no eps: a flat lead is 0/0, NaN, as on the issue's vendor model."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - x.mean(dim=2, keepdim=True)) / x.std(dim=2, keepdim=True)
        return self.head(z.abs().mean(dim=2))


def test_a_nan_output_on_a_flat_lead_craft_record_is_named_not_the_end_of_the_scan(run_cli, tmp_path: Path) -> None:
    """It stopped the whole scan with exit 2 after ~200 s, no report and no record named (issue 23)."""
    torch.manual_seed(3)
    export_onnx(_NaNOnFlat().eval(), tmp_path / "nan.onnx", exporter="legacy", opset=17, n_samples=1000,
                dynamic_batch=True)
    (tmp_path / "nan.card.json").write_text(json.dumps({
        "fs": 100.0, "n_samples": 1000, "leads": list(STANDARD_LEADS), "layout": "NCT", "scaling": {"kind": "none"},
        "classes": ["a", "b"], "task": "multiclass", "output": "logits"}))
    data = load_dataset("builtin:synthetic:n=17,seed=8", fs=100.0, n_samples=1000, leads=STANDARD_LEADS)
    x = data.X.copy()
    x[[2, 5], 7] = 0.0  # V2 flat on two records: crafted on, never evaluated
    np.savez(tmp_path / "data.npz", X=x, y=data.labels.argmax(axis=1), fs=100.0, leads=np.array(STANDARD_LEADS),
             record_ids=np.array([f"r{i:02d}" for i in range(17)]))  # too few clean ones: the two are crafted on
    code, _, err = run_cli("scan", tmp_path / "nan.onnx", "--profile", Path(__file__).parent / "profiles" /
                           "scan-tiny.toml", "--data", tmp_path / "data.npz", "--out", tmp_path / "out")
    assert code in (0, 1, 4), err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["data"]["hygiene"]["nonfinite_craft_records"] == ["r02", "r05"]
    from ecgaudit.render.facts import deviations

    assert any("r02 and r05" in line and "left out of crafting" in line for line in deviations(report))
