"""The model card: what a vendor's model expects and what it outputs.

A card comes from a sidecar `<stem>.card.json` or `<file name>.card.json`, from the ONNX
`metadata_props` key `ecgaudit.card`, or from CLI flags; later sources override earlier ones field by
field. It is checked against `CARD_SCHEMA` and then for contradictions, and every failure names the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from ecgaudit.errors import CardError
from ecgaudit.io import read_json_object
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.normalise import NORMALISE_KINDS, NormaliseStep, parse_normalise_step

METADATA_KEY = "ecgaudit.card"

FFT_FILTERS = ("bandpass", "lowpass", "highpass")
"""Zero-phase Butterworth |H(f)|^2 applied in the frequency domain (1 s reflect padding)."""
SCIPY_FILTERS = ("filtfilt", "sosfiltfilt")
"""A Butterworth filter run as `scipy.signal.filtfilt` (b, a) or `sosfiltfilt` (sos) defines it."""
PADTYPES = ("odd", "even", "constant", "none")

LEGACY_OUTPUTS = {"softmax": ("multiclass", "probabilities"), "sigmoid": ("multilabel", "probabilities")}
"""Old cards' `output` values -> (task, output); `logits` without a task stays multiclass, as it was."""

_FILTER_STEP = {
    "type": "object",
    "required": ["kind", "order"],
    "additionalProperties": False,
    "properties": {
        "kind": {"enum": [*FFT_FILTERS, *SCIPY_FILTERS]},
        "low_hz": {"type": "number", "exclusiveMinimum": 0},
        "high_hz": {"type": "number", "exclusiveMinimum": 0},
        "order": {"type": "integer", "minimum": 1, "maximum": 8},
        "padtype": {"enum": list(PADTYPES)},
        "padlen": {"type": "integer", "minimum": 0},
    },
}

_EXTRA_INPUT = {
    "type": "object",
    "required": ["name", "shape", "value", "why"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 8},
        "value": {"oneOf": [{"type": "number"}, {"type": "array"}]},
        "dtype": {"enum": ["float32", "float64", "int32", "int64"]},
        "why": {"type": "string", "minLength": 1},
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
        # Below 10 Hz no ECG waveform survives; the bound also keeps a typo (1e-6) from asking for absurd records.
        "fs": {"type": "number", "minimum": 10, "maximum": 20000},
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
        # Each step's own fields are checked by its kind (`_parse_step`), so an unknown kind is named as such.
        "preprocessing": {"type": "array", "maxItems": 32, "items": {
            "type": "object", "required": ["kind"],
            "properties": {"kind": {"enum": [*FFT_FILTERS, *SCIPY_FILTERS, *NORMALISE_KINDS]}}}},
        "classes": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "uniqueItems": True},
        "task": {"enum": ["multiclass", "multilabel"]},
        "output": {"enum": ["logits", "probabilities", *LEGACY_OUTPUTS]},
        "thresholds": {
            "oneOf": [
                {"type": "number", "minimum": 0, "maximum": 1},
                {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
            ]
        },
        "inputs": {"type": "array", "items": _EXTRA_INPUT, "maxItems": 16},
    },
}


@dataclass(frozen=True)
class FilterStep:
    """One zero-phase Butterworth filter the vendor runs before the model.

    `kind` is an FFT filter (`bandpass`, `lowpass`, `highpass`) or a scipy one (`filtfilt`, `sosfiltfilt`:
    band-pass with both edges, low-pass with `high_hz` only, high-pass with `low_hz` only). `padtype` and
    `padlen` are scipy's (None for the FFT kinds; `padlen` None is scipy's default, 3 x the filter taps).
    """

    kind: str
    low_hz: float | None
    high_hz: float | None
    order: int
    padtype: str | None = None
    padlen: int | None = None


@dataclass(frozen=True)
class ExtraInput:
    """A model input other than the ECG, held at a constant the card gives (per record; batched)."""

    name: str
    shape: tuple[int, ...]
    value: tuple[float, ...]
    """`prod(shape)` values in C order (one number in the card fills the shape)."""
    why: str
    dtype: str = "float32"

    def array(self, n_records: int) -> np.ndarray:
        """The constant for `n_records` records, shaped `(n_records, *shape)`."""
        one = np.asarray(self.value, dtype=self.dtype).reshape(self.shape)
        return np.broadcast_to(one, (n_records, *self.shape)).copy()

    def to_dict(self) -> dict[str, Any]:
        value: Any = self.value[0] if len(set(self.value)) == 1 else list(self.value)
        return {"name": self.name, "shape": list(self.shape), "value": value, "dtype": self.dtype, "why": self.why}


@dataclass(frozen=True)
class ModelCard:
    """A validated card. Signals reach the adapter in mV, standard lead order, at `fs`."""

    fs: float
    n_samples: int
    leads: tuple[str, ...]
    layout: str
    scaling: Mapping[str, Any]
    preprocessing: tuple[FilterStep | NormaliseStep, ...]
    """The vendor's steps before the model, in order: filters and per-record normalisations."""
    classes: tuple[str, ...]
    output: str
    """What the model returns: `logits` or `probabilities`."""
    thresholds: tuple[float, ...] | None
    name: str = ""
    task: str = "multiclass"
    """`multiclass` (one class per record, softmax) or `multilabel` (independent sigmoids + thresholds)."""
    extra_inputs: tuple[ExtraInput, ...] = ()

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        """The card as plain JSON-able data, in the schema's shape (new-style `task` + `output`)."""
        data: dict[str, Any] = {
            "fs": self.fs, "n_samples": self.n_samples, "leads": list(self.leads), "layout": self.layout,
            "scaling": dict(self.scaling),
            "preprocessing": [{k: v for k, v in asdict(step).items() if v is not None} for step in self.preprocessing],
            "classes": list(self.classes), "task": self.task, "output": self.output,
        }
        if self.thresholds is not None:
            data["thresholds"] = list(self.thresholds)
        if self.extra_inputs:
            data["inputs"] = [extra.to_dict() for extra in self.extra_inputs]
        if self.name:
            data["name"] = self.name
        return data


def sidecar_paths(model_path: Path) -> tuple[Path, Path]:
    """`cnn.onnx` -> `cnn.card.json` and `cnn.onnx.card.json` beside it, in that order."""
    return model_path.with_name(model_path.stem + ".card.json"), model_path.with_name(model_path.name + ".card.json")


def card_file(model_path: Path, card_path: Path | None = None) -> Path | None:
    """The card file a model's contract is read from: `card_path` when given, else the one sidecar beside the model
    (`sidecar_paths`), else None. Two sidecars at once are an error: which one the vendor meant is unknowable."""
    if card_path is not None:
        return card_path
    found = [path for path in sidecar_paths(model_path) if path.is_file()]
    if len(found) > 1:
        raise CardError(
            f"{model_path.name} has two cards beside it, {found[0].name} and {found[1].name}; remove one or "
            "choose with --card."
        )
    return found[0] if found else None


def read_card_file(path: Path) -> dict[str, Any]:
    """Read a card JSON file; a syntax error names the file and line."""
    return read_json_object(path, "model card", CardError)


def _non_finite(value: Any, path: str = "") -> str | None:
    """The field holding the first NaN or infinite number, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "top level"
    if isinstance(value, Mapping):
        return next((k for key, v in value.items() if (k := _non_finite(v, f"{path}.{key}" if path else key))), None)
    if isinstance(value, list | tuple):
        return next((k for i, v in enumerate(value) if (k := _non_finite(v, f"{path}[{i}]"))), None)
    return None


def parse_card(data: Mapping[str, Any], *, source: str) -> ModelCard:
    """Validate merged card data against `CARD_SCHEMA` and for contradictions; return a `ModelCard`."""
    bad = _non_finite(data)
    if bad is not None:
        # JSON Schema's bounds are silent on NaN (every comparison with it is false), and --fs nan parses.
        raise CardError(f"model card ({source}): field '{bad}' is not a finite number; give a real value.")
    validator = jsonschema.Draft202012Validator(CARD_SCHEMA)
    errors = sorted(validator.iter_errors(dict(data)), key=lambda e: (len(e.path), list(e.path)))
    if errors:
        raise CardError(f"model card ({source}): {_describe(errors[0])}.")
    leads = tuple(data["leads"])
    classes = tuple(data["classes"])
    fs = float(data["fs"])
    n_samples = int(data["n_samples"])
    scaling = dict(data["scaling"])
    if scaling["kind"] == "standardize":
        for key in ("mean", "std"):
            if len(scaling[key]) != len(leads):
                raise CardError(
                    f"model card ({source}): field 'scaling.{key}' has {len(scaling[key])} values "
                    f"but the card lists {len(leads)} leads."
                )
    steps = tuple(_parse_step(step, i, fs, n_samples, source) for i, step in enumerate(data.get("preprocessing", [])))
    task, output = _task_and_output(data, source)
    thresholds = _parse_thresholds(data, task, classes, source)
    if task == "multiclass" and len(classes) < 2:
        raise CardError(f"model card ({source}): field 'classes' needs at least 2 classes for a multiclass model.")
    return ModelCard(
        fs=fs,
        n_samples=n_samples,
        leads=leads,
        layout=str(data["layout"]),
        scaling=scaling,
        preprocessing=steps,
        classes=classes,
        output=output,
        thresholds=thresholds,
        name=str(data.get("name", "")),
        task=task,
        extra_inputs=tuple(_parse_extra(raw, source) for raw in data.get("inputs", [])),
    )


def _task_and_output(data: Mapping[str, Any], source: str) -> tuple[str, str]:
    output = str(data["output"])
    task = data.get("task")
    if output in LEGACY_OUTPUTS:
        implied, output = LEGACY_OUTPUTS[output]
        if task is not None and task != implied:
            raise CardError(
                f"model card ({source}): field 'output' '{data['output']}' means a {implied} model but field "
                f"'task' says '{task}'; write \"output\": \"probabilities\" with the task you mean."
            )
        return implied, output
    if task is None:
        if output == "logits":
            return "multiclass", output  # what `logits` meant before `task` existed
        raise CardError(
            f"model card ({source}): field 'task' is required with output '{output}'; add \"task\": "
            "\"multiclass\" (one class per record) or \"multilabel\" (independent labels with thresholds)."
        )
    return str(task), output


def _parse_step(step: Mapping[str, Any], index: int, fs: float, n_samples: int, source: str
                ) -> FilterStep | NormaliseStep:
    kind = step["kind"]
    where = f"model card ({source}): a '{kind}' step in field 'preprocessing'"
    if kind in NORMALISE_KINDS:
        return parse_normalise_step(step, where)
    errors = sorted(jsonschema.Draft202012Validator(_FILTER_STEP).iter_errors(dict(step)), key=lambda e: list(e.path))
    if errors:
        errors[0].path.extendleft([index, "preprocessing"])  # named from the card's top, as other fields are
        raise CardError(f"model card ({source}): {_describe(errors[0])}.")
    low = step.get("low_hz")
    high = step.get("high_hz")
    if kind in FFT_FILTERS:
        need_low = kind in ("bandpass", "highpass")
        need_high = kind in ("bandpass", "lowpass")
        if need_low != (low is not None) or need_high != (high is not None):
            raise CardError(
                f"{where} needs "
                + " and ".join(k for k, n in (("low_hz", need_low), ("high_hz", need_high)) if n)
                + " and nothing else."
            )
        if "padtype" in step or "padlen" in step:
            raise CardError(f"{where} takes no 'padtype' or 'padlen' (those are for filtfilt and sosfiltfilt).")
    elif low is None and high is None:
        raise CardError(f"{where} needs low_hz (high-pass), high_hz (low-pass) or both (band-pass).")
    if high is not None and high >= fs / 2:
        raise CardError(
            f"model card ({source}): field 'preprocessing.high_hz' = {high} Hz is not below the Nyquist "
            f"frequency {fs / 2} Hz."
        )
    if low is not None and high is not None and low >= high:
        raise CardError(f"model card ({source}): field 'preprocessing' has low_hz {low} >= high_hz {high}.")
    parsed = FilterStep(kind=kind, low_hz=low, high_hz=high, order=int(step["order"]))
    if kind in SCIPY_FILTERS:
        parsed = FilterStep(kind=kind, low_hz=low, high_hz=high, order=parsed.order,
                            padtype=str(step.get("padtype", "odd")), padlen=step.get("padlen"))
        from ecgaudit.dsp import scipy_filter_edge

        edge = scipy_filter_edge(parsed, fs)
        if n_samples <= edge:
            raise CardError(
                f"{where} pads {edge} samples at each end, which needs records longer than that "
                f"(n_samples is {n_samples}); scipy refuses this too, so give a smaller 'padlen'."
            )
    return parsed


def _parse_thresholds(data: Mapping[str, Any], task: str, classes: tuple[str, ...], source: str
                      ) -> tuple[float, ...] | None:
    raw = data.get("thresholds")
    if task != "multilabel":
        if raw is not None:
            raise CardError(
                f"model card ({source}): field 'thresholds' is only meaningful for a multilabel model; add "
                "\"task\": \"multilabel\" if the outputs are independent labels, or remove the thresholds."
            )
        return None
    if raw is None:
        raise CardError(
            f"model card ({source}): field 'thresholds' is required for a multilabel model (the decision "
            "threshold on each class's probability: one number or one per class)."
        )
    if isinstance(raw, (int, float)):
        return tuple(float(raw) for _ in classes)
    if len(raw) != len(classes):
        raise CardError(
            f"model card ({source}): field 'thresholds' has {len(raw)} values but there are {len(classes)} classes."
        )
    return tuple(float(t) for t in raw)


def _parse_extra(raw: Mapping[str, Any], source: str) -> ExtraInput:
    shape = tuple(int(d) for d in raw["shape"])
    size = int(np.prod(shape)) if shape else 1
    if size > 1_000_000:
        raise CardError(f"model card ({source}): extra input '{raw['name']}' has {size} values; at most 1000000.")
    try:
        values = np.asarray(raw["value"], dtype=np.float64).reshape(-1)
    except (ValueError, TypeError) as exc:
        raise CardError(
            f"model card ({source}): field 'inputs' value of '{raw['name']}' must be a number or a (nested) "
            "list of numbers."
        ) from exc
    if values.size == 1:
        values = np.full(size, values[0])
    if values.size != size or not np.all(np.isfinite(values)):
        raise CardError(
            f"model card ({source}): extra input '{raw['name']}' has shape {list(shape)} ({size} values) but its "
            f"'value' gives {values.size} finite numbers; give one number or {size}."
        )
    return ExtraInput(name=str(raw["name"]), shape=shape, value=tuple(float(v) for v in values),
                      why=str(raw["why"]), dtype=str(raw.get("dtype", "float32")))


def _threshold_scale(instance: Any) -> str:
    """A threshold outside [0, 1]: most likely on the logit scale; say so, with the probability it stands for."""
    values = instance if isinstance(instance, list) else [instance]
    bad = next((v for v in values if isinstance(v, (int, float)) and not 0 <= v <= 1), None)
    if bad is None:
        return "field 'thresholds' must be one number or a list of numbers, each between 0 and 1"
    return (f"field 'thresholds' holds {bad}, outside 0..1: thresholds are on the probability scale even for a model "
            f"that returns logits; a logit threshold t is the probability 1 / (1 + exp(-t)), here "
            f"{1 / (1 + math.exp(-max(min(float(bad), 700.0), -700.0))):.6g}")


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.path)
    if error.validator == "required":
        missing = next((k for k in error.validator_value if k not in error.instance), "?")
        field = f"{path}.{missing}" if path else missing
        if missing == "order":
            return f"required field '{field}' is missing (the filter order the vendor uses; ecgaudit never assumes one)"
        return f"required field '{field}' is missing"
    if error.validator == "additionalProperties":
        return f"{error.message} (at '{path or 'top level'}')"
    if error.validator == "enum" and len(error.path) == 3 and error.path[0] == "preprocessing":
        return (f"field '{path}' is {error.instance!r}, not a preprocessing step ecgaudit knows; use one of "
                f"{', '.join(error.validator_value)}")
    if error.path and error.path[0] == "thresholds" and error.validator in ("oneOf", "minimum", "maximum"):
        return _threshold_scale(error.instance)
    if error.validator == "oneOf" and path == "scaling":
        return (
            "field 'scaling' must be {\"kind\": \"none\"}, {\"kind\": \"affine\", \"scale\", \"offset\"} "
            "or {\"kind\": \"standardize\", \"mean\": [...], \"std\": [...]} with std > 0"
        )
    return f"field '{path or 'top level'}': {error.message}"
