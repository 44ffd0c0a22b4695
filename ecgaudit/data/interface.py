"""The dataset value type every data source produces."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
"""PTB-XL's diagnostic superclasses, in PTB-XL's usual order."""


@dataclass(frozen=True)
class QualityIssue:
    """A lead of a record that is suspicious (flat or clipped) or recorded nothing (missing)."""

    record_id: str
    lead: str
    kind: str
    """`flat`, `clipped` or `missing` (see `ecgaudit.data.conform`)."""


@dataclass(frozen=True)
class EcgDataset:
    """Records conformed to one model: mV, standard lead order, the model's fs and length.

    Shapes: `X` is `(N, L, T)` float32 in millivolts, `L = len(leads)`; `labels` is `(N, K)` uint8
    multi-hot over `classes`, or None when the source carries no labels.
    """

    X: np.ndarray
    fs: float
    leads: tuple[str, ...]
    record_ids: tuple[str, ...]
    labels: np.ndarray | None
    classes: tuple[str, ...] | None
    source: str
    manifest: tuple[tuple[str, str], ...]
    """(record id, SHA-256 of the record's source bytes), one per record."""
    quality: tuple[QualityIssue, ...] = field(default=())
    patient_ids: tuple[str | None, ...] | None = None
    """The patient of each record (None where unknown), or None when the source names no patients."""
    patient_field: str | None = None
    """Where `patient_ids` come from (e.g. PTB-XL's `patient_id` column), for the report."""
    labelled: np.ndarray | None = None
    """`(N,)` bool: which records have labels at all (a label map found none of a record's codes: False); None
    when every record with labels counts."""
    vocabulary: dict[str, Any] | None = None
    """The label map the labels came from, the codes it lacked and the records left unlabelled, for the report."""

    @property
    def n_records(self) -> int:
        return int(self.X.shape[0])

    @property
    def manifest_sha256(self) -> str:
        """SHA-256 over the manifest lines `record_id  sha256\\n`, in record order."""
        lines = "".join(f"{rid}  {digest}\n" for rid, digest in self.manifest)
        return hashlib.sha256(lines.encode()).hexdigest()

    def subset(self, index: np.ndarray, *, on_disk: bool = False) -> EcgDataset:
        """The records at `index` (an integer array), with their labels and manifest lines. `on_disk`: their
        samples in a temporary file mapped copy-on-write (`samples_on_disk`) instead of in memory."""
        idx = [int(i) for i in index]
        keep = {self.record_ids[i] for i in idx}
        return EcgDataset(
            X=samples_on_disk(self.X, np.asarray(idx, dtype=np.int64)) if on_disk else self.X[idx],
            fs=self.fs,
            leads=self.leads,
            record_ids=tuple(self.record_ids[i] for i in idx),
            labels=None if self.labels is None else self.labels[idx],
            classes=self.classes,
            source=self.source,
            manifest=tuple(self.manifest[i] for i in idx),
            quality=tuple(q for q in self.quality if q.record_id in keep),
            patient_ids=None if self.patient_ids is None else tuple(self.patient_ids[i] for i in idx),
            patient_field=self.patient_field,
            labelled=None if self.labelled is None else self.labelled[idx],
            vocabulary=self.vocabulary,
        )


def samples_on_disk(X: np.ndarray, index: np.ndarray) -> np.ndarray:
    """`X[index]` as float32 in a temporary `.npy` file, written a few records at a time and mapped
    copy-on-write; the file is unlinked at once, so nothing is left behind even if the process is killed.

    Why: pages of a file mapping are in the process's memory only while they are read. A scan reads its eval
    split in the per-record stage and its craft split only in the universal one, and a per-record attack's
    worst-case set only at the end, so what is not in use costs no memory (PTB-XL's test fold: 0.26 GB each at
    500 Hz). The array behaves as an ordinary one; writes stay private to the process.
    """
    import os
    import tempfile

    from ecgaudit.errors import DataError
    from ecgaudit.metrics import record_chunks

    shape = (len(index), *X.shape[1:])
    asked = os.environ.get("TMPDIR")
    # tempfile falls back to /tmp without a word when TMPDIR is unusable; whoever set it meant that disk, not /tmp.
    if asked and os.path.realpath(asked) != os.path.realpath(tempfile.gettempdir()):
        raise DataError(f"TMPDIR={asked} is not a writable folder, and {np.prod(shape) * 4 / 1e6:.0f} MB of samples "
                        "need a temporary file; create it, make it writable, or unset TMPDIR.")
    try:
        fd, path = tempfile.mkstemp(prefix="ecgaudit-samples-", suffix=".npy")
        try:
            with os.fdopen(fd, "wb") as f:
                np.lib.format.write_array_header_1_0(
                    f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                        "shape": shape})
                for rows in record_chunks(len(index)):
                    f.write(np.ascontiguousarray(X[index[rows]], dtype=np.float32).tobytes())
            mapped = np.load(path, mmap_mode="c")
        finally:
            os.unlink(path)
    except OSError as exc:
        raise DataError(f"could not hold {np.prod(shape) * 4 / 1e6:.0f} MB of samples in a temporary file in "
                        f"{tempfile.gettempdir()} ({exc.strerror or exc}); free space there or point TMPDIR "
                        "elsewhere.") from exc
    return mapped.view(np.ndarray)  # a plain array over the mapping, which it keeps open
