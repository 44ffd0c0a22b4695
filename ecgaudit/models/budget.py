"""Budgets relative to each lead's spread, for models that z-score each lead.

When the card standardises each lead, or the model normalises each lead itself (a per-lead z-score in
the graph), an amplitude budget of eps mV is eps / sigma standard deviations of that lead: large on a
quiet lead, unbounded on a flat one. `relative_budget` reports eps / sigma per lead over the records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ecgaudit.errors import ModelError
from ecgaudit.metrics import record_chunks
from ecgaudit.models.interface import ModelAdapter, apply_step
from ecgaudit.normalise import NormaliseStep

FLAT_SIGMA_MV = 1e-3
"""A lead whose standard deviation is below 1 µV counts as flat: any budget is unbounded relative to it."""
INVARIANCE_TOLERANCE = 1e-4
"""Largest probability change under per-lead rescaling for a model to count as normalising each lead."""
RESPONSE_FLOOR = 1e-3
"""Smallest probability change between different records for the invariance test to mean anything."""


def _preprocessed(adapter: ModelAdapter, x_mv: np.ndarray, steps: Sequence[Any] | None = None) -> np.ndarray:
    """`x_mv` through the card's preprocessing steps (or the first few of them, `steps`)."""
    x = torch.as_tensor(np.ascontiguousarray(x_mv), dtype=torch.float32)
    with torch.no_grad():
        for step in adapter.card.preprocessing if steps is None else steps:
            x = apply_step(x, adapter.card.fs, step)
    return x.numpy()


def _zscore_sigma(adapter: ModelAdapter, x_mv: np.ndarray) -> np.ndarray | None:
    """Each record's and lead's standard deviation as the card's first z-score step sees it `(N, L)`, in mV (the
    steps before it applied), or None without such a step. A z-score over all leads gives each lead the record's."""
    steps = adapter.card.preprocessing
    index = next((i for i, step in enumerate(steps) if isinstance(step, NormaliseStep) and step.kind == "zscore"),
                 None)
    if index is None:
        return None
    step = steps[index]
    parts = []
    for rows in record_chunks(len(x_mv)):  # a chunk at a time: the float64 copy of a split is twice its size
        x = _preprocessed(adapter, x_mv[rows], steps[:index]).astype(np.float64)
        axes = (2,) if step.per_lead else (1, 2)
        sigma = x.std(axis=axes, ddof=step.ddof or 0, keepdims=True)
        parts.append(np.broadcast_to(sigma, x.shape[:2] + (1,))[..., 0])
    return np.concatenate(parts)


def _first_live(x_mv: np.ndarray, count: int) -> np.ndarray:
    """The first `count` records without a flat lead, `(<= count, L, T)` float32. Record by record: the spread of
    every record of a large split at once would be a float copy of all of it."""
    kept = []
    for record in x_mv:
        if len(kept) == count:
            break
        record = np.asarray(record, dtype=np.float32)
        if (record.std(axis=1) >= FLAT_SIGMA_MV).all():
            kept.append(record)
    return np.stack(kept) if kept else np.zeros((0, *np.shape(x_mv)[1:]), dtype=np.float32)


def normalises_each_lead(adapter: ModelAdapter, x_mv: np.ndarray, *, seed: int = 0) -> bool:
    """Whether the model's decisions ignore each lead's scale and offset, measured on the runtime.

    Each lead of each record (up to 8 records without a flat lead) is multiplied by its own factor in
    [0.5, 2] and shifted by its own offset in [-1, 1] mV; a per-lead z-score makes the probabilities
    identical. A model that barely responds to its input at all (records differ by less than
    `RESPONSE_FLOOR`) is not called normalising.
    """
    x = _first_live(x_mv, 8)  # a flat lead has no scale to be invariant to
    if len(x) < 2:
        return False
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 2.0, size=(len(x), x.shape[1], 1)).astype(np.float32)
    offset = rng.uniform(-1.0, 1.0, size=(len(x), x.shape[1], 1)).astype(np.float32)
    try:
        with np.errstate(all="ignore"):
            clean = adapter.predict(x)
            moved = adapter.predict(x * scale + offset)
    except ModelError:
        return False
    response = float(np.max(np.abs(clean - np.roll(clean, 1, axis=0))))
    return response >= RESPONSE_FLOOR and float(np.max(np.abs(moved - clean))) <= INVARIANCE_TOLERANCE


def relative_budget(adapter: ModelAdapter, x_mv: np.ndarray, eps_mv: Sequence[float]) -> dict[str, Any] | None:
    """eps / sigma per lead over the records `x_mv` `(N, L, T)` mV, or None when nothing scales per lead.

    sigma is the lead's standard deviation as the normalisation sees it, in mV: the card's `std` for
    `scaling.kind = standardize`; otherwise, when the model itself normalises each lead (see
    `normalises_each_lead`), the standard deviation over time of each record's lead after the card's
    preprocessing. `eps_mv` is one budget per lead, or one for all.

    Returns `{"source": "card" | "model", "leads": [{"lead", "eps_mv", "eps_over_sigma": {"median", "min",
    "max"}, "flat_records"}], "summary": sentence}`; statistics are over the records whose lead is not flat
    (None when all are), `flat_records` counts the others, where the relative budget is unbounded.
    """
    card = adapter.card
    eps = np.broadcast_to(np.asarray(eps_mv, dtype=np.float64), (len(card.leads),))
    zscore_sigma = _zscore_sigma(adapter, x_mv)
    if zscore_sigma is not None:
        source, sigma = "card-zscore", zscore_sigma
    elif card.scaling.get("kind") == "standardize":
        source = "card"
        sigma = np.broadcast_to(np.asarray(card.scaling["std"], dtype=np.float64), (len(x_mv), len(card.leads)))
    elif normalises_each_lead(adapter, x_mv):
        source = "model"
        # a chunk of records at a time: the filtered float64 copy of a whole eval split is twice its size
        sigma = np.concatenate([_preprocessed(adapter, x_mv[rows]).astype(np.float64).std(axis=2)
                                for rows in record_chunks(len(x_mv))])
    else:
        return None
    leads = []
    for i, lead in enumerate(card.leads):
        live = sigma[:, i] >= FLAT_SIGMA_MV
        ratio = eps[i] / sigma[live, i]
        stats = {"median": float(np.median(ratio)), "min": float(ratio.min()), "max": float(ratio.max())} \
            if ratio.size else {"median": None, "min": None, "max": None}
        leads.append({"lead": lead, "eps_mv": float(eps[i]), "eps_over_sigma": stats,
                      "flat_records": int((~live).sum())})
    return {"source": source, "n_records": int(len(x_mv)), "leads": leads, "summary": _summary(leads, source)}


def _summary(leads: list[dict[str, Any]], source: str) -> str:
    ratios = [lead["eps_over_sigma"] for lead in leads if lead["eps_over_sigma"]["median"] is not None]
    where = {"card": "the card standardises each lead",
             "card-zscore": "the card z-scores each record",
             "model": "the model normalises each lead itself"}[source]
    text = f"Because {where}, a budget in mV is relative to each lead's spread"
    if ratios:
        low = min(r["min"] for r in ratios)
        high = max(r["max"] for r in ratios)
        text += f": here it is {low:.3g} to {high:.3g} standard deviations of the lead"
    flat = sum(lead["flat_records"] for lead in leads)
    if flat:
        text += f", and unbounded on {flat} flat lead(s), where any perturbation is infinitely large relative"
    return text + "."
