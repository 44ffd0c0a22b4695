from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

torch.set_flush_denormal(True)
torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "examples" / "models"
TEST_DATA = REPO / "tests" / "data"
"""Real records shipped with the tests (see tests/data/README.md for sources and licences)."""
CHALLENGE = TEST_DATA / "physionet-challenge-2021"
PTB = TEST_DATA / "ptb-diagnostic"


def data_path(*parts: str) -> Path:
    """A file or folder under tests/data; fails the test loudly (never skips) when the checkout lacks it."""
    path = TEST_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"test data {path} is missing: this checkout of the repository is incomplete "
                    "(tests/data is tracked in git; restore it with `git checkout -- tests/data`).")
    return path


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
