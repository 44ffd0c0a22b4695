"""Measurement: every metric of one perturbation, with each success figure taken on the vendor's runtime."""

from __future__ import annotations

from typing import Any

import numpy as np

from ecgaudit.data.interface import EcgDataset
from ecgaudit.evaluation import CleanEvaluation, is_correct
from ecgaudit.metrics import (
    decisions_changed,
    misdiagnosis,
    per_lead_norms,
    power_fraction_below,
    record_chunks,
    snr_db,
    ssim_1d,
    wilson,
)
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.progress import ProgressFn, no_progress


def measure(
    model: ModelAdapter,
    dataset: EcgDataset,
    clean: CleanEvaluation,
    delta: np.ndarray,
    *,
    cutoff_hz: float | None,
    progress: ProgressFn = no_progress,
) -> dict[str, Any]:
    """Every metric of one perturbation (universal `(L, T)` or per-record `(N, L, T)`), on the runtime."""
    return measure_records(model, dataset, clean, delta, cutoff_hz=cutoff_hz, progress=progress)[0]


def measure_records(
    model: ModelAdapter,
    dataset: EcgDataset,
    clean: CleanEvaluation,
    delta: np.ndarray,
    *,
    cutoff_hz: float | None,
    progress: ProgressFn = no_progress,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """`measure`, plus per record whether the decision changed `(N,)` and the adversarial decisions.

    Works through the records a batch at a time, so its memory grows with the batch, not with the data set:
    the adversarial records and the float64 work of SNR and SSIM never exist for all records at once.
    """
    n = dataset.n_records
    probabilities, snr_means, ssim_means, sizes = [], [], [], []
    for rows in record_chunks(n):
        clean_x = dataset.X[rows]
        d = delta if delta.ndim == 2 else delta[rows]
        x_adv = clean_x + d
        probabilities.append(model.predict(x_adv))
        snr_means.append(snr_db(clean_x, d))
        ssim_means.append(ssim_1d(clean_x, x_adv, dataset.fs))
        sizes.append(len(clean_x))
        progress(min(rows.stop, n), n)
    adv_decisions = model.decide(np.concatenate(probabilities))
    multilabel = model.card.multilabel
    fooled = decisions_changed(clean.decisions, adv_decisions)
    metrics: dict[str, Any] = {"n_records": n, "fooling_rate": wilson(int(fooled.sum()), n).to_dict()}
    if clean.labels is not None and clean.correct is not None:
        labelled = clean.labelled if clean.labelled is not None else (
            np.ones(n, bool) if multilabel else clean.labels.sum(axis=1) > 0)
        correct_adv = is_correct(adv_decisions, clean.labels, multilabel)
        was_correct = clean.correct & labelled
        made_wrong = int((was_correct & ~correct_adv).sum())
        metrics["attack_success_rate"] = wilson(made_wrong, int(was_correct.sum())).to_dict()
        metrics["robust_accuracy"] = wilson(int((correct_adv & labelled).sum()), int(labelled.sum())).to_dict()
        # The harm beside the change: a changed decision on a record the model already got wrong harms no one.
        was_wrong = labelled & ~clean.correct
        metrics["harm"] = {"correct_made_wrong": made_wrong,
                           "n_correct": int(was_correct.sum()),
                           "wrong_changed": int((was_wrong & fooled).sum()), "n_wrong": int(was_wrong.sum())}
        metrics["clean_accuracy"] = wilson(int(was_correct.sum()), int(labelled.sum())).to_dict()
    # Every batch weighs by its records: these are the means over all records that one call would give.
    metrics["snr_db"] = float(np.average(snr_means, weights=sizes))
    metrics["ssim"] = float(np.average(ssim_means, weights=sizes))
    metrics["linf_mv"] = float(max(delta.max(), -delta.min()))  # no |δ| copy of a per-record perturbation
    metrics["per_lead"] = per_lead_norms(delta, dataset.leads)
    if cutoff_hz is not None:
        metrics["power_below_cutoff"] = power_fraction_below(delta, dataset.fs, cutoff_hz)
        metrics["cutoff_hz"] = cutoff_hz
    metrics["misdiagnosis"] = misdiagnosis(clean.decisions, adv_decisions, model.card.classes)
    return metrics, fooled, adv_decisions


