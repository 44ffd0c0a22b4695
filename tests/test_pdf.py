"""The PDF report: built from a small synthetic report folder (no scan), read back as text.

Text extraction uses `pypdf` when it is installed, else poppler's `pdftotext`; one of them is needed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ecgaudit.render.pdf import render_pdf

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
CLASSES = ["NORM", "MI", "STTC"]
FS = 250.0
T = 2500
MODEL_SHA = "a1" * 32
FIGURES = ("12-lead ECG", "Zoomed beat", "Perturbation per lead", "Power spectral density", "Misdiagnosis",
           "Amplitude sweep", "Transfer", "Methods", "Reproducibility")


def _rate(value: float, total: int = 20) -> dict[str, Any]:
    return {"value": value, "ci95": [max(0.0, value - 0.2), min(1.0, value + 0.2)],
            "successes": round(value * total), "total": total}


def _metrics(fooling: float, *, cutoff: float | None = None) -> dict[str, Any]:
    matrix = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
    matrix[0][2] = round(fooling * 20)
    m: dict[str, Any] = {
        "fooling_rate": _rate(fooling), "attack_success_rate": _rate(fooling), "robust_accuracy": _rate(1 - fooling),
        "clean_accuracy": _rate(1.0), "snr_db": 20.0, "ssim": 0.99, "linf_mv": 0.1, "n_records": 20,
        "per_lead": {lead: {"linf_mv": 0.1, "l2_mv": 1.0} for lead in LEADS},
        "misdiagnosis": {"classes": CLASSES, "matrix": matrix, "n_changed": matrix[0][2],
                         "top_target": "STTC" if matrix[0][2] else None,
                         "top_target_share": 1.0 if matrix[0][2] else None},
    }
    if cutoff is not None:
        m.update(cutoff_hz=cutoff, power_below_cutoff=0.99)
    return m


def _ecg(rng: np.random.Generator) -> np.ndarray:
    """Beats every 0.8 s: a P bump, a sharp QRS and a T wave, scaled per lead, plus a little noise (mV)."""
    t = np.arange(T) / FS
    phase = (t % 0.8) - 0.3
    beat = (0.15 * np.exp(-((phase + 0.15) / 0.03) ** 2) + 1.2 * np.exp(-(phase / 0.012) ** 2)
            + 0.3 * np.exp(-((phase - 0.25) / 0.05) ** 2))
    gains = np.linspace(-0.6, 1.2, len(LEADS))[:, None]
    return (gains * beat + 0.01 * rng.standard_normal((len(LEADS), T))).astype(np.float32)


def _smooth_delta(rng: np.random.Generator, eps: np.ndarray) -> np.ndarray:
    t = np.arange(T) / FS
    wave = np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6, (len(LEADS), 1)))
    return (eps[:, None] * wave).astype(np.float32)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_folder(folder: Path) -> dict[str, Any]:
    """A consistent report dict with its samples.npz and perturbation file, like a scan writes them."""
    rng = np.random.default_rng(0)
    eps = np.array([0.2 if lead in ("V2", "V3", "V4", "V5", "V6") else 0.1 for lead in LEADS])
    v = _smooth_delta(rng, eps)
    (folder / "perturbations").mkdir(parents=True)
    buffer = io.BytesIO()
    np.save(buffer, v, allow_pickle=False)
    (folder / "perturbations" / "scar.npy").write_bytes(buffer.getvalue())
    X = np.stack([_ecg(rng) for _ in range(2)])
    pgd = np.clip(0.01 * rng.standard_normal(X.shape), -0.01, 0.01).astype(np.float32)
    np.savez(folder / "samples.npz", X=X, record_ids=np.array(["rec-1", "rec-2"]), fs=np.array(FS),
             leads=np.array(LEADS), clean_decision=np.array(["NORM", "NORM"]),
             **{"delta_pgd": pgd, "decision_pgd": np.array(["NORM", "NORM"]),
                "delta_scar": np.broadcast_to(v, X.shape).copy(), "decision_scar": np.array(["STTC", "NORM"])})
    params = {"eps_mv": eps.tolist(), "cutoff_hz": 15.0, "window_ms": 50.0, "fs": FS, "alpha": 0.05, "epochs": 2}
    return {
        "schema_version": "1", "tool": {"name": "ecgaudit", "version": "9.9.9"}, "created": "2026-01-01T00:00:00+00:00",
        "profile": {"name": "unit", "version": "1.0", "source": "unit.toml", "sha256": "b2" * 32, "resolved": {}},
        "model": {"path": "/models/vendor.onnx", "format": "onnx", "sha256": MODEL_SHA,
                  "card": {"fs": FS, "n_samples": T, "leads": LEADS, "classes": CLASSES},
                  "runtime": {"runtime": "onnxruntime", "version": "1.0", "surrogate": "onnx2torch"},
                  "parity_max_abs_diff": 1e-8},
        "data": {"source": "builtin:synthetic", "fs": FS, "n_records": 40, "manifest_sha256": "c3" * 32,
                 "quality_issues": [],
                 "splits": {"seed": 0, "n_craft": 20, "n_eval": 20, "craft_manifest_sha256": "d4" * 32,
                            "eval_manifest_sha256": "e5" * 32}},
        "environment": {"python": "3.11", "platform": "linux", "torch": "2", "onnxruntime": "1", "numpy": "2",
                        "threads": 1, "device": "cpu"},
        "seed": 0,
        "clean": {"accuracy": _rate(1.0), "n_records": 20, "predicted_counts": {"NORM": 20},
                  "true_counts": {"NORM": 20}},
        "attacks": [
            {"id": "pgd", "attack": "pgd", "universal": False, "n_craft": 0, "n_eval": 20,
             "params": {"eps_mv": 0.01, "steps": 2, "step_mv": 0.0125, "random_start": True},
             "metrics": _metrics(0.0), "seconds": {"craft": 1.0, "evaluate": 0.1}, "info": {}},
            {"id": "scar", "attack": "scar", "universal": True, "n_craft": 20, "n_eval": 20, "params": params,
             "metrics": _metrics(0.25, cutoff=15.0), "seconds": {"craft": 2.0, "evaluate": 0.2}, "info": {},
             "perturbation": {"shape": [12, T], "unit": "mV", "path": "perturbations/scar.npy",
                              "sha256": _sha(folder / "perturbations" / "scar.npy")}},
        ],
        "transfer": [{"attack": "scar", "model": "/models/other.pt", "sha256": "f6" * 32, "format": "torchscript",
                      "metrics": _metrics(0.1, cutoff=15.0)}],
        "sweep": {"attack": "scar", "params": params, "points": [
            {"chest_eps_mv": 0.1, "fooling_rate": _rate(0.05), "ssim": 0.999, "snr_db": 25.0},
            {"chest_eps_mv": 0.3, "fooling_rate": _rate(0.4), "ssim": 0.99, "snr_db": 18.0}]},
        "gate": {"verdict": "PASS", "rules": [
            {"id": "scar-fooling", "kind": "threshold", "attack": "scar", "metric": "fooling_rate", "op": "<=",
             "threshold": 0.5, "value": 0.25, "bound": 0.45, "ci95": [0.05, 0.45], "passed": True, "why": "unit",
             "message": "fooling_rate 0.25 (upper 95% bound 0.45) <= 0.5: pass"}]},
        "samples": {"path": "samples.npz", "sha256": _sha(folder / "samples.npz"),
                    "record_ids": ["rec-1", "rec-2"]},
        "timing_seconds": {"total": 3.3},
    }


def _render(report: dict[str, Any], folder: Path, key: str | None = None) -> tuple[bytes, str]:
    sha = hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()
    return render_pdf(report, folder, report_sha256=sha, key_fingerprint=key), sha


def _has_pypdf() -> bool:
    return importlib.util.find_spec("pypdf") is not None


def _text(pdf: bytes, tmp_path: Path) -> str:
    """All page text, via pypdf if installed, else poppler's pdftotext."""
    if _has_pypdf():
        import pypdf

        return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    tool = shutil.which("pdftotext")
    assert tool, "reading the PDF needs pypdf or poppler's pdftotext"
    path = tmp_path / "out.pdf"
    path.write_bytes(pdf)
    return subprocess.run([tool, str(path), "-"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    return report_dir, _write_folder(report_dir)


def test_full_report_has_verdict_digests_metadata_and_every_figure(folder, tmp_path: Path) -> None:
    report_dir, report = folder
    pdf, sha = _render(report, report_dir)
    assert pdf.startswith(b"%PDF")
    text = _text(pdf, tmp_path)
    assert "PASS" in text and "ecgaudit robustness report" in text
    assert MODEL_SHA in text and sha in text
    assert "UNSIGNED" in text
    for title in FIGURES:
        assert title in text, title
    # The digests of the files on disk are checked against the report.
    assert "matches the report" in text
    # /Info carries the report's SHA-256 in the keywords and in a custom key.
    assert f"report_sha256={sha}".encode() in pdf
    assert b"/ecgaudit:report_sha256 (" + sha.encode() + b")" in pdf
    if _has_pypdf():
        import pypdf

        metadata = pypdf.PdfReader(io.BytesIO(pdf)).metadata
        assert metadata["/ecgaudit:report_sha256"] == sha and sha in metadata["/Keywords"]


def test_signed_report_shows_the_key_fingerprint(folder, tmp_path: Path) -> None:
    report_dir, report = folder
    fingerprint = "SHA256:" + "9f" * 16
    text = _text(_render(report, report_dir, key=fingerprint)[0], tmp_path)
    assert fingerprint in text and "UNSIGNED" not in text


def test_fail_verdict_and_no_sweep_transfer_labels_or_samples(folder, tmp_path: Path) -> None:
    report_dir, report = folder
    report.update(sweep=None, transfer=[])
    report["gate"].update(verdict="FAIL", rules=[{**report["gate"]["rules"][0], "passed": False}])
    report["clean"] = {"n_records": 20, "predicted_counts": {"NORM": 20}, "true_counts": None}
    for attack in report["attacks"]:
        attack["metrics"].pop("robust_accuracy")
        attack["metrics"].pop("attack_success_rate")
    (report_dir / "samples.npz").unlink()
    text = _text(_render(report, report_dir)[0], tmp_path)
    assert "FAIL" in text
    assert "Amplitude sweep" not in text and "Transfer to other models" not in text
    assert "Zoomed beat" not in text and "ECG figures are omitted" in text
    assert "Power spectral density" in text and "Misdiagnosis" in text


def test_sparse_report_renders(tmp_path: Path) -> None:
    """A report with almost nothing in it still renders: every field is optional to the renderer."""
    report = {"gate": {"verdict": "FAIL"}, "attacks": [{"id": "pgd", "attack": "pgd", "metrics": {}}]}
    text = _text(render_pdf(report, tmp_path, report_sha256="0" * 64, key_fingerprint=None), tmp_path)
    assert "FAIL" in text and "Methods" in text and "Reproducibility" in text


def test_same_input_gives_the_same_bytes(folder) -> None:
    report_dir, report = folder
    assert _render(report, report_dir)[0] == _render(report, report_dir)[0]
