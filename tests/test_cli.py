"""The CLI as a user meets it: inspect and attack, their JSON, and one clear sentence per bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import wfdb

from ecgaudit.leads import STANDARD_LEADS

from .conftest import MODELS
from .test_models import RaisesInForward, export_tiny, write_card


def test_inspect_onnx_and_torchscript_twins_print_the_same_contract(run_cli) -> None:
    code_onnx, out_onnx, _ = run_cli("inspect", MODELS / "cnn.onnx", "--json")
    code_pt, out_pt, _ = run_cli("inspect", MODELS / "cnn.pt", "--json")
    assert code_onnx == code_pt == 0
    onnx_doc, pt_doc = json.loads(out_onnx), json.loads(out_pt)
    assert onnx_doc["contract"] == pt_doc["contract"]
    assert onnx_doc["model"]["format"] == "onnx" and pt_doc["model"]["format"] == "torchscript"
    assert onnx_doc["parity_max_abs_diff"] < 1e-4
    assert onnx_doc["model"]["runtime"]["runtime"] == "onnxruntime"


def test_inspect_with_data_shows_clean_accuracy_and_counts(run_cli) -> None:
    code, out, _ = run_cli("inspect", MODELS / "cnn-ml100.onnx", "--data", "builtin:synthetic:n=100,seed=2026",
                           "--json")
    assert code == 0
    clean = json.loads(out)["data"]["clean"]
    assert clean["n_records"] == 100
    assert sum(clean["true_counts"].values()) == 100
    assert clean["macro_auc"] >= 0.9


def test_inspect_table_output_names_the_essentials(run_cli) -> None:
    code, out, _ = run_cli("inspect", MODELS / "cnn.onnx")
    assert code == 0
    for text in ("onnxruntime", "parity", "NORM, MI, STTC, CD, HYP", "500 Hz"):
        assert text in out


def _assert_clean_exit_2(result: tuple[int, str, str], *fragments: str) -> None:
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    # the user-facing sentence; warnings a test's own torch calls emit may precede it in captured stderr
    message = " ".join(err.split())
    assert "error:" in message
    message = message[message.index("error:"):]
    for fragment in fragments:
        assert fragment in message, message


def test_bad_model_files_exit_2_with_one_sentence(run_cli, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes((MODELS / "cnn.onnx").read_bytes()[:5000])
    shutil.copy(MODELS / "cnn.card.json", tmp_path / "truncated.card.json")
    _assert_clean_exit_2(run_cli("inspect", truncated), "truncated.onnx", "not a readable ONNX model")

    notes = tmp_path / "notes.onnx"
    notes.write_text("meeting notes\n" * 50)
    shutil.copy(MODELS / "cnn.card.json", tmp_path / "notes.card.json")
    _assert_clean_exit_2(run_cli("inspect", notes), "notes.onnx")

    boom = tmp_path / "boom.pt"
    torch.jit.script(RaisesInForward()).save(str(boom))
    write_card(boom)
    _assert_clean_exit_2(run_cli("inspect", boom), "boom.pt raised in forward")

    _assert_clean_exit_2(run_cli("inspect", tmp_path / "absent.onnx"), "does not exist")


def test_card_problems_exit_2_naming_the_field(run_cli, tmp_path: Path) -> None:
    model = export_tiny(tmp_path / "m.onnx")
    card = json.loads((MODELS / "cnn-ml100.card.json").read_text())
    card.update(fs=100.0, n_samples=1000, output="logits", layout="NCT", preprocessing=[])
    card.pop("thresholds", None)
    del card["fs"]
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    _assert_clean_exit_2(run_cli("inspect", model), "'fs'")

    card["fs"] = 100.0
    card["n_samples"] = 2500
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    _assert_clean_exit_2(run_cli("inspect", model), "n_samples", "contradicts")


def test_bad_data_exits_2_with_one_sentence(run_cli, tmp_path: Path) -> None:
    fs, n = 100.0, 1000
    signal = np.random.default_rng(0).normal(scale=0.2, size=(n, 12))
    wfdb.wrsamp("rec", fs=fs, units=["mV"] * 12, sig_name=list(STANDARD_LEADS), p_signal=signal, fmt=["16"] * 12,
                write_dir=str(tmp_path))
    (tmp_path / "rec.dat").unlink()
    _assert_clean_exit_2(run_cli("inspect", MODELS / "cnn-ml100.onnx", "--data", tmp_path / "rec.hea"),
                         "rec.dat is missing")

    nan_dir = tmp_path / "nan"
    nan_dir.mkdir()
    signal[10:20, 1] = np.nan
    wfdb.wrsamp("nanrec", fs=fs, units=["mV"] * 12, sig_name=list(STANDARD_LEADS), p_signal=signal,
                fmt=["16"] * 12, write_dir=str(nan_dir))
    _assert_clean_exit_2(run_cli("inspect", MODELS / "cnn-ml100.onnx", "--data", nan_dir), "nanrec", "NaN")

    no_y = tmp_path / "no_y.npz"
    np.savez(no_y, X=np.zeros((2, 12, n), np.float32), fs=np.array(fs), leads=np.array(STANDARD_LEADS))
    _assert_clean_exit_2(run_cli("inspect", MODELS / "cnn-ml100.onnx", "--data", no_y), "'y'")


def test_usage_errors_exit_2(run_cli) -> None:
    code, _, err = run_cli("inspect")
    assert code == 2
    code, _, err = run_cli("attack", MODELS / "cnn.onnx", "--attack", "fgsm")
    assert code == 2 and "fgsm" in err


def test_attack_writes_metrics_transfer_and_perturbation(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        "attack", MODELS / "cnn-ml100.onnx", "--attack", "scar", "--n-craft", "24", "--n-eval", "24",
        "--param", "epochs=2", "--param", "batch_size=8", "--out", out, "--transfer-to", MODELS / "cnn-ml100.pt",
        "--quiet",
    )
    assert code == 0, stdout
    doc = json.loads((out / "attack.json").read_text())
    v = np.load(out / "perturbation.npy")
    assert v.shape == (12, 1000) and v.dtype == np.float32
    rate = doc["metrics"]["fooling_rate"]
    assert 0 <= rate["ci95"][0] <= rate["value"] <= rate["ci95"][1] <= 1
    # the TorchScript twin of the same weights sees the same perturbation the same way
    twin = doc["transfer"][0]
    assert twin["model"].endswith("cnn-ml100.pt")
    assert abs(twin["metrics"]["fooling_rate"]["value"] - rate["value"]) <= 0.02
    import hashlib

    assert hashlib.sha256((out / "perturbation.npy").read_bytes()).hexdigest() == doc["perturbation"]["sha256"]


def test_attack_on_onnx_and_torchscript_twins_agree(run_cli, tmp_path: Path) -> None:
    rates = []
    for name in ("cnn.onnx", "cnn.pt"):
        out = tmp_path / name
        code, _, _ = run_cli("attack", MODELS / name, "--attack", "scar", "--n-craft", "16", "--n-eval", "32",
                             "--param", "epochs=2", "--param", "batch_size=8", "--out", out, "--quiet")
        assert code == 0
        rates.append(json.loads((out / "attack.json").read_text())["metrics"]["fooling_rate"]["value"])
    assert abs(rates[0] - rates[1]) <= 0.02


def test_debug_is_accepted_after_the_command_as_the_internal_error_message_says(run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli("inspect", MODELS / "cnn.onnx", "--json", "--debug")
    assert code == 0, err
    assert json.loads(out)["model"]["format"] == "onnx"


def test_a_folder_given_as_model_or_profile_is_named_as_a_folder(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("inspect", tmp_path)
    assert code == 2 and "is a folder" in err and "does not exist" not in err, err
    code, _, err = run_cli("scan", MODELS / "cnn.onnx", "--profile", tmp_path, "--out", tmp_path / "out")
    assert code == 2 and "is a folder" in err and "unknown profile" not in err, err


def test_a_black_box_budget_too_small_for_one_spsa_step_says_how_many_it_needs(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("attack", MODELS / "cnn.onnx", "--attack", "pgd", "--threat-model", "black-box",
                           "--queries", "3", "--n-craft", "2", "--n-eval", "2", "--out", tmp_path / "out", "--quiet")
    assert code == 2 and "3 queries per record" in err and "give at least" in err, err
    assert not (tmp_path / "out").exists()


def test_the_sweeps_progress_names_each_amplitude(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("attack", MODELS / "cnn-ml100.onnx", "--attack", "scar", "--sweep", "--param", "epochs=1",
                           "--n-craft", "4", "--n-eval", "4", "--out", tmp_path / "out")
    assert code == 0, err
    for chest_mv in ("0.02", "0.05", "0.6"):  # one crafting stage per point, each named by its amplitude
        assert f"sweep V2–V6 {chest_mv} mV (scar): crafting" in err, err
