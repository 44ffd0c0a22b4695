"""Hygiene in a real scan: `report["data"]["hygiene"]`, the profile's `data.min_n_eval`, and the same scan
results from WFDB and DICOM copies of the same records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import MODELS, data_path

CHALLENGE = data_path("physionet-challenge-2021")
LENIENT = Path(__file__).resolve().parent / "profiles" / "scan-lenient.toml"  # 8 + 8 records, one step each


def _scan(run_cli, data: Path, out: Path, profile: Path = LENIENT) -> tuple[int, str, dict[str, Any] | None]:
    code, stdout, stderr = run_cli("scan", MODELS / "cnn.onnx", "--profile", profile, "--data", data,
                                   "--out", out, "--quiet")
    report = out / "report.json"
    return code, " ".join((stdout + stderr).split()), json.loads(report.read_text()) if report.exists() else None


def test_scan_reports_hygiene_and_the_same_results_from_every_format(run_cli, tmp_path: Path, formats) -> None:
    reports = {}
    for kind, data in formats.items():
        code, text, report = _scan(run_cli, data, tmp_path / kind)
        assert code in (0, 1) and report is not None, text  # WFDB records carry no labels: accuracy rules fail
        reports[kind] = report
    hygiene = reports["wfdb"]["data"]["hygiene"]
    assert hygiene["shortfall"] == {"n_craft_asked": 8, "n_craft": 4, "n_eval_asked": 8, "n_eval": 3, "short": True}
    assert hygiene["duplicates"] == [{"record": "E07510", "duplicate_of": "E07509"}]
    assert [e["record"] for e in hygiene["excluded"]] == ["HR06006", "JS20004"]
    assert reports["wfdb"]["data"]["splits"]["n_eval"] == 3
    assert reports["dicom"]["data"]["hygiene"]["patients_split_by"] == "DICOM PatientID"
    for kind in ("dicom", "aecg"):
        other = reports[kind]
        for key in ("shortfall", "duplicates", "excluded"):
            assert other["data"]["hygiene"][key] == hygiene[key]
        assert other["clean"] == reports["wfdb"]["clean"]
        assert [a["metrics"] for a in other["attacks"]] == [a["metrics"] for a in reports["wfdb"]["attacks"]]


def test_profile_minimum_eval_size_refuses_the_scan(run_cli, tmp_path: Path) -> None:
    profile = tmp_path / "strict-size.toml"
    profile.write_text(LENIENT.read_text().replace("seed = 0\n", "seed = 0\nmin_n_eval = 5\n", 1))
    code, text, report = _scan(run_cli, CHALLENGE, tmp_path / "out", profile)
    assert code == 2 and report is None, text
    assert "the eval split holds 3 usable record(s), fewer than the profile's data.min_n_eval of 5" in text
    assert "Traceback" not in text
    profile.write_text(LENIENT.read_text().replace("seed = 0\n", "seed = 0\nmin_n_eval = 0\n", 1))
    code, text, _ = _scan(run_cli, CHALLENGE, tmp_path / "out0", profile)
    assert code == 2 and "min_n_eval" in text  # the schema wants a positive minimum
