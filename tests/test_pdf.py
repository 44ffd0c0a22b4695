"""The PDF report: built from a report dict and in-memory artifacts (no scan, no files), read back with pypdf."""

from __future__ import annotations

import copy
import io
from typing import Any

import numpy as np
import pypdf
import pytest

from ecgaudit.render.interface import Artifacts, Format, render
from ecgaudit.render.pdf.charts import ssim_ticks

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
CLASSES = ["NORM", "MI", "STTC"]
FS = 250.0
T = 2500
MODEL_SHA = "a1" * 32
LONG_RULE = "pgd-invisible-robust-accuracy-of-the-vendor"
RECORDS = ["rec-a", "rec-b", "rec-c"]


def _rate(value: float, total: int = 20) -> dict[str, Any]:
    return {"value": value, "ci95": [max(0.0, value - 0.2), min(1.0, value + 0.2)],
            "successes": round(value * total), "total": total}


def _metrics(fooling: float, *, cutoff: float | None = None) -> dict[str, Any]:
    matrix = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
    matrix[0][2] = round(fooling * 20)
    m: dict[str, Any] = {
        "fooling_rate": _rate(fooling), "attack_success_rate": _rate(fooling), "robust_accuracy": _rate(1 - fooling),
        "clean_accuracy": _rate(1.0), "snr_db": 20.0, "ssim": 0.99, "linf_mv": 0.1, "n_records": 20,
        "per_lead": {lead: {"linf_mv": 0.1, "rms_mv": 0.05} for lead in LEADS},
        "misdiagnosis": {"classes": CLASSES, "matrix": matrix, "n_changed": matrix[0][2],
                         "top_targets": ["STTC"] if matrix[0][2] else [],
                         "top_target": "STTC" if matrix[0][2] else None,
                         "top_target_share": 1.0 if matrix[0][2] else None},
    }
    if cutoff is not None:
        m.update(cutoff_hz=cutoff, power_below_cutoff=0.99)
    return m


def _threats(fooling: float, *, white_box: bool = True) -> list[dict[str, Any]]:
    knowledge = "The attacker knows the weights."
    if white_box:
        first = [{"threat_model": "white-box", "status": "ran", "knowledge": knowledge, "method": "scar",
                  "metrics": _metrics(fooling)},
                 {"threat_model": "bpda", "status": "not-applicable", "knowledge": knowledge,
                  "reason": "the model has no operator whose gradient is zero or undefined"}]
    else:
        why = "white-box gradients are not available: the ONNX operator LSTM has no converter"
        first = [{"threat_model": "white-box", "status": "not-possible", "knowledge": knowledge, "reason": why},
                 {"threat_model": "bpda", "status": "not-possible", "knowledge": knowledge, "reason": why}]
    return first + [
        {"threat_model": "transfer", "status": "ran", "knowledge": "Surrogates.", "method": "scar",
         "metrics": _metrics(fooling / 2),
         "surrogates": [{"surrogate": "builtin:cnn", "fooling_rate": _rate(fooling / 2),
                         "fooling_rate_on_surrogate": _rate(0.8)}]},
        {"threat_model": "black-box", "status": "off", "knowledge": "Queries.",
         "reason": "the profile turns this threat model off"}]


def _clinical() -> dict[str, Any]:
    per_lead = {lead: {"clean_j_mv": 0.01, "adversarial_j_mv": 0.05, "change_j_mv": 0.04,
                       "change_j_iqr_mv": [0.02, 0.06], "change_j60_mv": 0.03} for lead in LEADS}
    return {"einthoven_residual_mv": 0.04, "power_below_0p5_hz": 0.3,
            "front_end": {"unfiltered": _rate(0.25), "highpass": [{"cutoff_hz": 0.05, "fooling_rate": _rate(0.25)},
                                                                   {"cutoff_hz": 0.5, "fooling_rate": _rate(0.05)}]},
            "st": {"n_records": 20, "n_measured": 20, "per_lead": per_lead,
                   "mi_criteria": {"newly_met": _rate(0.1), "clean_met": 0, "adversarial_met": 2,
                                   "rule": "V2–V3 cut-point 0.2 mV (men ≥ 40 y), used where sex or age is unknown"}}}


def _ecg(rng: np.random.Generator, rate_s: float) -> np.ndarray:
    """Beats every `rate_s`: a P bump, a sharp QRS and a T wave, scaled per lead, plus a little noise (mV)."""
    t = np.arange(T) / FS
    phase = (t % rate_s) - 0.3
    beat = (0.15 * np.exp(-((phase + 0.15) / 0.03) ** 2) + 1.2 * np.exp(-(phase / 0.012) ** 2)
            + 0.3 * np.exp(-((phase - 0.25) / 0.05) ** 2))
    gains = np.linspace(-0.6, 1.2, len(LEADS))[:, None]
    return (gains * beat + 0.01 * rng.standard_normal((len(LEADS), T))).astype(np.float32)


def _samples() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    X = np.stack([_ecg(rng, r) for r in (0.8, 0.9, 1.0)])
    eps = np.array([0.2 if lead in ("V2", "V3", "V4", "V5", "V6") else 0.1 for lead in LEADS])
    v = (eps[:, None] * np.sin(2 * np.pi * 3 * np.arange(T) / FS)).astype(np.float32)
    out = {"X": X, "record_ids": np.array(RECORDS), "fs": np.array(FS), "leads": np.array(LEADS),
           "clean_decision": np.array(["NORM"] * 3)}
    for aid in ("pgd", "scar", "scar-stealth"):
        out[f"delta_{aid}"] = np.broadcast_to(v, X.shape).copy() if aid != "pgd" else \
            np.clip(0.01 * rng.standard_normal(X.shape), -0.01, 0.01).astype(np.float32)
        out[f"decision_{aid}"] = np.array(["STTC", "NORM", "NORM"])
    return out


def _attack(aid: str, name: str, fooling: float, *, universal: bool = True) -> dict[str, Any]:
    params = {"eps_mv": [0.2 if lead in ("V2", "V3", "V4", "V5", "V6") else 0.1 for lead in LEADS],
              "cutoff_hz": 15.0, "window_ms": 50.0, "fs": FS, "epochs": 10} if universal else \
        {"eps_mv": 0.01, "steps": 2}
    return {"id": aid, "attack": name, "universal": universal, "n_craft": 20 if universal else 0, "n_eval": 20,
            "params": params, "metrics": _metrics(fooling, cutoff=15.0 if universal else None),
            "seconds": {"craft": 1.0}, "info": {}, "threat_models": _threats(fooling),
            "worst_case": {"threat_model": "white-box", "rule": "the highest fooling rate"},
            "noise_floor": {"kind": "random", "draws": 3, "per_draw": [_rate(0.0)] * 3, "mean": 0.0,
                            "max": _rate(0.0)}, "clinical": _clinical()}


def report_fixture() -> dict[str, Any]:
    """A FAIL report of the current shape: three attacks, indicators, hygiene with a record shortfall."""
    rule = {"kind": "threshold", "op": "<=", "threshold": 0.2, "value": 0.45, "bound": 0.65, "ci95": [0.25, 0.65],
            "why": "unit", "message": "fooling_rate 0.45 (upper 95% bound 0.65) <= 0.2: FAIL"}
    return {
        "schema_version": "1", "tool": {"name": "ecgaudit", "version": "9.9.9"}, "created": "2026-01-01T00:00:00+00:00",
        "profile": {"name": "unit", "version": "1.0", "source": "unit.toml", "sha256": "b2" * 32,
                    "resolved": {"profile": {"description": "unit"}, "sweep": {"attack": "scar"},
                                 "transfer": {"attacks": ["scar"]}}},
        "model": {"path": "/models/vendor.onnx", "format": "onnx", "sha256": MODEL_SHA,
                  "card": {"fs": FS, "n_samples": T, "leads": LEADS, "classes": CLASSES, "output": "logits"},
                  "runtime": {"runtime": "onnxruntime", "version": "1.0", "surrogate": "onnx2torch"},
                  "parity_max_abs_diff": 1e-8},
        "data": {"source": "builtin:synthetic:n=40", "fs": FS, "n_records": 40, "manifest_sha256": "c3" * 32,
                 "quality_issues": [],
                 "splits": {"seed": 0, "n_craft": 20, "n_eval": 20, "craft_manifest_sha256": "d4" * 32,
                            "eval_manifest_sha256": "e5" * 32},
                 "hygiene": {"n_records": 40, "n_usable": 40, "duplicates": [], "patients_split_by": "record",
                             "flagged": [], "excluded": [],
                             "shortfall": {"n_craft_asked": 64, "n_craft": 20, "n_eval_asked": 64, "n_eval": 20,
                                           "short": True}}},
        "environment": {"python": "3.11", "platform": "linux"},
        "seed": 0,
        "clean": {"accuracy": _rate(1.0), "n_records": 20, "predicted_counts": {"NORM": 20},
                  "true_counts": {"NORM": 20}},
        "threat_models": {"white_box": True, "bpda": True, "transfer": ["builtin:cnn"], "black_box": False,
                          "surrogates": [{"name": "builtin:cnn", "sha256": "f0" * 32, "fs": 500.0}],
                          "gradient_modes": ["white-box"], "surrogate_note": None},
        "attacks": [_attack("pgd", "pgd", 0.0, universal=False), _attack("scar", "scar", 0.45),
                    _attack("scar-stealth", "scar-stealth", 0.3)],
        "transfer": [],
        "sweep": {"attack": "scar", "threat_model": "white-box", "params": {"epochs": 4}, "points": [
            {"chest_eps_mv": 0.1, "fooling_rate": _rate(0.05), "ssim": 0.999, "snr_db": 25.0},
            {"chest_eps_mv": 0.6, "fooling_rate": _rate(0.4), "ssim": 0.80, "snr_db": 8.0}]},
        "indicators": [
            {"id": "masked-gradients", "title": "Masked or vanishing gradients", "status": "passed",
             "summary": "White-box gradients are informative on 100% of the probed records.",
             "evidence": {"records_probed": 32}, "attack": None}],
        "gate": {"verdict": "FAIL", "inconclusive": [], "rules": [
            {"id": "scar-fooling", "attack": "scar", "metric": "fooling_rate", "passed": False, **rule},
            {"id": LONG_RULE, "attack": "pgd", "metric": "robust_accuracy", "passed": True,
             **{**rule, "op": ">=", "threshold": 0.5, "value": 1.0, "bound": 0.83, "message": "pass"}}]},
        "samples": {"path": "samples.npz", "sha256": "0" * 64, "record_ids": RECORDS},
        "timing_seconds": {"total": 3.3},
    }


def _artifacts(samples: bool = True, key: str | None = None) -> Artifacts:
    return Artifacts(report_sha256="9" * 64, key_fingerprint=key, samples=_samples() if samples else None,
                     samples_problem=None if samples else "samples.npz was not found next to report.json")


def _pages(pdf: bytes) -> list[str]:
    """Each page's text with whitespace runs (line breaks inside table cells) made single spaces."""
    return [" ".join(page.extract_text().split()) for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


@pytest.fixture(scope="module")
def fail_pdf() -> bytes:
    return render(report_fixture(), Format.PDF, _artifacts())


@pytest.fixture(scope="module")
def fail_pages(fail_pdf: bytes) -> list[str]:
    return _pages(fail_pdf)


def test_page_one_answers_what_a_reviewer_asks_first(fail_pages: list[str]) -> None:
    first = fail_pages[0]
    assert "FAIL" in first
    assert "scar-fooling" in first and "0.65" in first and "0.2" in first  # the failing rule, value and threshold
    assert LONG_RULE not in first  # a rule that passed is not listed as failed
    for tested in ("pgd", "scar-stealth", "ε = 0.01 mV", "low-pass 15 Hz", "smoothing 50 ms", "white-box", "transfer"):
        assert tested in first, tested
    assert "Intended use" in first and "not stated" in first
    assert "builtin:synthetic" in first and "WARNING" in first and "say" in first  # synthetic ECGs say nothing
    assert "20 of 64" in first  # the record shortfall, loudly
    assert "black-box threat model was turned off" in first  # a deviation: asked, not run
    assert "no --transfer-to model was given" in first
    assert "Document id" in first and "Prepared by" in first and "Reviewed by" in first
    assert "signature" in first.lower()


def test_document_fields_and_card_fields_reach_page_one() -> None:
    report = report_fixture()
    report["document"] = {"id": "ECG-RPT-0042", "revision": "C", "prepared_by": "A. Tester, QA"}
    report["profile"]["resolved"]["document"] = {"id": "overridden", "reviewed_by": "B. Reviewer, RA"}
    report["model"]["card"]["intended_use"] = "Triage of 12-lead resting ECGs in adults"
    report["model"]["card"]["version"] = "2.3.1"
    first = _pages(render(report, Format.PDF, _artifacts(samples=False)))[0]
    for text in ("ECG-RPT-0042", "A. Tester, QA", "B. Reviewer, RA", "Triage of 12-lead resting ECGs", "2.3.1"):
        assert text in first, text
    assert "overridden" not in first


def test_inconclusive_is_rendered_with_its_sentence() -> None:
    report = report_fixture()
    sentence = "gradients through this model are masked; a transferred perturbation fooled 78% of records"
    report["gate"].update(verdict="INCONCLUSIVE", inconclusive=[sentence],
                          rules=[{**r, "passed": True} for r in report["gate"]["rules"]])
    report["indicators"].append({"id": "masked-gradients", "title": "Masked", "status": "fired", "summary": sentence,
                                 "evidence": {"share_vanishing": 1.0}, "attack": None})
    pages = _pages(render(report, Format.PDF, _artifacts(samples=False)))
    assert "INCONCLUSIVE" in pages[0] and "not a pass" in pages[0]
    assert sentence in pages[0]
    assert any("FIRED" in page for page in pages[1:])


def test_a_model_without_white_box_says_so() -> None:
    report = report_fixture()
    for attack in report["attacks"]:
        attack["threat_models"] = _threats(0.3, white_box=False)
        attack["worst_case"] = {"threat_model": "transfer", "rule": "the highest fooling rate"}
    pages = _pages(render(report, Format.PDF, _artifacts(samples=False)))
    assert "white-box was not possible" in pages[0].lower()
    assert "LSTM has no converter" in " ".join(pages)


def test_every_font_is_embedded(fail_pdf: bytes) -> None:
    reader = pypdf.PdfReader(io.BytesIO(fail_pdf))
    seen = 0
    for page in reader.pages:
        fonts = (page.get("/Resources") or {}).get("/Font") or {}
        for ref in fonts.values():
            font = ref.get_object()
            descendants = font.get("/DescendantFonts")
            target = descendants[0].get_object() if descendants else font
            descriptor = target.get("/FontDescriptor")
            assert descriptor is not None, f"{font.get('/BaseFont')} has no descriptor (a base-14 font)"
            descriptor = descriptor.get_object()
            assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), font.get("/BaseFont")
            seen += 1
    assert seen > 0


def test_each_attack_page_shows_another_kept_record(fail_pages: list[str]) -> None:
    text = " ".join(fail_pages)
    for k, record in enumerate(RECORDS, start=1):
        assert f"Record {record} (saved example record {k} of 3)" in text


def test_median_beat_marks_the_st_reading_not_r_plus_80(fail_pages: list[str]) -> None:
    text = " ".join(fail_pages)
    assert "R+80" not in text and "R + 80" not in text
    assert "ST at J: clean" in text and "ST at J+60 ms: clean" in text
    assert "PR-segment baseline window" in text


def test_sweep_caption_states_its_epochs_against_the_headline(fail_pages: list[str]) -> None:
    text = " ".join(fail_pages)
    assert "4 epochs (the headline scar figure used 10" in text


def test_a_long_rule_id_is_never_broken(fail_pages: list[str]) -> None:
    results = [page for page in fail_pages if "Acceptance criteria" in page and "4 Results" in page]
    assert results and LONG_RULE in results[0]


@pytest.mark.parametrize("ssims", [[0.999, 0.80], [0.93], [0.2, 0.5, 0.99], [1.0, 1.0]])
def test_ssim_axis_holds_every_point(ssims: list[float]) -> None:
    ticks = ssim_ticks(ssims)
    assert ticks[0] <= min(ssims) and ticks[-1] >= max(ssims)


def test_sections_follow_the_fda_bench_test_order(fail_pages: list[str]) -> None:
    text = " ".join(fail_pages)
    order = ["1 Objectives", "2 Methods", "3 Pre-specified acceptance criteria", "4 Results", "5 Deviations",
             "6 Discussion and conclusions", "7 Limitations", "Appendix A Reproducibility"]
    positions = [text.find(title) for title in order]
    assert -1 not in positions and positions == sorted(positions), dict(zip(order, positions))
    for mapping in ("AML.T0015", "AML.T0043.000", "AML.T0043.001", "AML.T0043.002", "Art. 15(5)", "model evasion"):
        assert mapping in text, mapping


def test_missing_samples_and_sparse_reports_still_render() -> None:
    text = " ".join(_pages(render(report_fixture(), Format.PDF, _artifacts(samples=False))))
    assert "ECG figures are omitted" in text
    sparse = {"gate": {"verdict": "FAIL"}, "attacks": [{"id": "pgd", "attack": "pgd", "metrics": {}}]}
    text = " ".join(_pages(render(sparse, Format.PDF)))
    assert "FAIL" in text and "not stated" in text and "Reproducibility" in text


def test_signed_report_shows_the_key_fingerprint_and_metadata() -> None:
    fingerprint = "SHA256:" + "9f" * 16
    pdf = render(report_fixture(), Format.PDF, _artifacts(samples=False, key=fingerprint))
    assert fingerprint in _pages(pdf)[0] and "UNSIGNED" not in _pages(pdf)[0]
    metadata = pypdf.PdfReader(io.BytesIO(pdf)).metadata
    assert metadata["/ecgaudit:report_sha256"] == "9" * 64


def test_the_same_input_gives_the_same_bytes_and_the_input_is_not_changed() -> None:
    report = report_fixture()
    before = copy.deepcopy(report)
    first = render(report, Format.PDF, _artifacts())
    assert render(report, Format.PDF, _artifacts()) == first
    assert report == before


def test_every_format_renders_through_the_interface() -> None:
    report = report_fixture()
    for fmt in Format:
        out = render(report, fmt, _artifacts(samples=False))
        assert isinstance(out, bytes) and out, fmt
    assert b"scar-fooling" in render(report, Format.JUNIT) and b"scar-fooling" in render(report, Format.MARKDOWN)
