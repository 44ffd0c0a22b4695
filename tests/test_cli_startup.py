"""The CLI answers help, version, listings and bad arguments without importing the model stack (torch,
onnxruntime): a user's typo costs a fraction of a second, not the seconds and hundreds of MB torch takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile_inputs import HOSTILE

MODEL = Path(__file__).resolve().parents[1] / "examples" / "models" / "cnn.onnx"

PROBE = """
import sys
from ecgaudit._cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("torch", "onnxruntime", "onnx2torch", "scipy") if m in sys.modules)
print("EXIT", code, "HEAVY", ",".join(heavy) or "-", file=sys.stderr)
"""


def run_probe(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, **(env or {})})
    last = done.stderr.strip().splitlines()[-1].split()
    return int(last[1]), last[3], done.stderr


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--help"], 0),
        (["--version"], 0),
        (["profiles", "list"], 0),
        (["schema", "report"], 0),
        (["scan", "--help"], 0),
        (["scan", str(MODEL), "--profile", "no-such-profile"], 2),
        (["attack", str(MODEL), "--attack", "no-such-attack"], 2),
        (["scan", str(MODEL), "--seed", "-1"], 2),
        (["scan", str(MODEL), "--device", "tpu"], 2),
        (["scan", str(MODEL), "--threads", "0"], 2),
        (["attack", str(MODEL), "--attack", "pgd", "--device", "cuda:x"], 2),
        (["inspect", str(MODEL), "--threads", "-2"], 2),
        (["verify", "missing.intoto.json"], 2),
    ],
)
def test_cheap_commands_never_load_the_model_stack(argv: list[str], code: int, tmp_path: Path) -> None:
    exit_code, heavy, stderr = run_probe(*argv, cwd=tmp_path)
    assert exit_code == code, stderr
    assert heavy == "-", f"{argv} imported {heavy}"


def test_a_scan_does_load_the_model_stack(tmp_path: Path) -> None:
    """The probe itself can see torch: a command that opens a model reports it (so the test above can fail)."""
    exit_code, heavy, stderr = run_probe("inspect", str(MODEL), "--json", cwd=tmp_path)
    assert exit_code == 0, stderr
    assert "torch" in heavy.split(",")


@pytest.mark.parametrize(("make", "message"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_files_refused_anyway_are_refused_before_the_model_stack_loads(make, message: str, tmp_path: Path) -> None:
    """A hostile card or WFDB header took 13-72 s to refuse on a loaded CI runner, after torch and the model had
    loaded; the checks that need no model now run first (benchmarks/bench_refusals.py times them)."""
    exit_code, heavy, stderr = run_probe(*make(tmp_path), cwd=tmp_path)
    assert exit_code == 2 and message in stderr, stderr
    assert not {"torch", "onnxruntime"} & set(heavy.split(",")), f"imported {heavy} before refusing"


@pytest.mark.parametrize(("card", "code"), [(None, 0), ({"fs": -500}, 2)])
def test_a_run_that_loads_the_model_stack_leaves_nothing_in_tmpdir(card: dict | None, code: int,
                                                                  tmp_path: Path) -> None:
    """torch, torchvision and onnxruntime write into $TMPDIR as they are imported (torchinductor_<user>/, .ses);
    the run keeps them in a folder of its own and removes it, on success and on a card refused after the model
    loaded alike. (tests/test_packaging.py checks a scan that fails its gate, exit 1.)"""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    argv = ["inspect", str(MODEL)]
    if card is not None:
        (tmp_path / "card.json").write_text(json.dumps(card))
        argv += ["--card", str(tmp_path / "card.json")]
    exit_code, heavy, stderr = run_probe(*argv, cwd=tmp_path, env={"TMPDIR": str(tmpdir)})
    assert exit_code == code, stderr
    assert "torch" in heavy.split(",") and "onnxruntime" in heavy.split(",")  # they did load, and write
    assert sorted(p.name for p in tmpdir.iterdir()) == []
