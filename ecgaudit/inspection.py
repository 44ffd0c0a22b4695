"""`inspect`: a model's contract, runtime, surrogate parity and, with data, clean performance."""

from __future__ import annotations

from typing import Any

from ecgaudit.data import load_dataset
from ecgaudit.data.interface import EcgDataset
from ecgaudit.data.splits import data_summary
from ecgaudit.evaluation import evaluate_clean
from ecgaudit.models.interface import ModelAdapter

PARITY_RECORDS = 16


def parity_inputs(model: ModelAdapter, dataset: EcgDataset | None) -> EcgDataset:
    """Real-looking inputs for the parity check: the user's data if given, else built-in synthetic ECGs."""
    if dataset is not None:
        return dataset.subset(range(min(PARITY_RECORDS, dataset.n_records)))  # type: ignore[arg-type]
    card = model.card
    return load_dataset(
        f"builtin:synthetic:n={PARITY_RECORDS},seed=7", fs=card.fs, n_samples=card.n_samples, leads=card.leads
    )


def inspect_model(model: ModelAdapter, dataset: EcgDataset | None) -> dict[str, Any]:
    """Everything `ecgaudit inspect` shows, as JSON-able data."""
    probe = parity_inputs(model, dataset)
    model.check_parity(probe.X, refuse=False)  # shown as the reason gradient attacks are not possible
    described = model.describe()
    result: dict[str, Any] = {
        "model": {k: v for k, v in described.items() if k != "card"},
        "contract": described["card"],
        "parity_max_abs_diff": model.parity_max_abs_diff,
        "parity_records": probe.n_records,
        "parity_source": probe.source,
    }
    if dataset is not None:
        clean = evaluate_clean(model, dataset)
        result["data"] = {**data_summary(dataset), "clean": clean.to_dict(model.card.classes)}
    return result
