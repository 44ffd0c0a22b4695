"""The progress callback every long step takes (attacks, evaluation, sweeps), torch-free so the CLI imports it
without loading the model stack."""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[int, int], None]
"""Called as `progress(done, total)` while a step works; units are the step's own."""


def no_progress(done: int, total: int) -> None:
    """The default progress callback: does nothing."""
