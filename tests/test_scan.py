"""`ecgaudit scan` end to end on real (tiny) scans: exit codes, report.json, perturbations, JUnit, the step
summary, --baseline, --json, ONNX/TorchScript twins, and what a crash or Ctrl-C leaves behind.

The profiles under tests/profiles/ are tiny (8 + 8 records, one step or epoch); one lenient and one strict scan
are shared by most tests (module-scoped fixtures), so the whole file stays within a few tens of seconds.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "examples" / "models"
PROFILES = Path(__file__).resolve().parent / "profiles"
LENIENT = PROFILES / "scan-lenient.toml"
STRICT = PROFILES / "scan-strict.toml"
SLOW = PROFILES / "scan-slow.toml"
LIGHT = MODELS / "cnn-ml100.onnx"
"""The cheap model (100 Hz, 1000 samples per record, multi-label) for every test that needs no 500 Hz CNN."""

STEP_SUMMARY_BEFORE = "## an earlier step\n\nits summary\n"


@dataclass
class Scan:
    code: int
    stdout: str
    stderr: str
    out: Path
    junit: Path | None = None
    summary: Path | None = None

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.out / "report.json").read_text(encoding="utf-8"))


def run_main(*args: object) -> tuple[int, str, str]:
    """`ecgaudit ARGS...` in-process (usable from module-scoped fixtures, unlike conftest's `run_cli`)."""
    from ecgaudit._cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    code: int | str | None = None
    with redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
    assert isinstance(code, int) or code is None, f"main exited with {code!r}"
    return int(code or 0), stdout.getvalue(), stderr.getvalue()


def scan(model: Path, profile: Path, out: Path, *extra: object, summary: Path | None = None,
         junit: Path | None = None) -> Scan:
    args: list[object] = ["scan", model, "--profile", profile, "--out", out, *extra]
    if junit is not None:
        args += ["--junit-xml", junit]
    with pytest.MonkeyPatch.context() as mp:
        if summary is not None:
            summary.write_text(STEP_SUMMARY_BEFORE, encoding="utf-8")
            mp.setenv("GITHUB_STEP_SUMMARY", str(summary))
        else:
            mp.delenv("GITHUB_STEP_SUMMARY", raising=False)
        code, stdout, stderr = run_main(*args)
    return Scan(code, stdout, stderr, out, junit, summary)


@pytest.fixture(scope="module")
def lenient(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """One passing scan of the 100 Hz model on the default data, with --json, --junit-xml and a step summary."""
    root = tmp_path_factory.mktemp("lenient")
    return scan(LIGHT, LENIENT, root / "out", "--json", junit=root / "junit.xml", summary=root / "summary.md")


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """One failing scan (a rule no model can pass), with the human summary, --junit-xml and a step summary."""
    root = tmp_path_factory.mktemp("strict")
    return scan(LIGHT, STRICT, root / "out", junit=root / "junit.xml", summary=root / "summary.md")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def junit_cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    names = [c.get("name") for c in cases]
    assert len(set(names)) == len(names), f"duplicate test cases: {names}"
    return {str(c.get("name")): c for c in cases}


def partials(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.partial")) if folder.exists() else []


# --- exit codes and the report -------------------------------------------------------------------------------------


def test_lenient_scan_exits_0_and_writes_a_passing_report(lenient: Scan) -> None:
    assert lenient.code == 0, lenient.stderr
    report = lenient.report
    assert report["gate"]["verdict"] == "PASS"
    rules = report["gate"]["rules"]
    assert [r["id"] for r in rules] == ["clean-accuracy", "scar-fooling"]
    assert all(r["passed"] for r in rules)
    assert all(r["value"] is not None and r["bound"] is not None for r in rules)
    assert report["profile"]["name"] == "test-lenient"
    assert report["profile"]["sha256"] == sha256_file(LENIENT)
    assert report["model"]["sha256"] == sha256_file(LIGHT)
    assert [a["id"] for a in report["attacks"]] == ["pgd-10uv", "scar"]
    assert report["data"]["splits"]["n_craft"] == 8 and report["data"]["splits"]["n_eval"] == 8
    assert not partials(lenient.out)


def test_strict_scan_exits_1_and_writes_a_failing_report(strict: Scan) -> None:
    assert strict.code == 1, strict.stderr
    report = strict.report
    assert report["gate"]["verdict"] == "FAIL"
    by_id = {r["id"]: r for r in report["gate"]["rules"]}
    assert by_id["clean-accuracy-impossible"]["passed"] is False
    assert by_id["scar-fooling"]["passed"] is True
    assert "Traceback" not in strict.stdout + strict.stderr
    assert "FAIL" in strict.stdout + strict.stderr  # the human summary's verdict


def test_bad_profile_exits_2_and_writes_nothing(run_cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(LENIENT.read_text(encoding="utf-8").replace("steps = 1", "steps = 0"), encoding="utf-8")
    code, out, err = run_cli("scan", LIGHT, "--profile", bad, "--out", tmp_path / "out")
    assert code == 2, err
    assert "steps" in err and "bad.toml" in err
    assert not (tmp_path / "out").exists()


def crash(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    import ecgaudit.attacks.harness as harness

    def run_attack(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(harness, "run_attack", run_attack)


def test_internal_failure_exits_3_says_bug_and_writes_no_report(
    run_cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    crash(monkeypatch, RuntimeError("injected failure"))
    out = tmp_path / "out"
    code, stdout, err = run_cli("scan", LIGHT, "--profile", LENIENT, "--out", out, "--quiet")
    assert code == 3, err
    assert "bug" in err and "injected failure" in err
    assert "Traceback" not in stdout + err
    assert not (out / "report.json").exists()
    assert not partials(out)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_crash_leaves_the_earlier_bundle_whole(
    run_cli, lenient: Scan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(lenient.out, out)
    before = folder_bytes(out)
    crash(monkeypatch, RuntimeError("injected failure"))
    code, _, err = run_cli("scan", LIGHT, "--profile", LENIENT, "--out", out, "--quiet")
    assert code == 3, err
    assert folder_bytes(out) == before, "a crashed run changed the earlier, complete report folder"
    assert not partials(out)


def test_a_crash_removes_the_earlier_junit_but_not_the_earlier_bundle(
    run_cli, lenient: Scan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(lenient.out, out)
    junit = tmp_path / "junit.xml"
    shutil.copy(lenient.junit, junit)
    crash(monkeypatch, RuntimeError("injected failure"))
    code, _, err = run_cli("scan", LIGHT, "--profile", LENIENT, "--out", out, "--quiet", "--junit-xml", junit)
    assert code == 3, err
    assert not junit.exists(), "an earlier run's passing JUnit file survived a crashed run"
    assert (out / "report.pdf").read_bytes() == (lenient.out / "report.pdf").read_bytes()


def test_keyboard_interrupt_exits_130_and_keeps_the_earlier_bundle(
    run_cli, lenient: Scan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(lenient.out, out)
    before = folder_bytes(out)
    crash(monkeypatch, KeyboardInterrupt())
    code, stdout, err = run_cli("scan", LIGHT, "--profile", LENIENT, "--out", out, "--quiet")
    assert code == 130, err
    assert "Traceback" not in stdout + err
    assert folder_bytes(out) == before
    assert not partials(out)


def test_keyboard_interrupt_says_nothing_complete_was_written(
    run_cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    crash(monkeypatch, KeyboardInterrupt())
    code, _, err = run_cli("scan", LIGHT, "--profile", LENIENT, "--out", tmp_path / "out", "--quiet")
    assert code == 130
    assert "interrupted" in err


# --- the files a scan writes ---------------------------------------------------------------------------------------


def test_universal_perturbations_are_saved_with_the_reported_sha256(lenient: Scan) -> None:
    report = lenient.report
    n_samples = report["model"]["card"]["n_samples"]
    saved = {p.stem for p in (lenient.out / "perturbations").glob("*.npy")}
    universal = {a["id"] for a in report["attacks"] if a["universal"]}
    assert universal == {"scar"}
    assert saved == universal, "a .npy per universal attack, none for per-record attacks"
    for attack in report["attacks"]:
        if not attack["universal"]:
            assert "perturbation" not in attack
            continue
        meta = attack["perturbation"]
        path = lenient.out / meta["path"]
        assert meta["path"] == f"perturbations/{attack['id']}.npy"
        v = np.load(path, allow_pickle=False)
        assert v.shape == (12, n_samples) == tuple(meta["shape"])
        assert v.dtype == np.float32 and np.isfinite(v).all() and np.abs(v).max() > 0
        assert sha256_file(path) == meta["sha256"]
    # Where the report lists its artefacts, each hash is that of the file on disk.
    for artifact in report.get("artifacts", []):
        assert sha256_file(lenient.out / artifact["path"]) == artifact["sha256"], artifact["path"]


def test_default_data_is_builtin_synthetic_at_the_models_sampling_rate(lenient: Scan) -> None:
    # The lenient scan passes no --data: the 100 Hz model must get 100 Hz synthetic records.
    report = lenient.report
    assert report["model"]["card"]["fs"] == 100.0
    assert report["data"]["fs"] == 100.0
    assert "synthetic" in report["data"]["source"]
    assert report["data"]["n_records"] == 16
    assert report["clean"]["accuracy"]["total"] == 8


def test_json_prints_exactly_one_document(lenient: Scan) -> None:
    document = json.loads(lenient.stdout)  # fails on progress output, tables or a second document
    report = lenient.report
    assert document["verdict"] == report["gate"]["verdict"] == "PASS"
    assert [r["id"] for r in document["rules"]] == [r["id"] for r in report["gate"]["rules"]]
    assert all(r["passed"] for r in document["rules"])
    assert document["profile"]["sha256"] == report["profile"]["sha256"]
    assert {a["id"]: a["fooling_rate"]["value"] for a in document["attacks"]} == \
        {a["id"]: a["metrics"]["fooling_rate"]["value"] for a in report["attacks"]}


def test_junit_has_one_case_per_rule_and_indicator_and_none_fails_on_a_pass(lenient: Scan) -> None:
    cases = junit_cases(lenient.junit)
    rules = {r["id"] for r in lenient.report["gate"]["rules"]}
    indicators = {"indicator-" + i["id"] + (f"-{i['attack']}" if i.get("attack") else "")
                  for i in lenient.report["indicators"] if i["status"] != "not-applicable"}
    assert rules and indicators
    assert set(cases) == rules | indicators
    assert all(case.find("failure") is None for case in cases.values())


def test_junit_failure_carries_the_measured_value_and_threshold(strict: Scan) -> None:
    cases = junit_cases(strict.junit)
    rules = {r["id"]: r for r in strict.report["gate"]["rules"]}
    assert set(rules) <= set(cases)
    failing = rules["clean-accuracy-impossible"]
    failure = cases["clean-accuracy-impossible"].find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert f"{failing['value']:.4g}" in message and f"{failing['bound']:.4g}" in message, message
    assert ">= 1" in message, message
    assert cases["scar-fooling"].find("failure") is None
    root = ET.parse(strict.junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("tests") == str(len(cases))


def test_step_summary_gets_the_verdict_appended(lenient: Scan, strict: Scan) -> None:
    for result, verdict in ((lenient, "PASS"), (strict, "FAIL")):
        text = result.summary.read_text(encoding="utf-8")
        assert text.startswith(STEP_SUMMARY_BEFORE), "the earlier step's summary must be kept (append, not write)"
        added = text[len(STEP_SUMMARY_BEFORE):]
        assert verdict in added
        assert ("FAIL" if verdict == "PASS" else "PASS") not in added.splitlines()[0]
        for rule in result.report["gate"]["rules"]:
            assert rule["id"] in added


# --- --baseline ----------------------------------------------------------------------------------------------------


def test_baseline_with_better_numbers_is_a_regression(lenient: Scan, tmp_path: Path) -> None:
    old = copy.deepcopy(lenient.report)
    scar = next(a for a in old["attacks"] if a["id"] == "scar")
    tolerance = old["profile"]["resolved"]["gate"]["regression_tolerance"]
    assert scar["metrics"]["fooling_rate"]["value"] > tolerance, (
        "precondition: the lenient profile's SCAR must fool more than the tolerance; raise its ε")
    scar["metrics"]["fooling_rate"].update(value=0.0, successes=0, ci95=[0.0, 0.3])
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(old), encoding="utf-8")

    result = scan(LIGHT, LENIENT, tmp_path / "out", "--quiet", "--baseline", baseline, junit=tmp_path / "junit.xml")
    assert result.code == 1, result.stderr
    report = result.report
    assert report["gate"]["verdict"] == "FAIL"
    rules = {r["id"]: r for r in report["gate"]["rules"]}
    assert rules["clean-accuracy"]["passed"] and rules["scar-fooling"]["passed"]  # thresholds still pass
    regression = rules["regression-scar-fooling"]
    assert regression["passed"] is False and regression["kind"] == "regression"
    assert regression["baseline_value"] == 0.0
    assert regression["value"] == pytest.approx(scar_rate(lenient.report))
    assert rules["regression-clean-accuracy"]["passed"], "same model, same seed: accuracy did not change"
    failure = junit_cases(result.junit)["regression-scar-fooling"].find("failure")
    assert failure is not None and "REGRESSION" in failure.get("message", "")


def scar_rate(report: dict[str, Any]) -> float:
    return next(a for a in report["attacks"] if a["id"] == "scar")["metrics"]["fooling_rate"]["value"]


def test_baseline_from_another_profile_exits_2(lenient: Scan, tmp_path: Path) -> None:
    old = copy.deepcopy(lenient.report)
    old["profile"]["name"] = "samd"
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(old), encoding="utf-8")
    out = tmp_path / "out"
    result = scan(LIGHT, LENIENT, out, "--quiet", "--baseline", baseline)
    assert result.code == 2, result.stderr
    assert "samd" in result.stderr and "test-lenient" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (out / "report.json").exists()


def test_baseline_from_another_profile_is_rejected_before_opening_the_model(
    run_cli, lenient: Scan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import ecgaudit._cli.scan as scan_cli

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("scan opened the model before checking the baseline's profile")

    monkeypatch.setattr(scan_cli, "open_model", forbidden)
    old = copy.deepcopy(lenient.report)
    old["profile"]["name"] = "samd"
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(old), encoding="utf-8")
    code, _, err = run_cli("scan", LIGHT, "--profile", LENIENT, "--out", tmp_path / "out", "--baseline", baseline)
    assert code == 2, err


def test_baseline_that_is_not_a_report_exits_2(run_cli, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text('{"verdict": "PASS"}', encoding="utf-8")
    code, out, err = run_cli("scan", LIGHT, "--profile", LENIENT, "--out", tmp_path / "out", "--baseline", baseline)
    assert code == 2, err
    assert "baseline.json" in err and "Traceback" not in out + err


# --- runtimes ------------------------------------------------------------------------------------------------------


def test_onnx_and_torchscript_twins_give_the_same_verdicts(tmp_path: Path) -> None:
    results = {}
    for name in ("cnn.onnx", "cnn.pt"):
        result = scan(MODELS / name, LENIENT, tmp_path / name, "--json")
        assert result.code == 0, result.stderr
        results[name] = (json.loads(result.stdout), result.report)
    (onnx_doc, onnx_report), (ts_doc, ts_report) = results["cnn.onnx"], results["cnn.pt"]
    assert onnx_report["model"]["format"] != ts_report["model"]["format"]
    assert onnx_doc["verdict"] == ts_doc["verdict"]
    assert [(r["id"], r["passed"]) for r in onnx_doc["rules"]] == [(r["id"], r["passed"]) for r in ts_doc["rules"]]
    assert onnx_doc["clean_accuracy"]["value"] == pytest.approx(ts_doc["clean_accuracy"]["value"], abs=0.02)
    for a, b in zip(onnx_doc["attacks"], ts_doc["attacks"], strict=True):
        assert a["id"] == b["id"]
        assert a["fooling_rate"]["value"] == pytest.approx(b["fooling_rate"]["value"], abs=0.02), a["id"]


# --- a real Ctrl-C, and the SIGTERM torchrun and schedulers send -----------------------------------------------------


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_mid_scan_leaves_the_earlier_report_and_no_partial_file(
    tmp_path: Path, sig: signal.Signals, code: int, word: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "report.json"
    earlier.write_text('{"gate": {"verdict": "PASS"}}\n', encoding="utf-8")
    # Rich draws progress bars only on a terminal; these make it draw them into the pipe, so the test sees
    # the moment crafting starts.
    env = dict(os.environ, TTY_COMPATIBLE="1", TTY_INTERACTIVE="1", COLUMNS="100")
    env.pop("GITHUB_STEP_SUMMARY", None)
    # A shell without job control starts background jobs with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler; a suite run with `&` or nohup would pass that on. The scan must see Ctrl-C.
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecgaudit", "scan", str(LIGHT), "--profile", str(SLOW), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stderr is not None
        os.set_blocking(proc.stderr.fileno(), False)
        seen = b""
        # Wait for SCAR's crafting bar (or, should the bars not show, a minute: it is still mid-scan then).
        deadline = time.monotonic() + 60
        while b"crafting" not in seen and time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"scan ended before the interrupt (rc {proc.returncode}):\n{seen.decode(errors='replace')}")
            seen += proc.stderr.read() or b""
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(sig)
        os.set_blocking(proc.stderr.fileno(), True)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = (seen + stderr + stdout).decode(errors="replace")
    assert proc.returncode == code, text[-2000:]
    assert word in text and "Traceback" not in text
    assert earlier.read_text(encoding="utf-8") == '{"gate": {"verdict": "PASS"}}\n', "an interrupted run changed it"
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    assert not partials(out), partials(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no unfinished folder or lock file left beside it"


def test_an_unwritable_step_summary_warns_and_keeps_the_verdict_and_the_report(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "summary.md"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GITHUB_STEP_SUMMARY", str(missing))
        code, stdout, stderr = run_main("scan", LIGHT, "--profile", STRICT, "--out", tmp_path / "out", "--json")
    assert code == 1, stderr  # the gate's FAIL, not an internal error
    assert "GITHUB_STEP_SUMMARY" in stderr and str(missing) in stderr and "Traceback" not in stderr
    assert "writing the report, its PDF" in stderr  # the last seconds of a scan say what they do
    assert json.loads(stdout)["verdict"] == "FAIL"
    assert (tmp_path / "out" / "report.json").is_file() and not missing.exists()
