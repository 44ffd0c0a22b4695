"""The report's JSON Schema (Draft 2020-12) and its validation."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from ecgaudit.errors import ReportError


@cache
def report_schema() -> dict[str, Any]:
    from ecgaudit.attacks.registry import schema_enums

    schema = json.loads(resources.files("ecgaudit").joinpath("schemas/report.schema.json").read_text())
    schema["$defs"]["attack_name"]["enum"] = schema_enums()["attack_name"]
    return schema


def schema_errors(report: Any) -> list[str]:
    """Every schema violation, as 'at <json path>: <message>' lines (shallowest first)."""
    import jsonschema  # loaded on first validation, not by `--help`

    validator = jsonschema.Draft202012Validator(report_schema(), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(report), key=lambda e: (len(list(e.absolute_path)), e.json_path))
    return [f"at {e.json_path}: {e.message}" for e in errors]


def validate_report(report: Any, *, what: str = "report") -> None:
    """Raise `ReportError` naming the first violation, if any."""
    errors = schema_errors(report)
    if errors:
        raise ReportError(f"the {what} does not follow the ecgaudit report schema ({errors[0]}).")
