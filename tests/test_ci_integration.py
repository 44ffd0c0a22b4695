"""The GitHub Action (action.yml) and the GitLab template (examples/ci/gitlab-ci.yml), run as CI would run them.

Their shell steps are executed here, in a temporary folder, against the bundled CNN, with ecgaudit installed from
the wheel (tests/installed.py) into the environment the steps name, as a restored cache would hold it. Steps that
call other actions (upload-artifact, the JUnit report) cannot run here: what they are handed is checked instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.installed import Installed, fresh_venv

pytestmark = pytest.mark.slow

ACTION = REPO / "action.yml"
GITLAB = REPO / "examples" / "ci" / "gitlab-ci.yml"
_EXPRESSION = re.compile(r"\$\{\{\s*([a-z_]+)\.([A-Za-z0-9_.-]+)\s*\}\}")


def _action() -> dict:
    return yaml.safe_load(ACTION.read_text())


def _read_outputs(path: Path) -> dict[str, str]:
    outputs = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            outputs[key] = value
    return outputs


def run_action(inputs: dict[str, str], work: Path) -> tuple[list[dict], str]:
    """Run the action's shell steps in order as a runner would (bash -eo pipefail, inputs with their defaults,
    step outputs through GITHUB_OUTPUT); `uses` steps are recorded with their expanded `with`. Returns one entry
    per step and the step summary."""
    action = _action()
    given = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    unknown = set(inputs) - set(given)
    assert not unknown, f"the action has no inputs {unknown}"
    given.update(inputs)
    temp = work / "runner-temp"
    temp.mkdir()
    summary = work / "step-summary.md"
    summary.touch()
    steps: dict[str, dict[str, str]] = {}
    context = {"inputs": given, "github": {"action_path": str(REPO)}, "runner": {"temp": str(temp)}}

    def expand(text: str) -> str:
        def value(match: re.Match[str]) -> str:
            scope, name = match.groups()
            if scope == "steps":
                step_id, _, output = name.partition(".outputs.")
                return steps.get(step_id, {}).get(output, "")
            assert scope in context and name in context[scope], f"unexpected expression {match.group(0)}"
            return context[scope][name]
        return _EXPRESSION.sub(value, text)

    ran = []
    for step in action["runs"]["steps"]:
        if "uses" in step:
            ran.append({"uses": step["uses"], "if": step.get("if", ""),
                        "with": {k: expand(str(v)) for k, v in step.get("with", {}).items()}})
            continue
        assert step["shell"] == "bash" and "${{" not in step["run"], "inputs reach scripts through env only"
        output = work / f"output-{len(ran)}"
        output.touch()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "GITHUB_")) and k != "PYTHONPATH"}
        env.update({k: expand(str(v)) for k, v in step.get("env", {}).items()})
        env.update(GITHUB_OUTPUT=str(output), GITHUB_STEP_SUMMARY=str(summary), HOME=str(work / "home"))
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=work,
                              env=env, capture_output=True, text=True, timeout=600)
        if "id" in step:
            steps[step["id"]] = _read_outputs(output)
        ran.append({"name": step["name"], "code": done.returncode, "stdout": done.stdout, "stderr": done.stderr})
        if done.returncode != 0:
            break
    return ran, summary.read_text()


@pytest.fixture
def cached_venv(installed_wheel: Installed, tmp_path: Path) -> Path:
    """ecgaudit's environment as the cache step restores it: dependencies present, ecgaudit about to be installed."""
    return fresh_venv(tmp_path / "venv")


def test_the_action_scans_the_bundled_model_signs_publishes_and_fails_the_job_with_the_reason(
        installed_wheel: Installed, cached_venv: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()).decode()
    work = tmp_path / "work"
    work.mkdir()
    ran, summary = run_action({"model": "builtin:cnn", "data": "builtin:synthetic:n=48", "key": pem,
                               "baseline": "baseline/report.json", "package": str(installed_wheel.wheel),
                               "pip-args": "--no-deps --no-index", "venv": str(cached_venv)}, work)
    install, scan, upload, junit, gate = ran
    assert install["code"] == 0 and scan["code"] == 0, (install["stderr"], scan["stderr"])
    assert "no baseline report at baseline/report.json" in scan["stdout"]  # a first run: warned, not refused
    report = json.loads((work / "ecgaudit-report" / "report.json").read_text())
    assert report["gate"]["verdict"] == "FAIL" and report["signing"]["signed"] is True
    assert (work / "ecgaudit-report" / "report.dsse.json").is_file()
    assert not list((work / "runner-temp").glob("*.pem"))  # the key written from the secret is gone
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["with"]["path"] == "ecgaudit-report"
    assert junit["with"]["report_paths"] == "ecgaudit-report/junit.xml"
    assert (work / junit["with"]["report_paths"]).is_file()
    failed = [rule["id"] for rule in report["gate"]["rules"] if not rule["passed"]]
    assert gate["code"] == 1 and "::error title=ecgaudit FAIL::a gate rule failed: " in gate["stdout"]
    assert all(rule_id in gate["stdout"] for rule_id in failed), gate["stdout"]
    assert "FAIL" in summary and "scar-fooling" in summary  # ecgaudit's own markdown summary


def test_the_action_names_a_bad_input_and_ends_with_exit_2(installed_wheel: Installed, cached_venv: Path,
                                                          tmp_path: Path) -> None:
    ran, summary = run_action({"model": "missing.onnx", "package": str(installed_wheel.wheel),
                               "pip-args": "--no-deps --no-index", "venv": str(cached_venv)}, tmp_path)
    gate = ran[-1]
    assert gate["code"] == 2 and "::error title=ecgaudit bad input::error: model file missing.onnx" in gate["stdout"]
    assert "bad input (exit 2)" in summary


def test_the_gitlab_template_runs_its_job_and_keeps_the_report_and_junit(installed_wheel: Installed,
                                                                         tmp_path: Path) -> None:
    template = yaml.safe_load(GITLAB.read_text())
    job = template["ecgaudit"]
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["paths"] == ["$ECGAUDIT_OUT/"]
    assert job["artifacts"]["reports"]["junit"] == "$ECGAUDIT_OUT/junit.xml"
    assert job["cache"]["paths"] == [job["variables"]["ECGAUDIT_VENV"] + "/"]
    fresh_venv(tmp_path / job["variables"]["ECGAUDIT_VENV"])  # as the cache restores it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "GITHUB_")) and k != "PYTHONPATH"}
    env.update(job["variables"])
    env.update(ECGAUDIT_MODEL="builtin:cnn", ECGAUDIT_DATA="builtin:synthetic:n=48",
               ECGAUDIT_PACKAGE=str(installed_wheel.wheel), ECGAUDIT_PIP_ARGS="--no-deps --no-index",
               CI_COMMIT_REF_NAME="main", CI_DEFAULT_BRANCH="main", CI_JOB_NAME="ecgaudit")
    done = subprocess.run(["bash", "-c", "\n".join(job["script"])], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 1, done.stderr
    assert "ecgaudit: FAIL (exit 1): a gate rule failed" in done.stdout
    out = tmp_path / job["variables"]["ECGAUDIT_OUT"]
    assert (out / "report.json").is_file() and (out / "junit.xml").is_file()


def test_the_readme_workflow_uses_the_action_with_its_inputs_and_names_every_exit_code() -> None:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Gate your CI"):]
    section = section[:section.index("\n## ", 4)]
    workflow = yaml.safe_load(section[section.index("```yaml") + 7:section.index("```", section.index("```yaml") + 7)])
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    (scan,) = [step for step in steps if "ecgaudit/ecgaudit@" in step.get("uses", "")]
    assert set(scan["with"]) <= set(_action()["inputs"]), "the README passes inputs the action does not have"
    assert any("actions/cache@" in step.get("uses", "") and
               step["with"]["path"] == scan["with"].get("venv", _action()["inputs"]["venv"]["default"])
               for step in steps), "the workflow caches the environment the action installs into"
    assert "baseline" in scan["with"]
    for code in ("0", "1", "2", "3", "4"):
        assert re.search(rf"\|\s*{code}\s*\|", section), f"exit code {code} is not explained"
    assert "examples/ci/gitlab-ci.yml" in section
