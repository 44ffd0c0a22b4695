from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ecgaudit.errors import CardError, ModelError
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.models import load_model

FS, N_SAMPLES = 100.0, 1000
CLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]


class Tiny(nn.Module):
    def __init__(self, n_out: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv1d(12, 4, 9, stride=4)
        self.head = nn.Linear(4, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=2))


class RaisesInForward(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 0:
            raise RuntimeError("vendor model exploded")
        return x


def write_card(model_path: Path, **changes: object) -> None:
    card = {"fs": FS, "n_samples": N_SAMPLES, "leads": list(STANDARD_LEADS), "layout": "NCT",
            "scaling": {"kind": "none"}, "classes": CLASSES, "output": "logits"}
    card.update(changes)
    model_path.with_name(model_path.stem + ".card.json").write_text(json.dumps({k: v for k, v in card.items()
                                                                               if v is not None}))


def export_tiny(path: Path, *, n_samples: int = N_SAMPLES, dynamic: bool = True, n_out: int = 5) -> Path:
    torch.manual_seed(0)
    net = Tiny(n_out).eval()
    torch.onnx.export(net, (torch.randn(1, 12, n_samples),), str(path), dynamo=False, opset_version=17,
                      input_names=["ecg"], dynamic_axes={"ecg": {0: "batch"}} if dynamic else None)
    return path


def test_onnx_and_torchscript_twins_agree(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = Tiny().eval()
    x = torch.randn(1, 12, N_SAMPLES)
    torch.onnx.export(net, (x,), str(tmp_path / "m.onnx"), dynamo=False, opset_version=17,
                      input_names=["ecg"], dynamic_axes={"ecg": {0: "batch"}})
    torch.jit.trace(net, x).save(str(tmp_path / "m.pt"))
    for name in ("m.onnx", "m.pt"):
        write_card(tmp_path / name)
    signals = np.random.default_rng(1).normal(scale=0.3, size=(7, 12, N_SAMPLES)).astype(np.float32)
    onnx_model, ts_model = load_model(tmp_path / "m.onnx"), load_model(tmp_path / "m.pt")
    assert np.abs(onnx_model.predict(signals) - ts_model.predict(signals)).max() < 1e-5
    assert onnx_model.check_parity(signals) < 1e-5
    assert onnx_model.card == ts_model.card


def test_fixed_batch_graph_is_run_in_chunks(tmp_path: Path) -> None:
    path = export_tiny(tmp_path / "fixed.onnx", dynamic=False)
    write_card(path)
    model = load_model(path)
    assert model.fixed_batch == 1
    signals = np.random.default_rng(2).normal(scale=0.3, size=(3, 12, N_SAMPLES)).astype(np.float32)
    assert model.predict(signals).shape == (3, 5)
    assert model.check_parity(signals) < 1e-5


def test_vendor_scaling_and_layout_live_inside_the_adapter(tmp_path: Path) -> None:
    """An NTC model fed µV gives the same answer on mV input as the NCT twin fed mV."""
    torch.manual_seed(0)
    inner = Tiny().eval()

    class MicrovoltNtc(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.transpose(1, 2) / 1000.0)

    torch.onnx.export(MicrovoltNtc(), (torch.randn(1, N_SAMPLES, 12),), str(tmp_path / "ntc.onnx"),
                      dynamo=False, opset_version=17, input_names=["ecg"], dynamic_axes={"ecg": {0: "batch"}})
    write_card(tmp_path / "ntc.onnx", layout="NTC", scaling={"kind": "affine", "scale": 1000.0, "offset": 0.0})
    torch.jit.trace(inner, torch.randn(1, 12, N_SAMPLES)).save(str(tmp_path / "nct.pt"))
    write_card(tmp_path / "nct.pt")
    signals = np.random.default_rng(3).normal(scale=0.3, size=(4, 12, N_SAMPLES)).astype(np.float32)
    a, b = load_model(tmp_path / "ntc.onnx").predict(signals), load_model(tmp_path / "nct.pt").predict(signals)
    assert np.abs(a - b).max() < 1e-4


def test_truncated_onnx_is_refused(tmp_path: Path) -> None:
    path = export_tiny(tmp_path / "m.onnx")
    write_card(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelError, match="m.onnx"):
        load_model(path)


def test_non_model_file_is_refused(tmp_path: Path) -> None:
    for name in ("notes.onnx", "notes.pt"):
        path = tmp_path / name
        path.write_text("these are meeting notes, not a model\n" * 20)
        write_card(path)
        with pytest.raises(ModelError, match=name):
            load_model(path)


def test_unknown_suffix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF")
    with pytest.raises(ModelError, match="unknown model format"):
        load_model(path)


def test_torchscript_that_raises_in_forward_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "boom.pt"
    torch.jit.script(RaisesInForward()).save(str(path))
    write_card(path)
    with pytest.raises(ModelError, match="raised in forward: .*vendor model exploded"):
        load_model(path)


def test_input_shape_contradicting_card_names_the_field(tmp_path: Path) -> None:
    path = export_tiny(tmp_path / "m.onnx", n_samples=N_SAMPLES)
    write_card(path, n_samples=2500)
    with pytest.raises(CardError, match="n_samples"):
        load_model(path)


def test_output_width_contradicting_classes_is_named(tmp_path: Path) -> None:
    path = export_tiny(tmp_path / "m.onnx", n_out=3)
    write_card(path)
    with pytest.raises(CardError, match="outputs 3 values .* 5 classes"):
        load_model(path)


def test_nan_producing_model_is_refused(tmp_path: Path) -> None:
    class NanOut(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :5, 0] * float("nan")

    path = tmp_path / "nan.pt"
    torch.jit.trace(NanOut(), torch.randn(1, 12, N_SAMPLES)).save(str(path))
    write_card(path)
    with pytest.raises(ModelError, match="NaN"):
        load_model(path)
