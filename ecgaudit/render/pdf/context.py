"""What every page of the PDF report shares: the report, the arrays its caller loaded, the figure count."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgaudit.render.facts import get
from ecgaudit.render.interface import Artifacts


@dataclass
class Context:
    """The report plus its loaded artifacts, and the running figure number."""

    report: Mapping[str, Any]
    artifacts: Artifacts
    figure: int = 0
    subsection: int = 0
    """The last numbered subsection of section 4 (the results, whose parts depend on the report)."""

    @property
    def report_sha256(self) -> str:
        return self.artifacts.report_sha256 or "not given"

    @property
    def key_fingerprint(self) -> str | None:
        return self.artifacts.key_fingerprint

    @property
    def samples(self) -> Mapping[str, np.ndarray] | None:
        return self.artifacts.samples

    @property
    def samples_problem(self) -> str | None:
        return self.artifacts.samples_problem

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

    def result_heading(self, title: str) -> str:
        """'4.k title', numbered in the order the results are built."""
        self.subsection += 1
        return f"4.{self.subsection} {title}"

    def next_figure(self) -> int:
        self.figure += 1
        return self.figure

    def array(self, relative: Any) -> np.ndarray | None:
        """A perturbation the report names, as loaded by the caller."""
        return self.artifacts.arrays.get(str(relative)) if relative else None

    def digest_check(self, relative: Any, expected: Any) -> str:
        """Whether the file the report names matches the digest it records, in words."""
        if not relative:
            return "no file recorded"
        if not expected:
            return "no digest recorded"
        found = self.artifacts.digests.get(str(relative))
        if found is None:
            return self.artifacts.problems.get(str(relative), "not loaded")
        return "matches the report" if found == expected else f"MISMATCH ({found[:16]}…)"
