"""The model card: what a vendor's model expects and what it outputs.

A card comes from a sidecar `<model>.card.json`, from the ONNX `metadata_props` key `ecgaudit.card`,
or from CLI flags; later sources override earlier ones field by field. It is checked against
`CARD_SCHEMA` and then for contradictions, and every failure names the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jsonschema

from ecgaudit.errors import CardError
from ecgaudit.io import read_json_object
from ecgaudit.leads import STANDARD_LEADS

METADATA_KEY = "ecgaudit.card"

_FILTER_STEP = {
    "type": "object",
    "required": ["kind"],
    "additionalProperties": False,
    "properties": {
        "kind": {"enum": ["bandpass", "lowpass", "highpass"]},
        "low_hz": {"type": "number", "exclusiveMinimum": 0},
        "high_hz": {"type": "number", "exclusiveMinimum": 0},
        "order": {"type": "integer", "minimum": 1, "maximum": 8},
    },
}

CARD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ecgaudit model card",
    "type": "object",
    "required": ["fs", "n_samples", "leads", "layout", "scaling", "classes", "output"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "fs": {"type": "number", "exclusiveMinimum": 0, "maximum": 20000},
        "n_samples": {"type": "integer", "minimum": 8, "maximum": 10_000_000},
        "leads": {"type": "array", "items": {"enum": list(STANDARD_LEADS)}, "minItems": 1, "uniqueItems": True},
        "layout": {"enum": ["NCT", "NTC"]},
        "scaling": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["kind"],
                    "additionalProperties": False,
                    "properties": {"kind": {"const": "none"}},
                },
                {
                    "type": "object",
                    "required": ["kind", "scale", "offset"],
                    "additionalProperties": False,
                    "properties": {
                        "kind": {"const": "affine"},
                        "scale": {"type": "number"},
                        "offset": {"type": "number"},
                    },
                },
                {
                    "type": "object",
                    "required": ["kind", "mean", "std"],
                    "additionalProperties": False,
                    "properties": {
                        "kind": {"const": "standardize"},
                        "mean": {"type": "array", "items": {"type": "number"}},
                        "std": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}},
                    },
                },
            ]
        },
        "preprocessing": {"type": "array", "items": _FILTER_STEP},
        "classes": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "uniqueItems": True},
        "output": {"enum": ["logits", "softmax", "sigmoid"]},
        "thresholds": {
            "oneOf": [
                {"type": "number", "minimum": 0, "maximum": 1},
                {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
            ]
        },
    },
}


@dataclass(frozen=True)
class FilterStep:
    """One zero-phase Butterworth filter the vendor runs before the model."""

    kind: str
    low_hz: float | None
    high_hz: float | None
    order: int


@dataclass(frozen=True)
class ModelCard:
    """A validated card. Signals reach the adapter in mV, standard lead order, at `fs`."""

    fs: float
    n_samples: int
    leads: tuple[str, ...]
    layout: str
    scaling: Mapping[str, Any]
    preprocessing: tuple[FilterStep, ...]
    classes: tuple[str, ...]
    output: str
    thresholds: tuple[float, ...] | None
    name: str = ""

    @property
    def multilabel(self) -> bool:
        return self.output == "sigmoid"

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        """The card as plain JSON-able data, in the schema's shape."""
        data = asdict(self)
        data["leads"] = list(self.leads)
        data["classes"] = list(self.classes)
        data["scaling"] = dict(self.scaling)
        data["preprocessing"] = [
            {k: v for k, v in asdict(step).items() if v is not None} for step in self.preprocessing
        ]
        if self.thresholds is None:
            del data["thresholds"]
        else:
            data["thresholds"] = list(self.thresholds)
        if not self.name:
            del data["name"]
        return data


def sidecar_path(model_path: Path) -> Path:
    """`cnn.onnx` -> `cnn.card.json` beside it."""
    return model_path.with_name(model_path.stem + ".card.json")


def read_card_file(path: Path) -> dict[str, Any]:
    """Read a card JSON file; a syntax error names the file and line."""
    return read_json_object(path, "model card", CardError)


def parse_card(data: Mapping[str, Any], *, source: str) -> ModelCard:
    """Validate merged card data against `CARD_SCHEMA` and for contradictions; return a `ModelCard`."""
    validator = jsonschema.Draft202012Validator(CARD_SCHEMA)
    errors = sorted(validator.iter_errors(dict(data)), key=lambda e: (len(e.path), list(e.path)))
    if errors:
        raise CardError(f"model card ({source}): {_describe(errors[0])}.")
    leads = tuple(data["leads"])
    classes = tuple(data["classes"])
    fs = float(data["fs"])
    scaling = dict(data["scaling"])
    if scaling["kind"] == "standardize":
        for key in ("mean", "std"):
            if len(scaling[key]) != len(leads):
                raise CardError(
                    f"model card ({source}): field 'scaling.{key}' has {len(scaling[key])} values "
                    f"but the card lists {len(leads)} leads."
                )
    steps = tuple(_parse_step(step, fs, source) for step in data.get("preprocessing", []))
    thresholds = _parse_thresholds(data, classes, source)
    if data["output"] == "softmax" and len(classes) < 2:
        raise CardError(f"model card ({source}): field 'classes' needs at least 2 classes for a softmax output.")
    return ModelCard(
        fs=fs,
        n_samples=int(data["n_samples"]),
        leads=leads,
        layout=str(data["layout"]),
        scaling=scaling,
        preprocessing=steps,
        classes=classes,
        output=str(data["output"]),
        thresholds=thresholds,
        name=str(data.get("name", "")),
    )


def _parse_step(step: Mapping[str, Any], fs: float, source: str) -> FilterStep:
    kind = step["kind"]
    low = step.get("low_hz")
    high = step.get("high_hz")
    need_low = kind in ("bandpass", "highpass")
    need_high = kind in ("bandpass", "lowpass")
    if need_low != (low is not None) or need_high != (high is not None):
        raise CardError(
            f"model card ({source}): a '{kind}' step in field 'preprocessing' needs "
            + " and ".join(k for k, n in (("low_hz", need_low), ("high_hz", need_high)) if n)
            + " and nothing else."
        )
    if high is not None and high >= fs / 2:
        raise CardError(
            f"model card ({source}): field 'preprocessing.high_hz' = {high} Hz is not below the Nyquist "
            f"frequency {fs / 2} Hz."
        )
    if low is not None and high is not None and low >= high:
        raise CardError(f"model card ({source}): field 'preprocessing' has low_hz {low} >= high_hz {high}.")
    return FilterStep(kind=kind, low_hz=low, high_hz=high, order=int(step.get("order", 2)))


def _parse_thresholds(data: Mapping[str, Any], classes: tuple[str, ...], source: str) -> tuple[float, ...] | None:
    raw = data.get("thresholds")
    if data["output"] != "sigmoid":
        if raw is not None:
            raise CardError(
                f"model card ({source}): field 'thresholds' is only meaningful for output 'sigmoid', "
                f"not '{data['output']}'."
            )
        return None
    if raw is None:
        raise CardError(f"model card ({source}): field 'thresholds' is required for a multi-label (sigmoid) model.")
    if isinstance(raw, (int, float)):
        return tuple(float(raw) for _ in classes)
    if len(raw) != len(classes):
        raise CardError(
            f"model card ({source}): field 'thresholds' has {len(raw)} values but there are {len(classes)} classes."
        )
    return tuple(float(t) for t in raw)


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.path)
    if error.validator == "required":
        missing = next((k for k in error.validator_value if k not in error.instance), "?")
        field = f"{path}.{missing}" if path else missing
        return f"required field '{field}' is missing"
    if error.validator == "additionalProperties":
        return f"{error.message} (at '{path or 'top level'}')"
    if error.validator == "oneOf" and path == "scaling":
        return (
            "field 'scaling' must be {\"kind\": \"none\"}, {\"kind\": \"affine\", \"scale\", \"offset\"} "
            "or {\"kind\": \"standardize\", \"mean\": [...], \"std\": [...]} with std > 0"
        )
    return f"field '{path or 'top level'}': {error.message}"
