"""Clean (unattacked) evaluation of a model on a dataset, measured on the vendor's runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgaudit.data.interface import EcgDataset
from ecgaudit.metrics import Rate, macro_auc, wilson
from ecgaudit.models.interface import ModelAdapter


def align_labels(dataset: EcgDataset, classes: tuple[str, ...]) -> np.ndarray | None:
    """The dataset's labels as multi-hot `(N, K)` over the model's `classes`, matched by name.

    Returns None when the dataset has no labels or shares no class name with the model.
    """
    if dataset.labels is None or dataset.classes is None:
        return None
    shared = [c for c in classes if c in dataset.classes]
    if not shared:
        return None
    out = np.zeros((dataset.n_records, len(classes)), dtype=np.uint8)
    for k, name in enumerate(classes):
        if name in dataset.classes:
            out[:, k] = dataset.labels[:, dataset.classes.index(name)]
    return out


def is_correct(decisions: np.ndarray, labels: np.ndarray, multilabel: bool) -> np.ndarray:
    """Per-record correctness: the exact label set for multi-label, the class being a true label otherwise."""
    if multilabel:
        return np.all(decisions.astype(bool) == labels.astype(bool), axis=1)
    return labels[np.arange(len(decisions)), decisions].astype(bool)


@dataclass(frozen=True)
class CleanEvaluation:
    probabilities: np.ndarray
    decisions: np.ndarray
    labels: np.ndarray | None
    correct: np.ndarray | None
    accuracy: Rate | None
    macro_auc: float | None
    labelled: np.ndarray | None = None
    """`(N,)` bool: the records whose labels count (a single-label record with a true class among the model's, a
    multi-label record whose codes the label map knows); None without labels."""

    def to_dict(self, classes: tuple[str, ...]) -> dict[str, Any]:
        predicted = (
            self.decisions.sum(axis=0)
            if self.decisions.ndim == 2
            else np.bincount(self.decisions, minlength=len(classes))
        )
        out: dict[str, Any] = {
            "n_records": int(len(self.decisions)),
            "predicted_counts": {c: int(n) for c, n in zip(classes, predicted)},
        }
        if self.labels is not None:
            out["true_counts"] = {c: int(n) for c, n in zip(classes, self.labels.sum(axis=0))}
            judged = np.ones(len(self.labels), bool) if self.labelled is None else self.labelled
            out["n_labelled"] = int(((self.labels.sum(axis=1) > 0) & judged).sum())
        if self.accuracy is not None:
            out["accuracy"] = self.accuracy.to_dict()
        if self.macro_auc is not None:
            out["macro_auc"] = self.macro_auc
        return out


def evaluate_clean(model: ModelAdapter, dataset: EcgDataset) -> CleanEvaluation:
    """Predict every record on the vendor runtime and score against the labels where known."""
    probabilities = model.predict(dataset.X)
    decisions = model.decide(probabilities)
    labels = align_labels(dataset, model.card.classes)
    if labels is None:
        return CleanEvaluation(probabilities, decisions, None, None, None, None)
    labelled = labels.sum(axis=1) > 0 if not model.card.multilabel else np.ones(len(labels), dtype=bool)
    if dataset.labelled is not None:  # a record none of whose codes the label map knows is not judged
        labelled &= dataset.labelled
    correct = is_correct(decisions, labels, model.card.multilabel) & labelled
    accuracy = wilson(int(correct.sum()), int(labelled.sum()))
    auc = macro_auc(probabilities[labelled], labels[labelled]) if model.card.multilabel else None
    return CleanEvaluation(probabilities, decisions, labels, correct, accuracy, auc, labelled)
