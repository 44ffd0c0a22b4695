"""Hostile inputs (issue: trust boundaries): each is exit 2, one sentence, no traceback, no partial report."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from ecgaudit.leads import STANDARD_LEADS

from .conftest import MODELS, REPO, data_path

CARD = {"fs": 100, "n_samples": 1000, "leads": list(STANDARD_LEADS), "layout": "NCT", "scaling": {"kind": "none"},
        "classes": ["NORM", "MI", "STTC", "CD", "HYP"], "output": "logits"}


def _scan(run_cli, model: Path, out: Path, *extra: object) -> tuple[int, str]:
    code, stdout, stderr = run_cli("scan", model, "--profile", "ci", "--out", out, "--quiet", *extra)
    return code, " ".join((stdout + stderr).split())


def _assert_refused(code: int, text: str, out: Path, *fragments: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, text
    assert not (out / "report.json").exists()
    assert not list(out.glob("**/*.partial")) if out.exists() else True


def _external_data_model(folder: Path, location: str) -> Path:
    """A valid graph whose weight tensor claims to live in an external file at `location`."""
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[5, 12])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "240")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2], keepdims=0),
         helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
         helper.make_node("MatMul", ["m", "wt"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 12, 1000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])], [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = folder / "vendor.onnx"
    path.write_bytes(model.SerializeToString())
    (folder / "vendor.card.json").write_text(json.dumps(CARD))
    return path


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd"])
def test_external_data_outside_the_model_folder_is_refused(run_cli, tmp_path: Path, location: str) -> None:
    model = _external_data_model(tmp_path, location)
    code, text = _scan(run_cli, model, tmp_path / "out")
    _assert_refused(code, text, tmp_path / "out", "external data", location, "outside the model's folder")


def test_external_data_symlinked_out_of_the_folder_is_refused(run_cli, tmp_path: Path) -> None:
    (tmp_path / "weights.bin").symlink_to("/etc/passwd")
    model = _external_data_model(tmp_path, "weights.bin")
    code, text = _scan(run_cli, model, tmp_path / "out")
    _assert_refused(code, text, tmp_path / "out", "outside the model's folder")


def test_external_data_beside_the_model_is_read(tmp_path: Path) -> None:
    from ecgaudit.models import load_model

    model = _external_data_model(tmp_path, "weights.bin")
    (tmp_path / "weights.bin").write_bytes(np.random.default_rng(0).normal(size=(5, 12)).astype("<f4").tobytes())
    adapter = load_model(model)
    assert adapter.predict(np.zeros((2, 12, 1000), np.float32)).shape == (2, 5)


def test_oversized_model_file_is_refused(run_cli, tmp_path: Path) -> None:
    code, text = _scan(run_cli, MODELS / "cnn-ml100.onnx", tmp_path / "out", "--max-model-bytes", "1024")
    _assert_refused(code, text, tmp_path / "out", "cnn-ml100.onnx", "limit")


def test_nan_producing_model_stops_the_scan(run_cli, tmp_path: Path) -> None:
    class NanOut(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :5, 0] * float("nan")

    path = tmp_path / "nan.pt"
    torch.jit.trace(NanOut(), torch.randn(1, 12, 1000)).save(str(path))
    (tmp_path / "nan.card.json").write_text(json.dumps(CARD))
    code, text = _scan(run_cli, path, tmp_path / "out")
    _assert_refused(code, text, tmp_path / "out", "NaN")


def test_model_that_hangs_is_stopped_by_model_timeout(tmp_path: Path) -> None:
    class Slow(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x[:, :5, 0]
            for _ in range(200_000_000):
                y = y + 0.0
            return y

    path = tmp_path / "slow.pt"
    torch.jit.script(Slow()).save(str(path))
    (tmp_path / "slow.card.json").write_text(json.dumps(CARD))
    out = tmp_path / "out"
    # a subprocess: the hung model thread is abandoned, and must not outlive the test
    proc = subprocess.run([sys.executable, "-m", "ecgaudit", "scan", str(path), "--profile", "ci", "--out", str(out),
                           "--quiet", "--model-timeout", "1"], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    text = " ".join((proc.stdout + proc.stderr).split())
    _assert_refused(proc.returncode, text, out, "longer than 1 s", "--model-timeout")


def test_wfdb_header_claiming_a_trillion_samples_is_refused(run_cli, tmp_path: Path) -> None:
    (tmp_path / "huge.hea").write_text("huge 12 100 1000000000000\n" + "".join(
        f"huge.dat 16 1000/mV 16 0 0 0 0 {lead}\n" for lead in STANDARD_LEADS))
    (tmp_path / "huge.dat").write_bytes(b"\0" * 48)
    code, text = _scan(run_cli, MODELS / "cnn-ml100.onnx", tmp_path / "out", "--data", tmp_path / "huge.hea")
    _assert_refused(code, text, tmp_path / "out", "huge", "1000000000000")


def test_npz_with_an_object_array_is_refused(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    np.savez(path, X=np.zeros((4, 12, 1000), np.float32), y=np.array([{"evil": 1}] * 4, dtype=object),
             fs=np.array(100.0), leads=np.array(STANDARD_LEADS))
    code, text = _scan(run_cli, MODELS / "cnn-ml100.onnx", tmp_path / "out", "--data", path)
    _assert_refused(code, text, tmp_path / "out", "pickled")


def _npz_with_x(path: Path, x_npy: bytes) -> Path:
    """An .npz whose X.npy member is `x_npy` as given, beside valid y, fs and leads."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", x_npy)
        for key, value in {"y": np.zeros(4, np.int64), "fs": np.array(100.0), "leads": np.array(STANDARD_LEADS)
                           }.items():
            buffer = io.BytesIO()
            np.save(buffer, value)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    return path


def test_npz_header_declaring_more_than_the_member_holds_is_refused(run_cli, tmp_path: Path) -> None:
    header = io.BytesIO()  # a valid .npy header for 240 TB of float32, then 64 bytes
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (1_000_000_000, 12, 5000)})
    path = _npz_with_x(tmp_path / "forged.npz", header.getvalue() + bytes(64))
    code, text = _scan(run_cli, MODELS / "cnn-ml100.onnx", tmp_path / "out", "--data", path)
    _assert_refused(code, text, tmp_path / "out", "forged.npz", "X.npy", "(1000000000, 12, 5000)", "truncated")


def test_npz_larger_than_available_memory_is_refused(run_cli, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    import ecgaudit.data.memory as memory

    x = io.BytesIO()
    np.save(x, np.zeros((4, 12, 1000), np.float32))  # 192 kB
    path = _npz_with_x(tmp_path / "big.npz", x.getvalue())
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 100_000)
    code, text = _scan(run_cli, MODELS / "cnn-ml100.onnx", tmp_path / "out", "--data", path)
    _assert_refused(code, text, tmp_path / "out", "big.npz", "unpacks to 0.2 MiB, more than the 0.1 MiB of memory")
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 1_000_000)  # the same file, read when it fits
    code, stdout, stderr = run_cli("inspect", MODELS / "cnn-ml100.onnx", "--data", path)
    assert code == 0, stdout + stderr


def test_group_readable_private_key_is_refused(run_cli, tmp_path: Path) -> None:
    code, _, _ = run_cli("keygen", "--out", tmp_path)
    assert code == 0
    key = tmp_path / "ecgaudit-signing.pem"
    key.chmod(0o640)
    code, text = _scan(run_cli, MODELS / "cnn-ml100.onnx", tmp_path / "out", "--key", key)
    _assert_refused(code, text, tmp_path / "out", "readable by group or others", "chmod 600")


def test_ptbxl_csv_missing_a_column_is_refused(run_cli, tmp_path: Path) -> None:
    real = data_path("physionet-challenge-2021")
    shutil.copy(real / "scp_statements.csv", tmp_path / "scp_statements.csv")
    rows = (real / "ptbxl_database_rows_06000-06009.csv").read_text().splitlines()
    header = rows[0].split(",")
    drop = header.index("strat_fold")
    trimmed = [",".join(f for i, f in enumerate(r.split(",")) if i != drop) for r in rows]
    (tmp_path / "ptbxl_database.csv").write_text("\n".join(trimmed) + "\n")
    code, text = _scan(run_cli, MODELS / "cnn-ml100.onnx", tmp_path / "out", "--data", tmp_path)
    _assert_refused(code, text, tmp_path / "out", "strat_fold")


def test_onnx_checker_runs_before_conversion(tmp_path: Path) -> None:
    """A graph that references an undefined input fails the checker with the file named."""
    from ecgaudit.errors import ModelError
    from ecgaudit.models import load_model

    graph = helper.make_graph([helper.make_node("Relu", ["nowhere"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 12, 1000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])])
    path = tmp_path / "broken.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    (tmp_path / "broken.card.json").write_text(json.dumps(CARD))
    with pytest.raises(ModelError, match="broken.onnx fails the ONNX checker"):
        load_model(path)


# --- inputs nested or sized to break a parser: exit 2, before any model work or attack -----------------------------

DEEP_JSON = "[" * 1000 + "]" * 1000


@pytest.fixture
def no_attack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running an attack fails the test (as exit 3): the refusal must come before."""
    import ecgaudit.attacks.harness as harness
    import ecgaudit.scan as scan_lib

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("an attack ran before the bad input was refused")

    # wherever the pipeline looks run_attack up (the scan module binds it, or imports it from the harness late)
    for module in (scan_lib, harness):
        if hasattr(module, "run_attack"):
            monkeypatch.setattr(module, "run_attack", forbidden)


def _model_with_card(folder: Path, card_text: str) -> Path:
    model = folder / "vendor.onnx"
    shutil.copy(MODELS / "cnn-ml100.onnx", model)
    (folder / "vendor.card.json").write_text(card_text)
    return model


def test_card_nested_1000_deep_is_refused(run_cli, no_attack: None, tmp_path: Path) -> None:
    card = json.dumps({**CARD, "scaling": "PLACEHOLDER"}).replace('"PLACEHOLDER"', DEEP_JSON)
    code, text = _scan(run_cli, _model_with_card(tmp_path, card), tmp_path / "out")
    _assert_refused(code, text, tmp_path / "out", "vendor.card.json", "nests arrays or objects")


def test_a_card_with_100000_unknown_keys_gives_one_readable_line(run_cli, tmp_path: Path) -> None:
    card = json.dumps({**CARD, **{f"unknown_key_{i}": i for i in range(100_000)}})
    code, _, err = run_cli("inspect", _model_with_card(tmp_path, card))
    assert code == 2
    assert "unknown_key_0" in err and len(err) < 600, f"{len(err)} characters"


def test_card_in_onnx_metadata_nested_1000_deep_is_refused(run_cli, no_attack: None, tmp_path: Path) -> None:
    import onnx

    proto = onnx.load(str(MODELS / "cnn-ml100.onnx"))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "ecgaudit.card", json.dumps({**CARD, "scaling": "X"}).replace('"X"', DEEP_JSON)
    model = tmp_path / "embedded.onnx"
    onnx.save(proto, str(model))
    code, text = _scan(run_cli, model, tmp_path / "out")
    _assert_refused(code, text, tmp_path / "out", "metadata_props", "nests arrays or objects")


def test_baseline_nested_1000_deep_is_refused(run_cli, no_attack: None, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text('{"gate": ' + DEEP_JSON + "}")
    code, text = _scan(run_cli, MODELS / "cnn-ml100.onnx", tmp_path / "out", "--baseline", baseline)
    _assert_refused(code, text, tmp_path / "out", "baseline.json", "nests arrays or objects")


def test_profile_nested_1000_deep_is_refused(run_cli, no_attack: None, tmp_path: Path) -> None:
    profile = tmp_path / "deep.toml"
    profile.write_text((REPO / "tests" / "profiles" / "scan-lenient.toml").read_text() + "\n[extra]\nx = "
                       + "[" * 1000 + "]" * 1000 + "\n")
    code, stdout, stderr = run_cli("scan", MODELS / "cnn-ml100.onnx", "--profile", profile, "--out", tmp_path / "out")
    _assert_refused(code, " ".join((stdout + stderr).split()), tmp_path / "out", "deep.toml", "nests arrays or objects")


def test_report_and_envelope_nested_1000_deep_are_refused(run_cli, tmp_path: Path) -> None:
    deep = tmp_path / "report.json"
    deep.write_text(DEEP_JSON)
    code, _, key_msg = run_cli("keygen", "--out", tmp_path)
    assert code == 0, key_msg
    for args in (("render", deep, "--out", tmp_path / "r.pdf"),
                 ("verify", deep, "--reproduce", "--model", MODELS / "cnn-ml100.onnx"),
                 ("verify", deep, "--key", tmp_path / "ecgaudit-signing.pub.pem")):
        code, stdout, stderr = run_cli(*args)
        text = " ".join((stdout + stderr).split())
        assert code == 2, (args, text)
        assert "nests arrays or objects" in text and "Traceback" not in text, text
    assert not (tmp_path / "r.pdf").exists()


def test_json_inputs_with_nan_are_refused(run_cli, no_attack: None, tmp_path: Path) -> None:
    """Python reads a bare NaN as a number; ecgaudit's inputs are strict JSON."""
    card = json.dumps({**CARD, "fs": float("nan")})
    assert "NaN" in card
    code, text = _scan(run_cli, _model_with_card(tmp_path, card), tmp_path / "out")
    _assert_refused(code, text, tmp_path / "out", "vendor.card.json", "NaN")


def test_public_key_given_to_sign_is_named_without_chmod_advice(run_cli, tmp_path: Path) -> None:
    code, _, _ = run_cli("keygen", "--out", tmp_path)
    assert code == 0
    code, text = _scan(run_cli, MODELS / "cnn-ml100.onnx", tmp_path / "out", "--key",
                       tmp_path / "ecgaudit-signing.pub.pem")
    _assert_refused(code, text, tmp_path / "out", "is a public key")
    assert "chmod" not in text
