"""Per-record normalisation a vendor runs before the model: z-score, min-max, mean or median removal.

Most published ECG pipelines normalise each record (often each lead of each record) over time before the model
sees it; a card names those steps in `preprocessing`, in any order with the filters:

    {"kind": "zscore", "axis": "time", "eps": 1e-8}   (x - mean) / (std + eps), std with `ddof` (default 0)
    {"kind": "minmax", "axis": "time", "eps": 0}      lo + (hi - lo) (x - min) / (max - min + eps), `range` [lo, hi]
    {"kind": "demean", "axis": "time"}                x - mean
    {"kind": "median", "axis": "time"}                x - median (numpy's: the mean of the two middle values)

`axis` "time" (the default) takes the statistics of each lead of each record over time; "all" over every lead and
sample of the record together. `per_lead` may be given as well, true with "time" and false with "all". The steps
run in torch, differentiably, on the runtime path and the surrogate path alike (`ecgaudit.models.interface.
prepare_input`), so attacks see the signal as the vendor's model does; numpy's definitions are the reference
(tests/test_normalise.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jsonschema

from ecgaudit.errors import CardError

if TYPE_CHECKING:
    import torch

NORMALISE_KINDS = ("zscore", "minmax", "demean", "median")
_NEEDS_EPS = ("zscore", "minmax")

NORMALISE_STEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind"],
    "additionalProperties": False,
    "properties": {
        "kind": {"enum": list(NORMALISE_KINDS)},
        "axis": {"enum": ["time", "all"]},
        "per_lead": {"type": "boolean"},
        "eps": {"type": "number", "minimum": 0},
        "ddof": {"enum": [0, 1]},
        "range": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
    },
}


@dataclass(frozen=True)
class NormaliseStep:
    """One per-record normalisation step (see the module docstring)."""

    kind: str
    axis: str = "time"
    eps: float | None = None
    ddof: int | None = None
    range: tuple[float, float] | None = None

    @property
    def per_lead(self) -> bool:
        return self.axis == "time"


def parse_normalise_step(step: Mapping[str, Any], where: str) -> NormaliseStep:
    """A card's normalisation step, checked; `where` names it in errors ("model card (...): a 'zscore' step...")."""
    errors = sorted(jsonschema.Draft202012Validator(NORMALISE_STEP_SCHEMA).iter_errors(dict(step)),
                    key=lambda e: list(e.path))
    if errors:
        error = errors[0]
        field = ".".join(str(p) for p in error.path)
        raise CardError(f"{where}: {error.message}" + (f" (field '{field}')" if field else "") + ".")
    kind = str(step["kind"])
    axis = str(step.get("axis", "time"))
    if "per_lead" in step and bool(step["per_lead"]) != (axis == "time"):
        raise CardError(f"{where} says per_lead {str(step['per_lead']).lower()} with axis '{axis}': per lead means "
                        "axis 'time' (each lead over time), over all leads means axis 'all'; make them agree.")
    if kind in _NEEDS_EPS and "eps" not in step:
        raise CardError(f"{where} needs 'eps', the constant the vendor adds to the denominator (0 if none): "
                        "ecgaudit never assumes one.")
    if kind not in _NEEDS_EPS and "eps" in step:
        raise CardError(f"{where} takes no 'eps' (it divides by nothing).")
    if "ddof" in step and kind != "zscore":
        raise CardError(f"{where} takes no 'ddof' (only zscore has a standard deviation).")
    if "range" in step and kind != "minmax":
        raise CardError(f"{where} takes no 'range' (only minmax maps onto a range).")
    low_high = tuple(float(v) for v in step.get("range", (0.0, 1.0))) if kind == "minmax" else None
    if low_high is not None and not low_high[0] < low_high[1]:
        raise CardError(f"{where}: 'range' must be [low, high] with low < high, not {list(low_high)}.")
    return NormaliseStep(kind=kind, axis=axis, eps=float(step["eps"]) if kind in _NEEDS_EPS else None,
                         ddof=int(step.get("ddof", 0)) if kind == "zscore" else None,
                         range=low_high)  # type: ignore[arg-type]


def _median(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """numpy's median over `dims` (the mean of the two middle values for an even count), differentiably."""
    flat = x.flatten(start_dim=x.dim() - len(dims))
    ordered = flat.sort(dim=-1).values
    n = ordered.shape[-1]
    middle = (ordered[..., (n - 1) // 2] + ordered[..., n // 2]) / 2
    return middle.reshape(*middle.shape, *([1] * len(dims)))


def apply_normalise_step(x: torch.Tensor, step: NormaliseStep) -> torch.Tensor:
    """`step` on `(N, L, T)` signals; every record (each lead, for axis "time") on its own."""
    dims = (-1,) if step.per_lead else (-2, -1)
    if step.kind == "median":
        return x - _median(x, dims)
    mean = x.mean(dim=dims, keepdim=True)
    if step.kind == "demean":
        return x - mean
    if step.kind == "zscore":
        variance = x.var(dim=dims, keepdim=True, correction=step.ddof or 0)
        # sqrt's gradient at 0 is infinite; a flat lead's z-score is 0 / eps whatever the clamp, and its gradient
        # through the mean and the centred signal stays finite
        std = variance.clamp_min(1e-30).sqrt()
        return (x - mean) / (std + (step.eps or 0.0))
    low, high = step.range or (0.0, 1.0)
    lowest = x.amin(dim=dims, keepdim=True)
    spread = x.amax(dim=dims, keepdim=True) - lowest
    return low + (high - low) * (x - lowest) / (spread + (step.eps or 0.0))
