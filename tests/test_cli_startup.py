"""The CLI answers help, version, listings and bad arguments without importing the model stack (torch,
onnxruntime): a user's typo costs a fraction of a second, not the seconds and hundreds of MB torch takes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


def run_probe(*argv: str, cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=cwd, timeout=60)
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
