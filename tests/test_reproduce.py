"""Reproducibility: a fresh `ci` scan reruns with zero drift; a report whose seed was changed does not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import MODELS, REPO

TINY = REPO / "tests" / "profiles" / "scan-tiny.toml"


@pytest.fixture(scope="module")
def ci_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ecgaudit._cli import main

    out = tmp_path_factory.mktemp("ci") / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", str(MODELS / "cnn-ml100.onnx"), "--profile", "ci", "--out", str(out), "--quiet"])
    assert exit_info.value.code in (0, 1)
    return out / "report.json"


def test_fresh_ci_scan_reproduces_with_zero_drift(run_cli, ci_report: Path) -> None:
    code, out, err = run_cli("verify", ci_report, "--reproduce", "--model", MODELS / "cnn-ml100.onnx")
    assert code == 0, err
    assert "zero drift" in out
    assert "clean evaluation" in err and "scar" in err  # the rerun shows its progress, as the scan did


def test_changed_seed_is_reported_as_drift(run_cli, ci_report: Path, tmp_path: Path) -> None:
    report = json.loads(ci_report.read_text())
    report["seed"] = report["seed"] + 1
    edited = tmp_path / "report.json"
    edited.write_text(json.dumps(report))
    code, _, err = run_cli("verify", edited, "--reproduce", "--model", MODELS / "cnn-ml100.onnx")
    text = " ".join(err.split())
    assert code == 1
    assert "drift" in text and "seed" in text


def test_reproduce_refuses_a_different_model(run_cli, ci_report: Path) -> None:
    code, _, err = run_cli("verify", ci_report, "--reproduce", "--model", MODELS / "cnn.onnx")
    assert code == 2
    assert "is not the model the report audited" in " ".join(err.split())


def test_null_in_the_report_and_nan_in_the_rerun_are_the_same_unmeasured_number() -> None:
    from ecgaudit.report.reproduce import compare_reports

    old = {"attacks": [{"metrics": {"top_target_share": None, "snr_db": 20.0}}]}
    assert compare_reports(old, {"attacks": [{"metrics": {"top_target_share": float("nan"), "snr_db": 20.0}}]}) == []
    drift = compare_reports(old, {"attacks": [{"metrics": {"top_target_share": 0.5, "snr_db": 20.0}}]})
    assert drift == ["attacks[0].metrics.top_target_share: None → 0.5"]
    assert compare_reports({"seed": float("nan")}, {"seed": 1}) != []


def test_signed_reproduce_uses_the_scans_own_card_and_reads_null_as_nan(run_cli, tmp_path: Path) -> None:
    """The scan read its card from --card; the card file is gone when the reviewer reruns it, and the PGD
    attack changed no decision (a NaN share, null in the report): the rerun must still show zero drift."""
    model = tmp_path / "vendor.onnx"
    shutil.copy(MODELS / "cnn-ml100.onnx", model)
    card = tmp_path / "elsewhere.json"
    shutil.copy(MODELS / "cnn-ml100.card.json", card)
    assert run_cli("keygen", "--out", tmp_path)[0] == 0
    code, _, err = run_cli("scan", model, "--profile", TINY, "--out", tmp_path / "out", "--card", card, "--quiet",
                           "--key", tmp_path / "ecgaudit-signing.pem")
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["attacks"][0]["metrics"]["misdiagnosis"]["top_target_share"] is None, "precondition: a null"
    card.unlink()
    code, out, err = run_cli("verify", tmp_path / "out" / "report.dsse.json", "--key",
                             tmp_path / "ecgaudit-signing.pub.pem", "--model", model, "--reproduce")
    assert code == 0, err
    assert "zero drift" in out
