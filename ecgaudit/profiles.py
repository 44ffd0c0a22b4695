"""Scan profiles: versioned TOML files saying which attacks run, on how many records, and the gate.

Built-in profiles live in the top-level `profiles/` folder, installed as `ecgaudit.builtin_profiles`.
A user may pass a path to their own. Every profile is checked against `profile.schema.json` and for
cross-references, and every failure names the key and the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgaudit.errors import ProfileError
from ecgaudit.io import bounded_toml

if TYPE_CHECKING:
    from jsonschema import ValidationError

RATE_METRICS = ("accuracy", "fooling_rate", "attack_success_rate", "robust_accuracy")


def _schema() -> dict[str, Any]:
    from ecgaudit.attacks.registry import schema_enums

    schema = json.loads(resources.files("ecgaudit").joinpath("schemas/profile.schema.json").read_text())
    for name, values in schema_enums().items():
        schema["$defs"][name]["enum"] = values
    return schema


def builtin_names() -> list[str]:
    folder = resources.files("ecgaudit.builtin_profiles")
    return sorted(entry.name[: -len(".toml")] for entry in folder.iterdir() if entry.name.endswith(".toml"))


@dataclass(frozen=True)
class Profile:
    """A validated profile and the exact bytes it came from."""

    name: str
    source: str
    text: bytes
    data: dict[str, Any]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text).hexdigest()

    @property
    def attacks(self) -> list[dict[str, Any]]:
        return list(self.data["attacks"])

    @property
    def rules(self) -> list[dict[str, Any]]:
        return list(self.data["gate"]["rules"])


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a TOML file by path."""
    path = Path(name_or_path)
    if path.is_dir():
        raise ProfileError(f"profile {path} is a folder; give a built-in profile's name ({', '.join(builtin_names())}) "
                           "or the path of a .toml file.")
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise ProfileError(f"profile file {path} does not exist.")
        return parse_profile(path.read_bytes(), source=str(path))
    if name_or_path not in builtin_names():
        raise ProfileError(
            f"unknown profile '{name_or_path}'; built-in profiles are {', '.join(builtin_names())}, "
            "or pass the path of a .toml file."
        )
    text = resources.files("ecgaudit.builtin_profiles").joinpath(f"{name_or_path}.toml").read_bytes()
    return parse_profile(text, source=f"{name_or_path}.toml (built-in)")


def parse_profile(text: bytes, *, source: str) -> Profile:
    try:
        data = bounded_toml(text, f"profile {source}", ProfileError)
    except UnicodeDecodeError as exc:
        raise ProfileError(f"profile {source} is not UTF-8 text.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {source} is not valid TOML: {exc}.") from exc
    valid = validate_profile(data, source)
    return Profile(name=valid["profile"]["name"], source=source, text=text, data=valid)


def validate_profile(data: Any, source: str) -> dict[str, Any]:
    """Check parsed profile data against the schema and its cross-references; return it unchanged."""
    if not isinstance(data, dict):
        raise ProfileError(f"profile {source} must be a table of keys.")
    import jsonschema  # loaded when a profile is checked: --help and argument errors never pay for it

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(list(e.absolute_path)), str(e.absolute_path)))
    if errors:
        raise ProfileError(f"profile {source}: {_describe(errors[0])}.")
    _check_references(data, source)
    return data


def _key(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "top level"


def _describe(error: ValidationError) -> str:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = next((k for k in error.validator_value if k not in error.instance), "?")
        return f"required key '{_key([*path, missing])}' is missing"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown key '{_key([*path, extra[0]])}'" if extra else error.message
    if error.validator == "enum":
        return f"key '{_key(path)}' is {error.instance!r}, not one of {', '.join(map(str, error.validator_value))}"
    if error.validator in ("exclusiveMinimum", "minimum"):
        return f"key '{_key(path)}' must be {'>' if error.validator == 'exclusiveMinimum' else '>='} " \
               f"{error.validator_value}, not {error.instance}"
    if error.validator == "oneOf":
        return f"key '{_key(path)}' has an invalid value {error.instance!r}"
    return f"key '{_key(path)}': {error.message}"


def _non_finite(value: Any, path: str = "") -> str | None:
    """The key of the first NaN or infinite number (TOML allows `nan` and `inf`), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "top level"
    if isinstance(value, dict):
        return next((k for key, v in value.items() if (k := _non_finite(v, f"{path}.{key}" if path else key))), None)
    if isinstance(value, list):
        return next((k for i, v in enumerate(value) if (k := _non_finite(v, f"{path}[{i}]"))), None)
    return None


METRIC_RANGE = {"accuracy": (0.0, 1.0), "fooling_rate": (0.0, 1.0), "attack_success_rate": (0.0, 1.0),
                "robust_accuracy": (0.0, 1.0), "power_below_cutoff": (0.0, 1.0), "ssim": (-1.0, 1.0)}
"""The values each bounded metric can take; `snr_db` has no bound."""


def _check_threshold(rule: dict[str, Any], key: str) -> None:
    """A threshold outside its metric's range is a mistake (80 for 0.80): with `<=` above the top, or `>=` below the
    bottom, the rule could never fail, and the gate would certify whatever was measured."""
    if rule["metric"] not in METRIC_RANGE:
        return
    low, high = METRIC_RANGE[rule["metric"]]
    threshold = rule["threshold"]
    if not low <= threshold <= high:
        outcome = "fail" if (threshold > high) == (rule["op"] == "<=") else "pass"
        raise ProfileError(f"{key} is {threshold:g}, outside the {low:g} to {high:g} that {rule['metric']} can take, "
                           f"so the rule could never {outcome}; give a threshold between {low:g} and {high:g} "
                           "(rates are fractions: 0.8, not 80).")


def _check_references(data: dict[str, Any], source: str) -> None:
    bad = _non_finite(data)
    if bad is not None:
        raise ProfileError(f"profile {source}: key '{bad}' is not a finite number; give a real value.")
    ids = [a["id"] for a in data["attacks"]]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ProfileError(f"profile {source}: attack id '{duplicates[0]}' appears twice under 'attacks'.")
    for i, rule in enumerate(data["gate"]["rules"]):
        attack = rule.get("attack")
        if rule["metric"] == "accuracy":
            if attack is not None:
                raise ProfileError(f"profile {source}: key 'gate.rules[{i}].attack' must be absent for the clean "
                                   "'accuracy' metric.")
        elif attack is None:
            raise ProfileError(f"profile {source}: required key 'gate.rules[{i}].attack' is missing "
                               f"(metric '{rule['metric']}' belongs to an attack).")
        elif attack not in ids:
            raise ProfileError(f"profile {source}: key 'gate.rules[{i}].attack' names '{attack}', which is not an "
                               f"attack id of this profile ({', '.join(ids)}).")
    for i, rule in enumerate(data["gate"]["rules"]):
        _check_threshold(rule, f"profile {source}: key 'gate.rules[{i}].threshold'")
    for name in data.get("transfer", {}).get("attacks", []):
        if name not in ids:
            raise ProfileError(f"profile {source}: key 'transfer.attacks' names '{name}', which is not an attack id.")
    rule_ids = [r["id"] for r in data["gate"]["rules"]]
    if len(set(rule_ids)) != len(rule_ids):
        raise ProfileError(f"profile {source}: two rules under 'gate.rules' share an id.")
