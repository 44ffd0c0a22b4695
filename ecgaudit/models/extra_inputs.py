"""Model inputs other than the ECG (age, sex, ...), held at constants the card gives.

The ECG goes to the one input the card's `inputs` field does not name; every other input must be named
there. The errors list every input with its shape and show the card lines to add.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ecgaudit.card import ExtraInput, ModelCard
from ecgaudit.errors import CardError

Declared = tuple[str, Sequence[Any], str]
"""(input name, declared shape (ints, or names/None for free axes), element type) as a runtime reports it."""


def _dims(shape: Sequence[Any] | None) -> str:
    if shape is None:
        return "(shape not recorded)"
    return "(" + ", ".join(str(d) if isinstance(d, int) else "N" if i == 0 else str(d or "?")
                           for i, d in enumerate(shape)) + ")"


def _listing(declared: Sequence[Declared]) -> str:
    return ", ".join(f"'{name}' {_dims(shape)}" for name, shape, _ in declared)


def _template(name: str, shape: Sequence[Any] | None) -> str:
    per_record = [d if isinstance(d, int) and d > 0 else 1 for d in (shape or [None, 1])[1:]]
    return json.dumps({"name": name, "shape": per_record, "value": 0.0,
                       "why": "the value held during the audit and why (e.g. the training mean)"})


def _looks_like_ecg(shape: Sequence[Any] | None, card: ModelCard) -> bool:
    if shape is None or len(shape) != 3:
        return False
    want = (len(card.leads), card.n_samples) if card.layout == "NCT" else (card.n_samples, len(card.leads))
    return all(not isinstance(d, int) or d == w for d, w in zip(shape[1:], want, strict=True))


def ecg_input_name(declared: Sequence[Declared], card: ModelCard, model_name: str) -> str:
    """The input the ECG goes to; a `CardError` when the card's extra inputs do not fit the model's."""
    names = [name for name, _, _ in declared]
    named = [extra.name for extra in card.extra_inputs]
    unknown = [name for name in named if name not in names]
    if unknown:
        raise CardError(
            f"the card gives a constant for input '{unknown[0]}', but {model_name} has no such input (its inputs: "
            f"{_listing(declared)}); correct the name in the card's field 'inputs'."
        )
    rest = [entry for entry in declared if entry[0] not in named]
    if len(rest) == 1:
        return rest[0][0]
    if not rest:
        raise CardError(
            f"the card's field 'inputs' gives constants for every input of {model_name} ({_listing(declared)}), "
            "leaving none for the ECG; remove the ECG input from that field."
        )
    ecg = next((entry for entry in rest if _looks_like_ecg(entry[1], card)), rest[0])
    missing = [entry for entry in rest if entry is not ecg]
    lines = ", ".join(_template(name, shape) for name, shape, _ in missing)
    raise CardError(
        f"{model_name} has {len(declared)} inputs, {_listing(declared)}, and ecgaudit feeds the ECG to "
        f"'{ecg[0]}' but needs a constant for every other one: add to the card \"inputs\": [{lines}], with "
        "the value each input is held at and why."
    )


def check_extra_shape(extra: ExtraInput, shape: Sequence[Any] | None, model_name: str) -> None:
    """The card's per-record shape must match the declared input shape after its batch axis."""
    if shape is None:
        return
    per_record = list(shape[1:])
    fits = len(per_record) == len(extra.shape) and all(
        not isinstance(d, int) or d == want for d, want in zip(per_record, extra.shape, strict=True))
    if not fits:
        raise CardError(
            f"{model_name}'s input '{extra.name}' is shaped {_dims(shape)}, but the card's field 'inputs' gives "
            f"it shape {list(extra.shape)}; give the shape of one record, without the batch axis."
        )
