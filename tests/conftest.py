from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

torch.set_flush_denormal(True)
torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "examples" / "models"
REAL_ECG = REPO.parent / "shared" / "data" / "real-ecg"


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run `ecgaudit ARGS...` in-process; return (exit code, stdout, stderr)."""
    from ecgaudit._cli import main

    def _run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return int(exit_info.value.code or 0), out, err

    return _run


@pytest.fixture(scope="session")
def examples_on_path() -> None:
    sys.path.insert(0, str(REPO / "examples"))
