"""Standard 12-lead names and lead mapping by name."""

from __future__ import annotations

STANDARD_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)

_CANONICAL = {name.lower(): name for name in STANDARD_LEADS}


def canonical_lead(name: str) -> str | None:
    """Return the standard spelling of a lead name (`avr` -> `aVR`), or None if it is not a standard lead."""
    return _CANONICAL.get(name.strip().lower())
