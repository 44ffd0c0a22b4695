"""What every page of the PDF report shares: the report, the files it names in its folder, the figure count."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgaudit.render.pdf.text import get


@dataclass
class Context:
    """The report plus what the figures load from its folder, and the running figure number."""

    report: dict[str, Any]
    report_dir: Path
    report_sha256: str
    key_fingerprint: str | None
    figure: int = 0
    samples: dict[str, np.ndarray] | None = field(init=False, default=None)
    samples_problem: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.samples, self.samples_problem = _load_samples(self.report, self.report_dir)

    @property
    def model_name(self) -> str:
        path = get(self.report, "model", "path")
        return Path(str(path)).name if path else "(unnamed model)"

    @property
    def verdict(self) -> str:
        return str(get(self.report, "gate", "verdict", default="UNKNOWN"))

    @property
    def tool_version(self) -> str:
        return str(get(self.report, "tool", "version", default="?"))

    def next_figure(self) -> int:
        self.figure += 1
        return self.figure

    def file(self, relative: Any) -> Path | None:
        """A file named by the report, only if it lies inside the report folder."""
        if not relative:
            return None
        path = (self.report_dir / str(relative)).resolve()
        return path if path.is_file() and path.is_relative_to(self.report_dir.resolve()) else None


def _load_samples(report: dict[str, Any], report_dir: Path) -> tuple[dict[str, np.ndarray] | None, str | None]:
    name = get(report, "samples", "path", default="samples.npz")
    path = report_dir / str(name)
    if not path.is_file():
        return None, f"{name} was not found next to report.json"
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}, None
    except (OSError, ValueError) as exc:
        return None, f"{name} could not be read ({exc})"


def digest_check(path: Path, expected: Any) -> str:
    if not expected:
        return "no digest recorded"
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    return "matches the report" if actual == expected else f"MISMATCH ({actual[:16]}…)"
