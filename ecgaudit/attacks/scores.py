"""What a score-based (black-box) attacker sees: the vendor runtime's outputs, turned into a margin.

The margin is positive exactly when the runtime's decision differs from the record's reference decision, so
an attack ascends it and stops caring once it is positive. Log-scores are used rather than probabilities: a
confident model's top probability is 1.0 in float32, which no finite difference can move, while its log-odds
still can.
"""

from __future__ import annotations

import numpy as np

from ecgaudit.models.interface import ModelAdapter


class QueryCounter:
    """Counts the records sent to the runtime (one query = one record scored once)."""

    def __init__(self) -> None:
        self.queries = 0


def runtime_log_scores(model: ModelAdapter, x_mv: np.ndarray, counter: QueryCounter | None = None) -> np.ndarray:
    """Per record and class, the runtime's output on a log scale: log-probabilities for single-label models,
    log-odds for multi-label ones (float64). Shapes: `(N, L, T)` mV -> `(N, K)`."""
    raw = model.raw_predict(x_mv).astype(np.float64)
    if counter is not None:
        counter.queries += len(x_mv)
    if model.card.output == "logits":
        if model.card.multilabel:
            return raw
        return raw - np.logaddexp.reduce(raw, axis=1, keepdims=True)
    p = np.clip(raw, 1e-300, 1.0)
    if model.card.multilabel:
        q = np.clip(1.0 - raw, 1e-300, 1.0)
        return np.log(p) - np.log(q)
    return np.log(p)


SOFT_MIN_SCALE = 1.0
"""Temperature (log-odds) of the soft minimum over labels in the multi-label margin."""


def _label_distances(model: ModelAdapter, scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Multi-label: each label's log-odds distance to its threshold, > 0 while it keeps its reference state."""
    assert model.card.thresholds is not None
    thr = np.clip(np.asarray(model.card.thresholds, dtype=np.float64), 1e-12, 1 - 1e-12)
    boundary = np.log(thr) - np.log1p(-thr)
    on = reference.astype(bool)
    return np.where(on, scores - boundary, boundary - scores)


def changed(model: ModelAdapter, scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per record: does the runtime's decision differ from the reference (any label flipped, for multi-label)?"""
    if model.card.multilabel:
        return (_label_distances(model, scores, reference) < 0).any(axis=1)
    return scores.argmax(axis=1) != reference.astype(np.int64)


def margin(model: ModelAdapter, scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """How far past its decision boundary each record is, the quantity a score-based attack ascends.
    Shapes: `(N, K)` -> `(N,)`.

    Single-label: the best other class's log-score minus the reference class's (> 0 exactly when the decision
    changed). Multi-label: minus a soft minimum over labels of each label's distance to its threshold; the soft
    minimum lets every label near its threshold steer the search (a hard minimum follows one label at a time
    and gave no progress on the bundled multi-label model). Use `changed` for the decision itself.
    """
    if model.card.multilabel:
        distance = _label_distances(model, scores, reference)
        t = SOFT_MIN_SCALE
        return t * np.logaddexp.reduce(-distance / t, axis=1)
    rows = np.arange(len(scores))
    reference = reference.astype(np.int64)
    others = scores.copy()
    others[rows, reference] = -np.inf
    return others.max(axis=1) - scores[rows, reference]


def margin_cap(model: ModelAdapter) -> float:
    """A margin past which a record counts as fooled for the search: 0 for single-label models; for the soft
    multi-label margin, its value when every label sits exactly on its threshold (t·log K), an upper bound of its
    value at the first flip."""
    if model.card.multilabel:
        return SOFT_MIN_SCALE * float(np.log(model.card.n_classes))
    return 0.0
