"""Disjoint craft and eval splits, after data hygiene, drawn with one seed.

`split_dataset` runs, in this order, before drawing anything:

1. **Duplicates**: records whose signal bytes (as loaded, at the model's fs and length) equal an earlier
   record's are dropped; the first one stays. Both halves of a duplicate can never straddle the split.
2. **Quality**: records with a missing, flat or clipped lead (`EcgDataset.quality`) may go to the craft
   split but never to the eval split, unless `keep_flagged=True`; each is listed with its reason.
3. **Patients**: where the source names patients (PTB-XL `patient_id`, a WFDB `# Patient:` comment, DICOM
   `PatientID`, an aECG trial subject id), all records of one patient land on one side; a record without a
   patient counts as a patient of its own.

Then patient groups are shuffled with `numpy.random.default_rng(seed)` and walked in that order: eval takes
the eval-eligible records of each group until it holds its share, craft takes the records of the groups that
are not in eval until it holds `n_craft` (records of an eval patient beyond the eval share are used nowhere).
When the usable records cannot fill both splits, eval gets at most half of them. Fewer records than asked is
a **shortfall**, recorded per split; `min_n_eval` (a profile's `data.min_n_eval`) refuses a scan whose eval
split would hold fewer records (`DataError`), since its intervals would be too wide to support a claim.

With no duplicates, flags or patients the split is exactly the plain seeded permutation of `split_indices`.

`draw_splits` does all this for a run and copies the two splits out of the source (`Splits`), so the source's
full array can be dropped; large splits go to temporary files mapped into memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecgaudit.data.hygiene import duplicate_of, patient_groups, quality_reasons
from ecgaudit.data.interface import EcgDataset
from ecgaudit.errors import AttackError, DataError


@dataclass(frozen=True)
class DataSplit:
    """Indices into the dataset (int arrays, disjoint) and what hygiene did, for the report."""

    craft_idx: np.ndarray
    eval_idx: np.ndarray
    hygiene: dict[str, Any]
    """See `hygiene_summary` for the shape."""


def _check_sizes(n_craft: int, n_eval: int) -> None:
    if n_craft < 1 or n_eval < 1:
        raise AttackError("craft and eval splits need at least one record each.")


def _draw(
    groups: list[list[int]], eval_ok: set[int], *, n_craft: int, n_eval: int, seed: int
) -> tuple[list[int], list[int]]:
    """Craft and eval indices: groups shuffled by `seed`, eval filled first from eval-eligible records."""
    order = np.random.default_rng(seed).permutation(len(groups))
    n_usable = sum(len(g) for g in groups)
    eval_share = min(n_eval, n_usable // 2) if n_craft + n_eval > n_usable else n_eval
    eval_share = min(eval_share, len(eval_ok))
    eval_idx: list[int] = []
    in_eval: set[int] = set()
    for g in order:
        if len(eval_idx) >= eval_share:
            break
        members = [i for i in groups[g] if i in eval_ok]
        if members:
            eval_idx += members[: eval_share - len(eval_idx)]
            in_eval.add(int(g))
    craft_idx: list[int] = []
    for g in order:
        if len(craft_idx) >= n_craft:
            break
        if int(g) not in in_eval:
            craft_idx += groups[g][: n_craft - len(craft_idx)]
    return craft_idx, eval_idx


def split_indices(n_records: int, *, n_craft: int, n_eval: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint craft and eval indices of `n_records` records drawn with `seed`, without any hygiene (for
    callers that hold no dataset); when both do not fit, eval keeps half."""
    _check_sizes(n_craft, n_eval)
    if n_records < 2:
        raise AttackError(f"the dataset has {n_records} record(s); an attack needs at least 2 (craft + eval).")
    craft, evaluation = _draw([[i] for i in range(n_records)], set(range(n_records)), n_craft=n_craft,
                              n_eval=n_eval, seed=seed)
    return np.array(craft, dtype=np.int64), np.array(evaluation, dtype=np.int64)


def split_dataset(
    dataset: EcgDataset,
    *,
    n_craft: int,
    n_eval: int,
    seed: int,
    keep_flagged: bool = False,
    min_n_eval: int | None = None,
) -> DataSplit:
    """Hygiene (duplicates, quality flags, patients), then disjoint craft/eval splits drawn with `seed`.

    Raises `DataError` when no record is left for one of the splits, or eval holds fewer than `min_n_eval`.
    """
    _check_sizes(n_craft, n_eval)
    repeats = duplicate_of(dataset)
    usable = [i for i in range(dataset.n_records) if i not in repeats]
    reasons = quality_reasons(dataset)
    eval_ok = {i for i in usable if keep_flagged or dataset.record_ids[i] not in reasons}
    groups = patient_groups(dataset, usable)
    craft, evaluation = _draw(groups, eval_ok, n_craft=n_craft, n_eval=n_eval, seed=seed)
    hygiene = hygiene_summary(dataset, repeats, reasons, groups, craft, evaluation,
                              n_craft=n_craft, n_eval=n_eval, keep_flagged=keep_flagged, min_n_eval=min_n_eval)
    if not craft or not evaluation:
        raise DataError(
            f"{dataset.source}: after hygiene {len(usable)} of {dataset.n_records} record(s) are usable and "
            f"{len(eval_ok)} may be evaluated, leaving {len(craft)} for crafting and {len(evaluation)} for "
            "evaluation; supply more distinct, clean records."
        )
    if min_n_eval is not None and len(evaluation) < min_n_eval:
        raise DataError(
            f"{dataset.source}: the eval split holds {len(evaluation)} usable record(s), fewer than the profile's "
            f"data.min_n_eval of {min_n_eval}; supply more distinct, clean records or lower the minimum."
        )
    return DataSplit(np.array(craft, dtype=np.int64), np.array(evaluation, dtype=np.int64), hygiene)


def hygiene_summary(
    dataset: EcgDataset,
    repeats: dict[int, int],
    reasons: dict[str, str],
    groups: list[list[int]],
    craft: list[int],
    evaluation: list[int],
    *,
    n_craft: int,
    n_eval: int,
    keep_flagged: bool,
    min_n_eval: int | None,
) -> dict[str, Any]:
    """The report's `data.hygiene` object.

    `duplicates`: `[{record, duplicate_of}]`, records dropped as copies of an earlier one;
    `excluded`: `[{record, reason}]`, flagged records kept out of the eval split (empty with `keep_flagged`);
    `flagged`: `[{record, reason}]`, every flagged record, wherever it went;
    `patients_split_by`: the patient field the split respects, or `"record"` when the source names none;
    `shortfall`: asked and got per split, and `short` (true when either split got fewer than asked).
    """
    ids = dataset.record_ids
    flagged = [{"record": rid, "reason": reasons[rid]} for rid in ids if rid in reasons]
    return {
        "n_records": dataset.n_records,
        "n_usable": dataset.n_records - len(repeats),
        "duplicates": [{"record": ids[i], "duplicate_of": ids[j]} for i, j in sorted(repeats.items())],
        "patients_split_by": dataset.patient_field or "record",
        "n_patients": len(groups) if dataset.patient_field else None,
        "keep_flagged": keep_flagged,
        "flagged": flagged,
        "excluded": [] if keep_flagged else flagged,
        "n_unused": sum(len(g) for g in groups) - len(craft) - len(evaluation),
        "min_n_eval": min_n_eval,
        "shortfall": {
            "n_craft_asked": n_craft, "n_craft": len(craft), "n_eval_asked": n_eval, "n_eval": len(evaluation),
            "short": len(craft) < n_craft or len(evaluation) < n_eval,
        },
    }


SAMPLES_ON_DISK_BYTES = 128 << 20
"""Samples that take at least this much (the two splits together; one per-record attack's worst-case set) are held
in temporary files mapped into memory (`ecgaudit.data.interface.samples_on_disk`): they are then in memory only
while a stage reads them."""


@dataclass(frozen=True)
class Splits:
    """The run's data: the resolved source, the disjoint craft and eval splits, and the whole source's summary.

    Only the two splits hold samples: the source's full array is dropped once they are drawn, so a scan holds
    each record once (the PTB-XL test fold is 0.5 GB as float32 at 500 Hz).
    """

    spec: str
    craft: EcgDataset
    evaluation: EcgDataset
    craft_idx: np.ndarray
    eval_idx: np.ndarray
    source_summary: dict[str, Any]
    hygiene: dict[str, Any] = field(default_factory=dict)

    def summary(self, seed: int) -> dict[str, Any]:
        return {**self.source_summary, "splits": {
            "seed": seed, "n_craft": len(self.craft_idx), "n_eval": len(self.eval_idx),
            "craft_manifest_sha256": self.craft.manifest_sha256,
            "eval_manifest_sha256": self.evaluation.manifest_sha256}, "hygiene": self.hygiene}


def draw_splits(dataset: EcgDataset, spec: str, *, n_craft: int, n_eval: int, seed: int,
                min_n_eval: int | None = None) -> Splits:
    """`split_dataset`, then the two splits' samples copied out of `dataset` (`spec` is where it came from);
    on disk when they take at least `SAMPLES_ON_DISK_BYTES`."""
    split = split_dataset(dataset, n_craft=n_craft, n_eval=n_eval, seed=seed, min_n_eval=min_n_eval)
    record_bytes = dataset.X[:1].nbytes
    on_disk = (len(split.craft_idx) + len(split.eval_idx)) * record_bytes >= SAMPLES_ON_DISK_BYTES
    return Splits(spec, dataset.subset(split.craft_idx, on_disk=on_disk),
                  dataset.subset(split.eval_idx, on_disk=on_disk), split.craft_idx, split.eval_idx,
                  data_summary(dataset), split.hygiene)


def data_summary(dataset: EcgDataset) -> dict[str, Any]:
    return {
        "source": dataset.source, "fs": dataset.fs, "n_records": dataset.n_records,
        "manifest_sha256": dataset.manifest_sha256,
        "quality_issues": [{"record": q.record_id, "lead": q.lead, "kind": q.kind} for q in dataset.quality],
        **({"labels": dataset.vocabulary} if dataset.vocabulary is not None else {}),
    }
