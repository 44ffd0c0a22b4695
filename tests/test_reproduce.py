"""Reproducibility: a fresh `ci` scan reruns with zero drift; a report whose seed was changed does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import MODELS


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
