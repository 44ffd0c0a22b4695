"""What a reader of ecgaudit's output sees besides the PDF: the console summary, CI progress lines, the document
fields a scan stamps into its report, and the example records the scan keeps for the PDF."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pypdf
import pytest

from ecgaudit._cli._progress import PlainReporter, wide_console
from ecgaudit.render.console import render_console, verdict_line
from ecgaudit.render.interface import Format, render
from ecgaudit.scan import N_SAMPLES_KEPT, keep_samples
from tests.test_pdf import report_fixture

REPO = Path(__file__).resolve().parents[1]
LIGHT = REPO / "examples" / "models" / "cnn-ml100.onnx"
DOCUMENT_PROFILE = Path(__file__).resolve().parent / "profiles" / "scan-document.toml"


def _plain(text: str) -> str:
    """The text without whitespace and table borders, so a folded cell reads as one string."""
    return re.sub(r"[\s│┃║|]", "", text)


# --- the console summary ---------------------------------------------------------------------------------------------


def test_console_shows_threat_models_noise_floor_indicators_and_shortfall() -> None:
    text = render_console(report_fixture()).decode()
    for shown in ("white-box", "transfer", "black-box", "off: the profile turns this threat model off",
                  "noise floor", "max 0.0%", "masked-gradients", "RECORD SHORTFALL", "20 of 64",
                  "builtin:synthetic", "no --transfer-to model was given", "verdict: FAIL"):
        assert _plain(shown) in _plain(text), shown


def test_console_shows_why_a_verdict_is_inconclusive() -> None:
    report = report_fixture()
    sentence = "gradients through this model are masked; a transferred perturbation fooled 78% of records"
    report["gate"].update(verdict="INCONCLUSIVE", inconclusive=[sentence])
    report["indicators"].append({"id": "masked-gradients", "status": "fired", "summary": sentence, "attack": None})
    text = render_console(report).decode()
    assert "verdict: INCONCLUSIVE" in text and f"inconclusive: {sentence}" in text and "FIRED" in text
    assert "masked-gradients" in verdict_line(report, "r.json") and "INCONCLUSIVE" in verdict_line(report, "r.json")


def test_console_never_cuts_an_id_or_a_digest() -> None:
    report = report_fixture()
    digest = "d" * 64
    long_id = "an-attack-id-much-longer-than-any-console-column-would-hold-" * 2
    report["attacks"][1]["id"] = long_id
    report["gate"]["rules"][0]["message"] = f"perturbation sha256 {digest}"
    text = render_console(report).decode()
    assert "…" not in text
    assert digest in _plain(text) and long_id in _plain(text)


def test_wide_console_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = wide_console()
    assert not console.is_terminal and console.width >= 160


def test_markdown_and_junit_come_through_the_interface() -> None:
    report = report_fixture()
    markdown = render(report, Format.MARKDOWN).decode()
    assert "builtin:synthetic" in markdown and "20 of 64" in markdown and "worst case" in markdown


# --- CI progress -----------------------------------------------------------------------------------------------------


def test_plain_progress_gives_start_rate_limited_updates_and_end() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream, interval_s=3600.0)
    update = reporter.task("scar (white-box): craft", 10)
    for done in range(1, 11):
        update(done, 10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines  # the start and the end; the 8 updates between fall inside the interval
    assert re.fullmatch(r"\[\s*\d+\.\ds\] scar \(white-box\): craft:\s+0% \(0/10\)", lines[0]), lines[0]
    assert lines[1].endswith("100% (10/10)")

    stream = io.StringIO()
    update = PlainReporter(stream, interval_s=0.0).task("sweep", 4)
    for done in range(1, 5):
        update(done, 4)
    assert [line.split("] ")[1] for line in stream.getvalue().splitlines()] == [
        "sweep:   0% (0/4)", "sweep:  25% (1/4)", "sweep:  50% (2/4)", "sweep:  75% (3/4)", "sweep: 100% (4/4)"]


# --- a scan: progress lines, document fields, summary ----------------------------------------------------------------


@pytest.fixture(scope="module")
def document_scan(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str, Path]:
    from tests.test_scan import run_main

    out = tmp_path_factory.mktemp("document") / "out"
    code, stdout, stderr = run_main("scan", LIGHT, "--profile", DOCUMENT_PROFILE, "--out", out,
                                    "--document-id", "ECG-RPT-0042", "--prepared-by", "A. Tester, QA")
    return code, stdout, stderr, out


def test_scan_prints_plain_progress_lines_when_not_a_terminal(document_scan: tuple[int, str, str, Path]) -> None:
    code, stdout, stderr, _ = document_scan
    assert code == 0, stderr
    progress = [line for line in stderr.splitlines() if re.match(r"\[\s*\d+\.\ds\] .+: +\d+% \(\d+/\d+\)$", line)]
    assert any("clean evaluation" in line for line in progress), stderr
    assert any("scar" in line and "100%" in line for line in progress), stderr
    assert "\x1b[" not in stderr  # no terminal control codes in a log
    assert "verdict: PASS" in stdout and "white-box" in stdout


def test_document_flags_override_the_profile_and_reach_report_and_pdf(
        document_scan: tuple[int, str, str, Path]) -> None:
    _, _, _, out = document_scan
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["document"] == {"id": "ECG-RPT-0042", "revision": "A", "intended_use": "Test only: no clinical use",
                                  "reviewed_by": "R. Reviewer, regulatory affairs", "prepared_by": "A. Tester, QA"}
    first = " ".join(pypdf.PdfReader(out / "report.pdf").pages[0].extract_text().split())
    for text in ("ECG-RPT-0042", "A. Tester, QA", "R. Reviewer, regulatory affairs", "Test only: no clinical use",
                 "PASS"):
        assert text in first, text
    assert "PROFILE-DOC-ID" not in first


def test_a_document_flag_with_a_line_break_is_refused(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("scan", LIGHT, "--profile", DOCUMENT_PROFILE, "--out", tmp_path / "out",
                           "--document-id", "line one\nline two")
    assert code == 2 and "one line of printable text" in err
    assert not (tmp_path / "out" / "report.json").exists()


# --- the records the scan keeps for the PDF --------------------------------------------------------------------------


def test_kept_samples_are_clean_distinct_and_most_fooled() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 12, 50)).astype(np.float32)
    X[1] = X[0]  # an exact duplicate of record 0
    ids = ("r0", "r0-copy", "flat", "r3", "r4", "r5")
    evaluation = SimpleNamespace(X=X, record_ids=ids, n_records=6, fs=100.0, leads=tuple(f"L{i}" for i in range(12)),
                                 quality=(SimpleNamespace(record_id="flat", lead="V2", kind="flat"),))
    fooled = np.array([True, True, True, False, True, False])
    outcome = SimpleNamespace(fooled=fooled, perturbation=np.zeros((12, 50), np.float32), record_perturbations=None,
                              adversarial_decisions=np.array([1, 1, 1, 0, 1, 0]))
    samples = keep_samples(evaluation, {"scar": outcome}, np.zeros(6, dtype=int), ("A", "B"))
    kept = list(samples["record_ids"])
    assert len(kept) == N_SAMPLES_KEPT == 3
    assert kept[:2] == ["r0", "r4"]  # fooled, clean, distinct; the copy of r0 and the flat record are passed over
    assert "flat" not in kept and "r0-copy" not in kept
    assert len({samples["X"][i].tobytes() for i in range(3)}) == 3
    assert list(samples["decision_scar"][:2]) == ["B", "B"]
