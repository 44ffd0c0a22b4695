"""One error hierarchy; only the CLI turns it into an exit code."""

from __future__ import annotations

from enum import IntEnum

MAX_MESSAGE_CHARS = 400
"""Longest error sentence shown: a hostile input (a card with a million unknown keys) must not print megabytes."""


class ExitCode(IntEnum):
    OK = 0
    GATE_FAILED = 1
    EVIDENCE_DOES_NOT_HOLD = 1
    """`verify`: a signature, digest or rerun did not hold. Not a usage error: the evidence itself failed."""
    BAD_INPUT = 2
    INTERNAL = 3
    INCONCLUSIVE = 4


def shorten(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`message` cut in the middle to at most `limit` characters: the start says what, the end how to fix it."""
    if len(message) <= limit:
        return message
    tail = limit // 4
    return f"{message[: limit - tail - 3]} … {message[-tail:]}"


class EcgauditError(Exception):
    """A user-facing failure: the message is one sentence saying what is wrong and what to do."""

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __init__(self, message: str = "") -> None:
        super().__init__(shorten(str(message)))


class CardError(EcgauditError):
    """The model card is missing, malformed or contradicts the model."""


class ModelError(EcgauditError):
    """The model file cannot be loaded, converted or run."""


class NonFiniteOutput(ModelError):
    """The runtime returned NaN or infinite outputs; `rows` are the records (positions in the call) it did so on."""

    def __init__(self, message: str, rows: tuple[int, ...]) -> None:
        super().__init__(message)
        self.rows = rows


class DeviceError(EcgauditError):
    """The requested compute device (a GPU) is not there or not usable."""


class DataError(EcgauditError):
    """A data source cannot be read or does not fit the model."""


class AttackError(EcgauditError):
    """An attack was configured wrongly."""


class ProfileError(EcgauditError):
    """A profile file is invalid."""


class ReportError(EcgauditError):
    """A report or baseline file cannot be read or does not validate."""


class OutputError(EcgauditError):
    """An output path cannot be written, is not an ecgaudit report folder, or another scan is writing to it."""


class DistributedError(EcgauditError):
    """A run of several processes (torchrun) is misconfigured, or one of its ranks failed or was lost."""


class VerificationError(EcgauditError):
    """Evidence does not hold: a signature, a subject file or a digest; the message names it. Exit 1, not 2."""

    exit_code = ExitCode.EVIDENCE_DOES_NOT_HOLD
