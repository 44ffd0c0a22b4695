"""Progress and consoles for the CLI, on a terminal and in CI.

On a terminal: rich bars (one per task, with ETA) on stderr. Anywhere else (a CI log, a pipe, a file): plain
lines on stderr, one when a stage starts, then at most one every `PLAIN_INTERVAL_S` seconds per stage while it
runs, and one when it ends: `[  12.3s] scar (white-box): craft  40% (8/20)`. stdout stays clean for `--json`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ecgaudit.progress import ProgressFn, no_progress
from ecgaudit.render.console import PLAIN_WIDTH

PLAIN_INTERVAL_S = 10.0
"""Least time between two plain progress lines of one stage (CI logs stay readable on a long scan)."""


def wide_console(*, stderr: bool = False) -> Console:
    """A console that never cuts text: when the stream is not a terminal it is `PLAIN_WIDTH` columns wide (or
    `$COLUMNS`, if wider), so ids and digests in a CI log stay whole."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    columns = os.environ.get("COLUMNS", "")
    width = max(PLAIN_WIDTH, int(columns)) if columns.isdigit() else PLAIN_WIDTH
    return Console(stderr=stderr, width=width)


class PlainReporter:
    """Progress as plain lines (stage, percent, elapsed), for output that is not a terminal."""

    def __init__(self, stream: TextIO | None = None, *, interval_s: float = PLAIN_INTERVAL_S) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self.started = time.monotonic()

    def __enter__(self) -> PlainReporter:
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _line(self, description: str, done: int, total: int) -> None:
        stream = self.stream or sys.stderr
        share = done / total if total > 0 else 1.0
        elapsed = time.monotonic() - self.started
        stream.write(f"[{elapsed:7.1f}s] {description}: {share:4.0%} ({done}/{total})\n")
        stream.flush()

    def task(self, description: str, total: int) -> ProgressFn:
        state = {"last": time.monotonic(), "finished": False}
        self._line(description, 0, max(total, 1))

        def update(done: int, new_total: int) -> None:
            new_total = max(new_total, 1)
            now = time.monotonic()
            finished = done >= new_total
            if state["finished"] or not (finished or now - state["last"] >= self.interval_s):
                return
            state["last"], state["finished"] = now, finished
            self._line(description, done, new_total)

        return update


class RichReporter:
    """Bars go to stderr so stdout stays clean for `--json`."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
            transient=False,
        )
        self.enabled = enabled

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def task(self, description: str, total: int) -> ProgressFn:
        if not self.enabled:
            return no_progress
        task_id = self.progress.add_task(description, total=max(total, 1))

        def update(done: int, new_total: int) -> None:
            self.progress.update(task_id, completed=done, total=max(new_total, 1))

        return update


class _Silent:
    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def task(self, description: str, total: int) -> ProgressFn:
        return no_progress


def reporter(*, enabled: bool = True) -> RichReporter | PlainReporter | _Silent:
    """Bars on a terminal, plain lines elsewhere, nothing when disabled (`--quiet`, `--json`)."""
    if not enabled:
        return _Silent()
    if Console(stderr=True).is_terminal:
        return RichReporter()
    return PlainReporter()
