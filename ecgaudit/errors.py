"""One error hierarchy; only the CLI turns it into an exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    GATE_FAILED = 1
    BAD_INPUT = 2
    INTERNAL = 3
    INCONCLUSIVE = 4


class EcgauditError(Exception):
    """A user-facing failure: the message is one sentence saying what is wrong and what to do."""

    exit_code: ExitCode = ExitCode.BAD_INPUT


class CardError(EcgauditError):
    """The model card is missing, malformed or contradicts the model."""


class ModelError(EcgauditError):
    """The model file cannot be loaded, converted or run."""


class DataError(EcgauditError):
    """A data source cannot be read or does not fit the model."""


class AttackError(EcgauditError):
    """An attack was configured wrongly."""


class ProfileError(EcgauditError):
    """A profile file is invalid."""


class ReportError(EcgauditError):
    """A report or baseline file cannot be read or does not validate."""
