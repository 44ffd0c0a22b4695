"""A rich progress display behind the harness's `Reporter` protocol: one bar per task, with ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ecgaudit.attacks.interface import ProgressFn, no_progress


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
