"""Data hygiene checks run before any split: exact duplicates, quality flags and patient groups."""

from __future__ import annotations

import hashlib

import numpy as np

from ecgaudit.data.interface import EcgDataset

QUALITY_KINDS = ("missing", "flat", "clipped")
"""The quality flags (see `ecgaudit.data.conform`) that keep a record out of the eval split, in report order."""


def duplicate_of(dataset: EcgDataset) -> dict[int, int]:
    """Record index -> index of the first record with the same signal bytes (as loaded, at the model's fs),
    for every record that repeats an earlier one."""
    first: dict[bytes, int] = {}
    repeats: dict[int, int] = {}
    for i in range(dataset.n_records):
        key = hashlib.sha256(np.ascontiguousarray(dataset.X[i]).tobytes()).digest()
        if key in first:
            repeats[i] = first[key]
        else:
            first[key] = i
    return repeats


def quality_reasons(dataset: EcgDataset) -> dict[str, str]:
    """Record id -> why it is flagged, e.g. `flat lead(s) V2, V4, V6; clipped lead(s) II`."""
    by_record: dict[str, dict[str, list[str]]] = {}
    for q in dataset.quality:
        by_record.setdefault(q.record_id, {}).setdefault(q.kind, []).append(q.lead)
    return {
        rid: "; ".join(f"{kind} lead(s) {', '.join(kinds[kind])}" for kind in QUALITY_KINDS if kind in kinds)
        for rid, kinds in by_record.items()
    }


def patient_groups(dataset: EcgDataset, indices: list[int]) -> list[list[int]]:
    """`indices` grouped by patient, groups in order of their first record; a record without a patient
    is a group of its own."""
    groups: dict[object, list[int]] = {}
    for i in indices:
        patient = None if dataset.patient_ids is None else dataset.patient_ids[i]
        groups.setdefault(("record", i) if patient is None else ("patient", patient), []).append(i)
    return list(groups.values())
