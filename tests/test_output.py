"""The output folder: checked before any model work, one scan at a time, replaced whole or not at all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ecgaudit.folders import lock_path

from .conftest import MODELS, REPO

PROFILE = REPO / "tests" / "profiles" / "scan-lenient.toml"
STRICT = REPO / "tests" / "profiles" / "scan-strict.toml"
MODEL = MODELS / "cnn-ml100.onnx"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete earlier bundle (unsigned) to copy as the folder a new scan would replace."""
    from ecgaudit._cli import main

    out = tmp_path_factory.mktemp("previous") / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", str(MODEL), "--profile", str(PROFILE), "--out", str(out), "--quiet"])
    assert exit_info.value.code == 0
    return out


@pytest.fixture
def no_model_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening the model or running an attack fails the test (as exit 3): the refusal must come first."""
    import ecgaudit._cli.scan as scan_cli
    import ecgaudit.attacks.harness as harness
    import ecgaudit.scan as scan_lib

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the scan started model work before refusing its output path")

    monkeypatch.setattr(scan_cli, "open_model", forbidden)
    # wherever the pipeline looks run_attack up (the scan module binds it, or imports it from the harness late)
    for module in (scan_lib, harness):
        if hasattr(module, "run_attack"):
            monkeypatch.setattr(module, "run_attack", forbidden)


def _scan(run_cli, out: Path, *extra: object) -> tuple[int, str]:
    code, stdout, stderr = run_cli("scan", MODEL, "--profile", PROFILE, "--out", out, "--quiet", *extra)
    return code, " ".join((stdout + stderr).split())


def test_out_that_is_a_file_is_refused_first(run_cli, no_model_work: None, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("a file")
    code, text = _scan(run_cli, out)
    assert code == 2 and "is an existing file, not a folder" in text, text
    assert out.read_text() == "a file"


def test_out_under_a_file_or_an_unwritable_place_is_refused_first(run_cli, no_model_work: None,
                                                                  tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    code, text = _scan(run_cli, tmp_path / "file" / "out")
    assert code == 2 and "is a file, not a folder" in text, text
    # /proc refuses new entries even to root, so this holds whoever runs the suite
    code, text = _scan(run_cli, Path("/proc/ecgaudit-no-such-folder/out"))
    assert code == 2 and "cannot be written" in text, text


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; /proc covers root above")
def test_read_only_out_is_refused_first(run_cli, no_model_work: None, previous: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(previous, out)
    out.chmod(0o555)
    try:
        code, text = _scan(run_cli, out)
    finally:
        out.chmod(0o755)
    assert code == 2 and "read-only" in text, text


def test_junit_xml_that_is_a_folder_is_refused_first(run_cli, no_model_work: None, tmp_path: Path) -> None:
    code, text = _scan(run_cli, tmp_path / "out", "--junit-xml", tmp_path)
    assert code == 2 and "--junit-xml" in text and "is a folder" in text, text
    code, text = _scan(run_cli, tmp_path / "out", "--junit-xml", tmp_path / "out" / "report.json")
    assert code == 2 and "would overwrite part of the report" in text, text


def test_a_folder_of_other_files_is_not_replaced(run_cli, no_model_work: None, tmp_path: Path) -> None:
    out = tmp_path / "project"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, text = _scan(run_cli, out)
    assert code == 2 and "notes.txt" in text and "not part of an ecgaudit report" in text, text
    assert (out / "notes.txt").read_text() == "mine"


def test_a_second_scan_on_the_same_out_is_refused_while_one_holds_it(run_cli, no_model_work: None,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    lock = lock_path(out)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"os.makedirs({str(lock.parent)!r})\nfd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\ntime.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, text = _scan(run_cli, out)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and "another ecgaudit run is writing to" in text, text
    assert lock.parent == out.parent / ".ecgaudit" and lock.name == "out.lock"


def test_bad_data_leaves_the_previous_bundle_untouched(run_cli, previous: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(previous, out)
    before = snapshot(out)
    code, text = _scan(run_cli, out, "--data", tmp_path / "no-such-data.npz")
    assert code == 2, text
    assert snapshot(out) == before


def test_a_new_scan_replaces_the_whole_folder_and_quiet_still_gives_the_verdict(run_cli, previous: Path,
                                                                               tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(previous, out)
    (out / "perturbations" / "stale-attack.npy").write_bytes(b"from a profile that had another attack")
    (out / ".report.json.abc.partial").write_bytes(b"left by an old version")
    code, stdout, _ = run_cli("scan", MODEL, "--profile", STRICT, "--out", out, "--quiet", "--junit-xml",
                              out / "junit.xml")
    assert code == 1
    assert stdout == f"verdict: FAIL: 1 of 2 gate rules failed (clean-accuracy-impossible); report {out}/report.json\n"
    # the JUnit case of the failing rule: its own reason from the profile, the stage's time, the rule as properties
    case = next(c for c in ET.parse(out / "junit.xml").getroot().iter("testcase")
                if c.get("name") == "clean-accuracy-impossible")
    failure = case.find("failure")
    assert failure is not None and failure.text is not None
    assert "why this rule: Cannot pass: a rate's lower 95% bound is below 1" in failure.text
    assert "lower 95% bound must be >= 1" in failure.text
    assert float(case.get("time", "0")) > 0
    assert {p.get("name"): p.get("value") for p in case.iter("property")}["threshold"] == "1"
    assert not (out / "perturbations" / "stale-attack.npy").exists()
    assert not (out / ".report.json.abc.partial").exists()
    assert (out / "report.json").read_bytes() != (previous / "report.json").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.") and p.name != ".out.lock"] == []


def test_without_an_atomic_exchange_the_fallback_renames_still_replace_the_folder(
    run_cli, previous: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import ecgaudit.folders as folders

    monkeypatch.setattr(folders, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    shutil.copytree(previous, out)
    code, text = _scan(run_cli, out, "--seed", "3")
    assert code == 0, text
    assert (out / "report.json").read_bytes() != (previous / "report.json").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_leftovers_of_a_killed_run_are_cleaned_and_a_parked_bundle_is_restored(
    run_cli, no_model_work: None, previous: Path, tmp_path: Path
) -> None:
    from ecgaudit.folders import output_lock

    out = tmp_path / "out"
    # killed between the two fallback renames: the old bundle parked, the new one unfinished, no `out`
    shutil.copytree(previous, tmp_path / ".out.old-abc123")
    shutil.copytree(previous, tmp_path / ".out.new-def456")
    (tmp_path / ".out.new-def456" / "report.json").unlink()
    with output_lock(out):
        pass
    assert snapshot(out) == snapshot(previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_lock_file_goes_when_its_holder_is_done_and_a_stale_one_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl
    import os

    import ecgaudit.folders as folders

    out = tmp_path / "out"
    lock = lock_path(out)
    with folders.output_lock(out):
        assert lock.is_file()
    assert not lock.exists()
    # the holder finishes (removing the file) between our open and our flock: the inode we locked is stale,
    # so the lock is taken again on a new file at the path
    calls: list[int] = []
    real_flock = fcntl.flock

    def flock_after_the_holder_left(fd: int, op: int) -> None:
        if not calls:
            lock.unlink()
        calls.append(os.fstat(fd).st_ino)
        real_flock(fd, op)

    lock.parent.mkdir()
    lock.touch()
    monkeypatch.setattr(folders.fcntl, "flock", flock_after_the_holder_left)
    with folders.output_lock(out):
        assert len(calls) == 2, "the lock taken on the removed file was not trusted"
        assert lock.is_file() and os.stat(lock).st_ino == calls[1]
    assert not lock.exists()


def test_a_killed_runs_lock_and_unfinished_folder_sit_in_one_hidden_folder_that_tools_skip(
    run_cli, previous: Path, tmp_path: Path
) -> None:
    """A SIGKILL leaves the lock file (and, in the write window, an unfinished folder) until the next run on that
    output; they sit in .ecgaudit/ beside it, which git and backup tools skip, and the next run removes it whole."""
    from ecgaudit.folders import output_lock

    out = tmp_path / "out"
    shutil.copytree(previous, out)
    with output_lock(out):
        work = tmp_path / ".ecgaudit"
        assert sorted(p.name for p in work.iterdir()) == [".gitignore", "CACHEDIR.TAG", "out.lock"]
        assert (work / ".gitignore").read_text().splitlines()[-1] == "*"
        assert (work / "CACHEDIR.TAG").read_bytes().startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
        with output_lock(tmp_path / "other"):  # a second output in the same folder shares it and keeps it
            pass
        assert (work / "out.lock").is_file() and (work / "CACHEDIR.TAG").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (tmp_path / ".ecgaudit").mkdir()
    shutil.copytree(previous, tmp_path / ".ecgaudit" / "out.new-abc")  # as a SIGKILL in the write window leaves it
    (tmp_path / ".ecgaudit" / "out.lock").touch()  # stale: its holder was killed, so flock takes it
    code, text = _scan(run_cli, tmp_path / "out")
    assert code == 0, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    code, text = _scan(run_cli, tmp_path / ".ecgaudit")
    assert code == 2 and "is where ecgaudit keeps a run's lock" in text, text
