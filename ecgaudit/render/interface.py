"""The renderers' one interface: `render(report, fmt, artifacts) -> bytes`.

A renderer turns a finished report (the dict `report.json` holds) into one readable form: the PDF for a
reviewer, JUnit XML for CI, a markdown step summary, the console summary as plain text. It reads the report
and the arrays its caller loaded (`Artifacts`), never a file, and it never decides an exit code. Loading the
files a report names is the caller's job (`ecgaudit.render.files.load_artifacts`); so is writing the bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import numpy as np


class Format(StrEnum):
    PDF = "pdf"
    JUNIT = "junit"
    MARKDOWN = "markdown"
    CONSOLE = "console"


@dataclass(frozen=True)
class Artifacts:
    """What a renderer may show beside the report: the report's own digest and the files it names, loaded."""

    report_sha256: str | None = None
    """SHA-256 of the exact `report.json` bytes (the PDF prints it on every page and in its metadata)."""
    key_fingerprint: str | None = None
    """Fingerprint of the key that signed the report; None for an unsigned one."""
    samples: Mapping[str, np.ndarray] | None = None
    """The arrays of `samples.npz` (`X`, `record_ids`, `fs`, `leads`, `delta_<id>`, `decision_<id>`, …)."""
    samples_problem: str | None = None
    """Why `samples` is None, in words."""
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Each perturbation the report names, by its path relative to the report folder."""
    digests: Mapping[str, str | None] = field(default_factory=dict)
    """Each file the report names (relative path) -> SHA-256 of the file as found; None when it is missing."""
    problems: Mapping[str, str] = field(default_factory=dict)
    """Relative path -> why the file could not be read."""


Renderer = Callable[[Mapping[str, Any], Artifacts], bytes]


def _assert_never(value: NoReturn) -> NoReturn:  # pragma: no cover - a new Format without a renderer
    raise AssertionError(f"no renderer for {value!r}")


def renderer(fmt: Format) -> Renderer:
    """The renderer of `fmt` (imported on demand: reportlab is slow to import and only the PDF needs it)."""
    if fmt is Format.PDF:
        from ecgaudit.render.pdf import render_pdf

        return render_pdf
    if fmt is Format.JUNIT:
        from ecgaudit.render.junit import render_junit

        return render_junit
    if fmt is Format.MARKDOWN:
        from ecgaudit.render.markdown import render_markdown

        return render_markdown
    if fmt is Format.CONSOLE:
        from ecgaudit.render.console import render_console

        return render_console
    _assert_never(fmt)


def render(report: Mapping[str, Any], fmt: Format | str = Format.PDF, artifacts: Artifacts | None = None) -> bytes:
    """`report` rendered as `fmt`; the same report and artifacts always give the same bytes."""
    return renderer(Format(fmt))(report, artifacts or Artifacts())
