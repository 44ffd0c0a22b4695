"""A model shaped like the PTB-XL vendor model of issue 11, exported the ways vendors export it.

Multi-label logits with per-class thresholds, a second (demographics) input held at the card's constants,
a per-lead z-score inside, the vendor's scipy filtfilt band-pass in the card. Exported with the legacy
exporter, the dynamo exporter (at its defaults, and with optimize=False) and as TorchScript: every file
loads with parity, gives the same decisions, and `inspect` and `attack` run on it.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgaudit.data import load_dataset
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.models import load_model, relative_budget

sys.path.insert(0, str(Path(__file__).resolve().parent))

from matrix_models import VendorNet, randomise_norms  # noqa: E402
from onnx_export import export_onnx  # noqa: E402

FS, N_SAMPLES = 100.0, 1000
CLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]
DEMOGRAPHICS = [0.62, 0.48, 0.0, 0.0, 1.0, 0.0]  # scaled age, sex, and four one-hot flags
EXPORTS = ("legacy.onnx", "dynamo.onnx", "dynamo-noopt.onnx", "vendor.pt")


def _records(n: int, seed: int) -> np.ndarray:
    return load_dataset(f"builtin:synthetic:n={n},seed={seed}", fs=FS, n_samples=N_SAMPLES, leads=STANDARD_LEADS).X


def _thresholds(probabilities: np.ndarray) -> list[float]:
    """Per class, the middle of the widest gap between neighbouring probabilities in the middle half:
    decisions split the records and no record sits near a threshold."""
    out = []
    for column in probabilities.T:
        values = np.sort(column)
        lo, hi = len(values) // 4, 3 * len(values) // 4
        gaps = values[lo + 1 : hi + 1] - values[lo:hi]
        i = lo + int(np.argmax(gaps))
        out.append(round(float(values[i] + values[i + 1]) / 2, 6))
    return out


def build_vendor_files(folder: Path) -> dict[str, Path]:
    """Write the four exports and their `<file name>.card.json` cards into `folder`."""
    torch.manual_seed(11)
    net = randomise_norms(VendorNet(), seed=11)
    from ecgaudit.card import parse_card
    from ecgaudit.models.interface import prepare_input

    card = {"name": "ptbxl-vendor", "fs": FS, "n_samples": N_SAMPLES, "leads": list(STANDARD_LEADS), "layout": "NCT",
            "scaling": {"kind": "none"}, "classes": CLASSES, "task": "multilabel", "output": "logits",
            "preprocessing": [{"kind": "filtfilt", "low_hz": 0.5, "high_hz": 40, "order": 4}],
            "inputs": [{"name": "demographics", "shape": [6], "value": DEMOGRAPHICS,
                        "why": "the training set's median patient (age 62, male)"}]}
    x = prepare_input(parse_card({**card, "thresholds": 0.5}, source="t"), torch.from_numpy(_records(48, 21)))
    with torch.no_grad():
        probabilities = torch.sigmoid(net(x, torch.tensor([DEMOGRAPHICS] * len(x)))).numpy()
    card["thresholds"] = _thresholds(probabilities)
    extra = [("demographics", (6,))]
    export_onnx(net, folder / "legacy.onnx", exporter="legacy", opset=17, n_samples=N_SAMPLES, dynamic_batch=True,
                extra_inputs=extra)
    export_onnx(net, folder / "dynamo-noopt.onnx", exporter="dynamo", opset=18, n_samples=N_SAMPLES,
                dynamic_batch=True, optimize=False, extra_inputs=extra)
    example = (torch.randn(2, 12, N_SAMPLES), torch.randn(2, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, example, input_names=["ecg", "demographics"])  # every default
        assert program is not None
        program.save(str(folder / "dynamo.onnx"))
        torch.jit.trace(net, example).save(str(folder / "vendor.pt"))
    for name in EXPORTS:
        (folder / f"{name}.card.json").write_text(json.dumps(card))  # the <file name>.card.json spelling
    return {name: folder / name for name in EXPORTS}


@pytest.fixture(scope="module")
def vendor_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_vendor_files(tmp_path_factory.mktemp("vendor"))


def test_every_export_loads_with_parity_and_the_same_decisions(vendor_files: dict[str, Path]) -> None:
    x = _records(24, 5)
    decisions = {}
    for name, path in vendor_files.items():
        adapter = load_model(path)
        assert adapter.card.multilabel and adapter.card.output == "logits"
        assert adapter.gradient_modes == ("white-box",), adapter.surrogate_error
        assert adapter.check_parity(x, tolerance=1e-4) <= 1e-4, name
        decisions[name] = adapter.decide(adapter.predict(x))
        assert 0 < decisions[name].mean() < 1  # the thresholds split the records
        budget = relative_budget(adapter, x, [0.1] * 12)
        assert budget is not None and budget["source"] == "model", name  # the z-score inside is found
        assert adapter.describe()["extra_inputs"][0]["value"] == DEMOGRAPHICS
    reference = decisions["vendor.pt"]
    for name, decided in decisions.items():
        assert (decided == reference).all(), name


def test_inspect_and_scar_run_on_every_export(vendor_files: dict[str, Path], run_cli, tmp_path: Path) -> None:
    rates = {}
    for name, path in vendor_files.items():
        code, out, err = run_cli("inspect", path, "--json")
        assert code == 0, err
        assert json.loads(out)["parity_max_abs_diff"] <= 1e-4
        out_dir = tmp_path / name
        code, _, err = run_cli("attack", path, "--attack", "scar", "--n-craft", "16", "--n-eval", "16",
                               "--data", "builtin:synthetic:n=40,seed=3", "--out", out_dir, "--quiet")
        assert code == 0, err
        document = json.loads((out_dir / "attack.json").read_text())
        rates[name] = document["metrics"]["fooling_rate"]["successes"]
    assert len(set(rates.values())) == 1, rates  # one perturbation's effect, the same through every file
