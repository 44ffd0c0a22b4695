"""Turn raw records from any source into the model's input contract.

Every data source produces `RawRecord`s (signals in mV at their own rate, with their own lead names) and
calls `conform_records` / `build_dataset`, which:

1. maps leads BY NAME (case-insensitive, `avr` -> `aVR`) into the model's lead order;
2. a lead the model needs that a record lacks, or whose samples are all NaN (WFDB's "no signal" value, a
   lead-off electrode), is a *missing* lead: zero-filled and recorded as a `QualityIssue`, so the record is
   kept out of the eval split (see `ecgaudit.data.splits`). A lead that NO record of the source holds is an
   error (`DataError` naming the record and the lead): the data does not fit the model;
3. rejects other NaN or infinite samples (`DataError` naming the record and the lead);
4. records quality issues of the part of the signal that is kept: a *flat* lead (peak-to-peak below
   10 µV) and a *clipped* lead (at least 1 % of the samples sit at the lead's maximum or minimum, with a
   run of at least 5 consecutive samples there) become `QualityIssue`s, not errors;
5. resamples with `scipy.signal.resample_poly` by the rational approximation
   `Fraction(target_fs / source_fs).limit_denominator(1000)` (so a ratio that needs a larger denominator
   is approximated; the dataset still reports the requested fs), padding with the edge values so a
   baseline offset causes no edge transient;
6. takes the FIRST `n_samples` samples (no centring), or zero-pads at the end when the record is shorter.

The output is float32 `(N, len(leads), n_samples)` in mV.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.signal import resample_poly

from ecgaudit.data.interface import EcgDataset, QualityIssue
from ecgaudit.errors import DataError
from ecgaudit.leads import canonical_lead

if TYPE_CHECKING:
    from ecgaudit.data.labels import LabelMap

FLAT_PTP_MV = 0.010
"""A lead whose peak-to-peak amplitude is below this (10 µV) is reported as flat."""
CLIP_FRACTION = 0.01
"""A lead with at least this fraction of samples at its max (or min) may be clipped ..."""
CLIP_RUN = 5
"""... if at least this many of them are consecutive."""
MAX_SAMPLES = 10**8
"""Every reader refuses a record that declares more than this many samples (all leads together)."""
UNITS_PER_MV = {"mv": 1.0, "uv": 1e3, "µv": 1e3, "μv": 1e3, "v": 1e-3}
"""How many of a unit make one mV, by the unit's name in lower case (WFDB, DICOM UCUM codes, HL7 aECG).
Readers divide by it, so integer µV samples become exactly the mV that WFDB's `digital / 1000` gives."""


@dataclass(frozen=True, eq=False)
class RawRecord:
    """One record as read from its source, before conforming.

    `signal` is `(L, T)` float in millivolts, one row per name in `lead_names`; `fs` in Hz; `sha256` the
    digest of the record's source bytes (what exactly is hashed is documented by each source); `labels`
    a multi-hot vector over the source's classes, or None.
    """

    record_id: str
    signal: np.ndarray
    fs: float
    lead_names: tuple[str, ...]
    sha256: str
    labels: np.ndarray | None = None
    patient_id: str | None = None
    """The patient the record belongs to, where the source says (splits keep a patient on one side)."""
    codes: tuple[str, ...] | None = None
    """The source's diagnosis codes for the record (a WFDB header's `# Dx:`), before any label map; None when it
    gives none."""


def lead_key(name: str) -> str:
    """The name a lead is matched by: the standard spelling, or the stripped name for non-standard leads."""
    return canonical_lead(name) or name.strip()


def _longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    padded = np.concatenate(([0], mask.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[0::2]).max())


def lead_quality(x: np.ndarray) -> str | None:
    """`flat`, `clipped` or None for one lead (1-D, mV)."""
    if x.size == 0:
        return None
    hi, lo = x.max(), x.min()
    if hi - lo < FLAT_PTP_MV:
        return "flat"
    need = max(math.ceil(CLIP_FRACTION * x.size), CLIP_RUN)
    for level in (hi, lo):
        mask = x == level
        if int(mask.sum()) >= need and _longest_run(mask) >= CLIP_RUN:
            return "clipped"
    return None


def _ratio(target_fs: float, source_fs: float) -> tuple[int, int]:
    frac = (Fraction(target_fs) / Fraction(source_fs)).limit_denominator(1000)
    return frac.numerator, frac.denominator


def _select_leads(rec: RawRecord, wanted: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """The rows of `wanted` leads (`(len(wanted), T)` float64; zeros for a missing lead) and the missing leads."""
    signal = np.asarray(rec.signal, dtype=np.float64)
    if signal.ndim != 2 or signal.shape[0] != len(rec.lead_names):
        raise DataError(
            f"record {rec.record_id}: signal has shape {signal.shape} but {len(rec.lead_names)} lead names; "
            "fix the source so each lead has one row of samples."
        )
    where: dict[str, int] = {}
    for i, name in enumerate(rec.lead_names):
        key = lead_key(name)
        if key in wanted and key in where:
            raise DataError(f"record {rec.record_id} holds lead {key} twice; keep one copy of each lead.")
        where[key] = i
    out = np.zeros((len(wanted), signal.shape[1]))
    missing = []
    for j, lead in enumerate(wanted):
        if lead in where and not np.isnan(signal[where[lead]]).all():
            out[j] = signal[where[lead]]
        else:
            missing.append(lead)
    return out, missing


def missing_lead_error(rec: RawRecord, missing: Sequence[str], wanted: Sequence[str]) -> DataError:
    """The error for leads the model needs that no record of the source holds (absent, or all NaN)."""
    names = {lead_key(name) for name in rec.lead_names}
    empty = [lead for lead in missing if lead in names]
    absent = [lead for lead in missing if lead not in names]
    what = f"lacks lead(s) {', '.join(absent)}" if absent else ""
    if empty:
        what += f"{' and ' if what else ''}holds only NaN in lead(s) {', '.join(empty)}"
    return DataError(
        f"record {rec.record_id} {what} that the model needs "
        f"(it has {', '.join(rec.lead_names) or 'none'}); supply records with all of {', '.join(wanted)}."
    )


def _check_finite(rec: RawRecord, sub: np.ndarray, wanted: tuple[str, ...]) -> None:
    finite = np.isfinite(sub)
    if finite.all():
        return
    j = int(np.flatnonzero(~finite.all(axis=1))[0])
    what = "NaN" if np.isnan(sub[j]).any() else "infinite"
    count = int((~finite[j]).sum())
    raise DataError(
        f"record {rec.record_id}, lead {wanted[j]} holds {count} {what} sample(s); "
        "repair or drop the record before auditing."
    )


def conform_one(
    rec: RawRecord, *, fs: float, n_samples: int, leads: Sequence[str]
) -> tuple[np.ndarray, list[QualityIssue]]:
    """Conform one record: `(len(leads), n_samples)` float32 and its quality issues (missing leads first)."""
    wanted = tuple(lead_key(lead) for lead in leads)
    sub, missing = _select_leads(rec, wanted)
    if not (math.isfinite(rec.fs) and rec.fs > 0):
        raise DataError(f"record {rec.record_id} has sampling rate {rec.fs!r}; it must be a positive number.")
    if sub.shape[1] == 0:
        raise DataError(f"record {rec.record_id} holds no samples; drop it from the data set.")
    if len(missing) == len(wanted):
        raise missing_lead_error(rec, missing, wanted)
    _check_finite(rec, sub, wanted)
    up, down = _ratio(fs, rec.fs)
    if up == 0:
        raise DataError(
            f"record {rec.record_id} at {rec.fs:g} Hz cannot be resampled to {fs:g} Hz; "
            "the ratio is too extreme."
        )
    # Quality is judged on the source samples that end up inside the kept window.
    kept = min(sub.shape[1], math.ceil(n_samples * down / up))
    issues = [QualityIssue(rec.record_id, lead, "missing") for lead in missing]
    issues += [
        QualityIssue(rec.record_id, lead, kind)
        for lead, row in zip(wanted, sub[:, :kept], strict=True)
        if lead not in missing and (kind := lead_quality(row)) is not None
    ]
    if up != down:
        # Only the source samples needed for the first n_samples outputs (plus filter margin) are resampled.
        margin = 20 * max(up, down) // up + 1
        sub = resample_poly(sub[:, : kept + margin], up, down, axis=1, padtype="edge")
    out = np.zeros((len(wanted), n_samples), dtype=np.float32)
    t = min(n_samples, sub.shape[1])
    out[:, :t] = sub[:, :t]
    return out, issues


def _check_contract(fs: float, n_samples: int, leads: Sequence[str]) -> tuple[str, ...]:
    if not (math.isfinite(fs) and fs > 0) or n_samples <= 0 or not leads:
        raise ValueError(f"bad model contract: fs={fs!r}, n_samples={n_samples!r}, leads={tuple(leads)!r}")
    wanted = tuple(lead_key(lead) for lead in leads)
    if len(set(wanted)) != len(leads):
        raise ValueError(f"model leads repeat a lead: {tuple(leads)!r}")
    return wanted


def _refuse_absent_leads(records: Sequence[RawRecord], wanted: tuple[str, ...]) -> None:
    """A lead no record holds is not a quality problem of some records: the data does not fit the model.
    Lead names alone show it, so a source whose records are all at hand is refused before any is conformed."""
    named = set().union(*({lead_key(name) for name in rec.lead_names} for rec in records)) if records else set()
    if absent := [lead for lead in wanted if lead not in named]:
        raise missing_lead_error(records[0], absent, wanted)


def conform_records(
    records: Sequence[RawRecord], *, fs: float, n_samples: int, leads: Sequence[str]
) -> tuple[np.ndarray, tuple[QualityIssue, ...]]:
    """Conform records to the model: float32 `(N, len(leads), n_samples)` in mV, and quality issues."""
    wanted = _check_contract(fs, n_samples, leads)
    _refuse_absent_leads(records, wanted)
    X, issues, _ = _conform_stream(iter(records), len(records), wanted, fs=fs, n_samples=n_samples, leads=leads)
    return X, issues


_NO_SAMPLES = np.zeros((0, 0), dtype=np.float32)


def _conform_stream(
    records: Iterator[RawRecord], count: int, wanted: tuple[str, ...], *, fs: float, n_samples: int,
    leads: Sequence[str],
) -> tuple[np.ndarray, tuple[QualityIssue, ...], list[RawRecord]]:
    """Conform `count` records as they are read, keeping each one's conformed samples and metadata only.

    Sources stream their records through here so that peak memory is the conformed array plus one record in
    its source form, not every record read at once (PTB-XL's test fold is 1 GB as float64 samples). `wanted`
    is `_check_contract`'s answer for the model's leads.
    """
    X = np.zeros((count, len(leads), n_samples), dtype=np.float32)
    issues: list[QualityIssue] = []
    metadata: list[RawRecord] = []
    missing_in: dict[str, int] = {}
    for i, rec in enumerate(records):
        if i >= count:
            raise ValueError(f"the source yielded more than the {count} records it announced")
        X[i], found = conform_one(rec, fs=fs, n_samples=n_samples, leads=leads)
        metadata.append(replace(rec, signal=_NO_SAMPLES))
        issues.extend(found)
        for q in found:
            if q.kind == "missing":
                missing_in[q.lead] = missing_in.get(q.lead, 0) + 1
    if len(metadata) != count:
        raise ValueError(f"the source yielded {len(metadata)} records but announced {count}")
    if nowhere := [lead for lead in wanted if missing_in.get(lead, 0) == count and count]:
        raise missing_lead_error(metadata[0], nowhere, wanted)
    return X, tuple(issues), metadata


def build_dataset(
    records: Iterable[RawRecord],
    *,
    fs: float,
    n_samples: int,
    leads: Sequence[str],
    classes: Sequence[str] | None,
    source: str,
    patient_field: str | None = None,
    count: int | None = None,
    label_map: LabelMap | None = None,
) -> EcgDataset:
    """Conform `records` and wrap them, with labels, manifest and patients, into an `EcgDataset`.

    `records` may be a sequence, or an iterator that reads each record when asked for it together with
    `count`, the number it will yield: each record is then conformed and its samples dropped before the next
    is read. `patient_field` names where the records' `patient_id`s come from; patients are recorded only when
    at least one record has one. Records that carry diagnosis `codes` get their labels from `label_map` (by
    default the built-in SNOMED CT map, `ecgaudit.data.labels`).
    """
    wanted = _check_contract(fs, n_samples, leads)
    if count is None:
        records = list(records)
        count = len(records)
        if records:  # the lead check names the first record; an empty source is refused just below
            _refuse_absent_leads(records, wanted)
    if not count:
        raise DataError(f"{source} holds no records; point ecgaudit at a source with at least one record.")
    X, quality, metadata = _conform_stream(iter(records), count, wanted, fs=fs, n_samples=n_samples, leads=leads)
    ids = [rec.record_id for rec in metadata]
    seen: set[str] = set()
    for rid in ids:
        if rid in seen:
            raise DataError(f"{source} holds record id {rid} more than once; give every record a unique id.")
        seen.add(rid)
    labels: np.ndarray | None = None
    labelled: np.ndarray | None = None
    vocabulary: dict[str, Any] | None = None
    if label_map is None and any(rec.codes for rec in metadata) and all(rec.labels is None for rec in metadata):
        from ecgaudit.data.labels import snomed_challenge2021

        label_map = snomed_challenge2021()  # the vocabulary of every data set that writes `# Dx:` today
    if label_map is not None:
        from ecgaudit.data.labels import apply_label_map

        mapped = apply_label_map(label_map, [rec.codes for rec in metadata])
        labels, labelled, classes = mapped.labels, mapped.labelled, label_map.classes
        vocabulary = {**label_map.to_dict(), "n_labelled": int(labelled.sum()),
                      "unlabelled_records": [rid for rid, ok in zip(ids, labelled) if not ok],
                      "unmapped_codes": mapped.unmapped}
        metadata = [replace(rec, labels=None) for rec in metadata]
    has_labels = [rec.labels is not None for rec in metadata]
    if any(has_labels):
        if not all(has_labels) or classes is None:
            raise ValueError("either every record or no record must carry labels, and labels need classes")
        labels = np.stack([np.asarray(rec.labels, dtype=np.uint8) for rec in metadata])
        if labels.shape != (count, len(classes)):
            raise ValueError(f"labels have shape {labels.shape}, expected {(count, len(classes))}")
    has_patients = any(rec.patient_id is not None for rec in metadata)
    return EcgDataset(
        X=X,
        fs=float(fs),
        leads=tuple(lead_key(lead) for lead in leads),
        record_ids=tuple(ids),
        labels=labels,
        classes=None if labels is None else tuple(classes or ()),
        source=source,
        manifest=tuple((rec.record_id, rec.sha256) for rec in metadata),
        quality=quality,
        patient_ids=tuple(rec.patient_id for rec in metadata) if has_patients else None,
        patient_field=patient_field if has_patients else None,
        labelled=labelled,
        vocabulary=vocabulary,
    )
