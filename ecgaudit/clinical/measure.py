"""The clinical measurements of one attack, bundled: what a clinician or an ECG front end would make of it.

`clinical_metrics` gives, for clean records and a perturbation: the Einthoven/Goldberger residual, the share of
power below 0.5 Hz, the fooling rate after the diagnostic (0.05 Hz) and monitoring (0.5 Hz) front-end
high-pass, the change in ST deviation per lead and the share of records that newly meet the ST-elevation
criteria of MI. Everything it returns is JSON-able (NaN becomes None).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ecgaudit.clinical.criteria import CONTIGUOUS_PAIRS, meets_st_elevation, threshold_rule
from ecgaudit.clinical.leads import LIMB_LEADS, einthoven_residual_mv
from ecgaudit.clinical.st import StDeviations, detect_r_peaks, st_deviations
from ecgaudit.metrics import decisions_changed, power_fraction_below, record_chunks, wilson

FRONT_END_CUTOFFS_HZ: tuple[float, ...] = (0.05, 0.5)
"""Diagnostic (IEC 60601-2-25, AHA 2007: 0.05 Hz) and monitoring (IEC 60601-2-27: 0.5 Hz) low-frequency edges."""
BASELINE_CUTOFF_HZ = 0.5
FRONT_END_FILTER = ("single-pole (RC) high-pass, as analog ECG front ends are specified, applied causally to the "
                    "perturbation only, in steady state at the record's start (the perturbation has been present "
                    "before it), so a constant offset is removed exactly")

Predict = Callable[[np.ndarray], np.ndarray]
Decide = Callable[[np.ndarray], np.ndarray]


def front_end_highpass(delta_mv: np.ndarray, fs: float, cutoff_hz: float) -> np.ndarray:
    """`delta_mv` `(..., T)` through an ECG front end's single-pole high-pass (see `FRONT_END_FILTER`)."""
    from scipy.signal import butter, lfilter, lfilter_zi

    b, a = butter(1, cutoff_hz, btype="highpass", fs=fs)
    d = np.asarray(delta_mv, dtype=np.float64)
    zi = lfilter_zi(b, a) * d[..., :1]
    out, _ = lfilter(b, a, d, axis=-1, zi=zi)
    return out.astype(np.float32)


def _decisions(x_mv: np.ndarray, predict: Predict, decide: Decide) -> np.ndarray:
    return decide(np.concatenate([predict(x_mv[rows]) for rows in record_chunks(len(x_mv))]))


def fooling_after_highpass(
    x_clean_mv: np.ndarray, delta_mv: np.ndarray, fs: float, predict: Predict, decide: Decide, *,
    cutoffs_hz: Sequence[float] = FRONT_END_CUTOFFS_HZ, clean_decisions: np.ndarray | None = None,
) -> dict[str, Any]:
    """Fooling rate (decision changed, 95% Wilson interval) of `x + δ` and of `x + HP(δ)` for each cutoff.

    `predict` and `decide` are the vendor's runtime (`ModelAdapter.predict`, `ModelAdapter.decide`). Shapes:
    `x_clean_mv` `(N, L, T)`, `delta_mv` `(L, T)` or `(N, L, T)` mV.
    """
    x = np.asarray(x_clean_mv, dtype=np.float32)
    clean = _decisions(x, predict, decide) if clean_decisions is None else clean_decisions
    n = len(x)
    per_record = np.ndim(delta_mv) == 3

    def rate(cutoff_hz: float | None) -> dict[str, Any]:
        def filtered(d: np.ndarray) -> np.ndarray:
            return d if cutoff_hz is None else front_end_highpass(d, fs, cutoff_hz)

        universal = None if per_record else filtered(delta_mv)
        # A chunk at a time: the filtered perturbations and adversarial records never exist for all records at once
        decisions = [decide(predict((x[rows] + (filtered(delta_mv[rows]) if universal is None else universal))
                                    .astype(np.float32))) for rows in record_chunks(n)]
        fooled = decisions_changed(clean, np.concatenate(decisions))
        return wilson(int(fooled.sum()), n).to_dict()

    return {
        "filter": FRONT_END_FILTER,
        "unfiltered": rate(None),
        "highpass": [{"cutoff_hz": float(c), "fooling_rate": rate(c)} for c in cutoffs_hz],
    }


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def st_change(x_clean_mv: np.ndarray, delta_mv: np.ndarray, fs: float, leads: Sequence[str], *,
              sex: Any = None, age: Any = None) -> dict[str, Any]:
    """ST deviation of clean and adversarial records (read at the clean record's fiducial points, see
    `clinical.st`), its change per lead, and the MI criteria.

    Per lead, medians over the records measured in both: `clean_j_mv`, `adversarial_j_mv`, `change_j_mv`
    (with its interquartile range) and `change_j60_mv`. `mi_criteria.newly_met` is the share of measured records
    whose adversarial version meets the ST-elevation criteria and whose clean version does not.
    """
    x = np.asarray(x_clean_mv, dtype=np.float32)
    delta = np.asarray(delta_mv, dtype=np.float32)
    r_peaks = [detect_r_peaks(record, fs, leads) for record in x]
    clean = st_deviations(x, fs, r_peaks)
    # a chunk of adversarial records at a time: the whole adversarial split is never built (no records: none)
    parts = [st_deviations(x[rows] + (delta if delta.ndim == 2 else delta[rows]), fs, r_peaks[rows],
                           clean.fiducials[rows]) for rows in record_chunks(len(x))] or [clean]
    attacked = StDeviations(np.concatenate([p.st_j_mv for p in parts]), np.concatenate([p.st_j60_mv for p in parts]),
                            tuple(f for p in parts for f in p.fiducials))
    both = clean.measured & attacked.measured
    change_j = attacked.st_j_mv[both] - clean.st_j_mv[both]
    change_j60 = attacked.st_j60_mv[both] - clean.st_j60_mv[both]
    per_lead: dict[str, dict[str, Any]] = {}
    for k, lead in enumerate(leads):
        if both.any():
            q25, q75 = np.percentile(change_j[:, k], [25, 75])
            per_lead[lead] = {
                "clean_j_mv": _num(np.median(clean.st_j_mv[both, k])),
                "adversarial_j_mv": _num(np.median(attacked.st_j_mv[both, k])),
                "change_j_mv": _num(np.median(change_j[:, k])), "change_j_iqr_mv": [float(q25), float(q75)],
                "change_j60_mv": _num(np.median(change_j60[:, k])),
            }
        else:
            per_lead[lead] = {"clean_j_mv": None, "adversarial_j_mv": None, "change_j_mv": None,
                              "change_j_iqr_mv": None, "change_j60_mv": None}
    clean_met = meets_st_elevation(clean.st_j_mv, leads, sex, age) & both
    adv_met = meets_st_elevation(attacked.st_j_mv, leads, sex, age) & both
    return {
        "n_records": int(len(x)),
        "n_measured": int(both.sum()),
        "per_lead": per_lead,
        "mi_criteria": {
            "newly_met": wilson(int((adv_met & ~clean_met).sum()), int(both.sum())).to_dict(),
            "clean_met": int(clean_met.sum()),
            "adversarial_met": int(adv_met.sum()),
            "rule": threshold_rule(sex, age),
            "contiguous_pairs": [list(p) for p in CONTIGUOUS_PAIRS],
        },
    }


def clinical_metrics(
    x_clean_mv: np.ndarray, delta_mv: np.ndarray, fs: float, leads: Sequence[str], *,
    predict: Predict | None = None, decide: Decide | None = None, sex: Any = None, age: Any = None,
    clean_decisions: np.ndarray | None = None,
) -> dict[str, Any]:
    """The per-attack clinical block for report.json (see the module docstring). Shapes: `x_clean_mv`
    `(N, L, T)` mV; `delta_mv` universal `(L, T)` or per record `(N, L, T)` mV. `predict`/`decide` (the vendor's
    runtime) are needed for the front-end fooling rates, which are omitted without them. `sex`/`age`: one value
    or one per record, for the V2–V3 cut-point of the MI criteria (default in `criteria.DEFAULT_RULE`).
    `clean_decisions` (the runtime's decisions on `x_clean_mv`, e.g. `CleanEvaluation.decisions`) saves a pass.
    """
    leads = list(leads)
    has_limbs = all(lead in leads for lead in LIMB_LEADS)
    out: dict[str, Any] = {
        "einthoven_residual_mv": einthoven_residual_mv(delta_mv, leads) if has_limbs else None,
        "power_below_0p5_hz": power_fraction_below(np.asarray(delta_mv), fs, BASELINE_CUTOFF_HZ),
        "st": st_change(x_clean_mv, delta_mv, fs, leads, sex=sex, age=age),
    }
    if predict is not None and decide is not None:
        out["front_end"] = fooling_after_highpass(x_clean_mv, delta_mv, fs, predict, decide,
                                                  clean_decisions=clean_decisions)
    return out
