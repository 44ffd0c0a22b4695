"""Pure metric functions on numpy arrays: rates with Wilson intervals, AUC."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rate:
    """A proportion with its 95% Wilson score interval."""

    successes: int
    total: int
    value: float
    ci95: tuple[float, float]

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value, "ci95": list(self.ci95), "successes": self.successes, "total": self.total}


def wilson(successes: int, total: int, *, z: float = 1.959963984540054) -> Rate:
    """`successes / total` with the Wilson score interval (well-behaved at 0%, 100% and small n).

    An empty denominator gives value NaN and the uninformative interval (0, 1).
    """
    if total <= 0:
        return Rate(0, 0, float("nan"), (0.0, 1.0))
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return Rate(int(successes), int(total), p, (max(0.0, centre - half), min(1.0, centre + half)))


def binary_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney statistic with average ranks for ties; NaN without both classes."""
    positives = positives.astype(bool)
    n_pos = int(positives.sum())
    n_neg = positives.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < scores.size:
        j = i
        while j + 1 < scores.size and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def macro_auc(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean one-vs-rest AUC over the classes that have both positives and negatives."""
    aucs = [binary_auc(probabilities[:, k], labels[:, k]) for k in range(labels.shape[1])]
    valid = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(valid)) if valid else float("nan")
