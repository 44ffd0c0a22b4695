"""The ST-elevation criteria of the Fourth Universal Definition of Myocardial Infarction (Thygesen et al. 2018,
Table 3, "ECG manifestations suggestive of acute myocardial ischaemia, in the absence of LVH and LBBB").

New ST elevation at the J point in two contiguous leads: ≥ 1 mm (0.1 mV) in all leads other than V2–V3; in
V2–V3 ≥ 2 mm (0.2 mV) in men ≥ 40 years, ≥ 2.5 mm (0.25 mV) in men < 40 years, ≥ 1.5 mm (0.15 mV) in women
regardless of age. Contiguous leads are the lead groups the definition names: inferior (II, III, aVF: any two),
lateral/apical (I, aVL) and anterior (V1–V6: two neighbours). aVR belongs to no group.

Where sex or age is unknown the V2–V3 cut-point is `DEFAULT_V2_V3_MV` = 0.2 mV, the men ≥ 40 value: the middle
of the three, and the group most 12-lead databases are made of (PTB-XL: median age 62, 52% men).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecgaudit.errors import EcgauditError

LIMB_MV = 0.1
DEFAULT_V2_V3_MV = 0.2
DEFAULT_RULE = "V2–V3 cut-point 0.2 mV (men ≥ 40 y), used where sex or age is unknown"

CONTIGUOUS_PAIRS: tuple[tuple[str, str], ...] = (
    ("II", "III"), ("II", "aVF"), ("III", "aVF"), ("I", "aVL"),
    ("V1", "V2"), ("V2", "V3"), ("V3", "V4"), ("V4", "V5"), ("V5", "V6"),
)


class CriteriaError(EcgauditError):
    """Sex or age given in a form the MI criteria cannot use."""


def v2_v3_cut_point_mv(sex: str | None, age: float | None) -> float:
    """The V2–V3 cut-point (mV) for one patient; `DEFAULT_V2_V3_MV` where it depends on something unknown."""
    if sex is None or (isinstance(sex, float) and np.isnan(sex)):
        return DEFAULT_V2_V3_MV
    s = str(sex).strip().lower()
    if s in ("f", "female", "woman", "w"):
        return 0.15
    if s not in ("m", "male", "man"):
        raise CriteriaError(f"sex {sex!r} is not understood; give 'M' or 'F' (or leave it unknown).")
    if age is None or np.isnan(age):
        return DEFAULT_V2_V3_MV
    return 0.2 if age >= 40 else 0.25


def cut_points_mv(leads: Sequence[str], sex: str | None = None, age: float | None = None) -> np.ndarray:
    """ST-elevation cut-point per lead (mV), `(L,)`."""
    v23 = v2_v3_cut_point_mv(sex, age)
    return np.array([v23 if lead in ("V2", "V3") else LIMB_MV for lead in leads])


def _per_record(values: Sequence[Any] | Any, n: int, name: str) -> list[Any]:
    if values is None or isinstance(values, str | int | float):
        return [values] * n
    out = list(values)
    if len(out) != n:
        raise CriteriaError(f"{name} has {len(out)} entries for {n} records; give one per record or one for all.")
    return out


def meets_st_elevation(st_j_mv: np.ndarray, leads: Sequence[str], sex: Any = None, age: Any = None) -> np.ndarray:
    """Per record `(N,)`: ST elevation at the J point `(N, L)` mV meets the cut-point in two contiguous leads.

    `sex` and `age` are one value for all records or one per record. A record with NaN deviations is False.
    """
    st = np.atleast_2d(st_j_mv)
    n = st.shape[0]
    sexes, ages = _per_record(sex, n, "sex"), _per_record(age, n, "age")
    cuts = np.stack([cut_points_mv(leads, s, None if a is None else float(a)) for s, a in zip(sexes, ages)])
    elevated = np.nan_to_num(st, nan=-np.inf) >= cuts - 1e-9
    pairs = [(leads.index(a), leads.index(b)) for a, b in CONTIGUOUS_PAIRS if a in leads and b in leads]
    met = np.zeros(n, dtype=bool)
    for i, j in pairs:
        met |= elevated[:, i] & elevated[:, j]
    return met


def threshold_rule(sex: Any = None, age: Any = None) -> str:
    """Which V2–V3 cut-point(s) were used, in words, for the report."""
    if sex is None:
        return DEFAULT_RULE
    if isinstance(sex, str):
        cut = v2_v3_cut_point_mv(sex, None if age is None else float(age))
        return f"V2–V3 cut-point {cut:g} mV for sex {sex}, age {age} (0.2 mV where age decides and is unknown)"
    return "V2–V3 cut-point per record from its sex and age (0.2 mV, men ≥ 40 y, where unknown)"
