"""Inputs a CI job can hand ecgaudit that it refuses without loading the model: each builder writes one into a folder
and returns the command line that meets it, with the fragment of the refusal's message. Used by
tests/test_cli_startup.py (refused before torch is imported) and benchmarks/bench_refusals.py (how fast)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "examples" / "models" / "cnn.onnx"
CHALLENGE = REPO / "tests" / "data" / "physionet-challenge-2021"


def deep_card(folder: Path) -> list[str]:
    shutil.copy(MODEL, folder / "m.onnx")
    (folder / "m.card.json").write_text("[" * 5000 + "]" * 5000)
    return ["scan", str(folder / "m.onnx"), "--profile", "ci", "--out", str(folder / "out")]


def negative_rate(folder: Path) -> list[str]:
    (folder / "w").mkdir()
    for suffix in (".hea", ".mat"):
        shutil.copy(CHALLENGE / f"HR06000{suffix}", folder / "w")
    header = folder / "w" / "HR06000.hea"
    header.write_text(header.read_text().replace("HR06000 12 500 ", "HR06000 12 -500 ", 1))
    return ["scan", str(MODEL), "--profile", "ci", "--data", str(folder / "w"), "--out", str(folder / "out")]


def symlinked_signal(folder: Path) -> list[str]:
    (folder / "s").mkdir()
    shutil.copy(CHALLENGE / "HR06000.hea", folder / "s")
    (folder / "s" / "HR06000.mat").symlink_to(CHALLENGE / "HR06000.mat")
    return ["attack", str(MODEL), "--attack", "scar", "--data", str(folder / "s"), "--out", str(folder / "out")]


HOSTILE: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "card nested 5,000 deep": (deep_card, "nests arrays or objects 5000 deep"),
    "WFDB header with fs -500": (negative_rate, "gives '-500' where the sampling rate belongs"),
    "WFDB signal file a symlink": (symlinked_signal, "signal file HR06000.mat is a symlink"),
}
