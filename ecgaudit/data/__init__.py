"""Data sources, conformed to a model's input contract (fs, length, lead order, mV).

`load_dataset(spec, ...)` dispatches on `spec`:

* `builtin:synthetic` or `builtin:synthetic:n=300,seed=2026` (both options optional; defaults n=300,
  seed=2026) — synthetic records generated at the model's fs and length;
* a path ending in `.npz` — see `ecgaudit.data.npz`;
* a folder holding `ptbxl_database.csv` — a PTB-XL root, fold 10 (see `ecgaudit.data.ptbxl`);
* a `.dcm` file, a file with DICOM's `DICM` marker, or a folder of `.dcm` files — DICOM ECG waveforms (see
  `ecgaudit.data.dicom`);
* an `.xml` file or a folder of `.xml` files — HL7 aECG (see `ecgaudit.data.aecg`);
* a folder of `.hea` files, a `.hea` file or a record path without extension — WFDB (see
  `ecgaudit.data.wfdb_source`).

A folder holding more than one of these kinds is refused: put each format in its own folder.
Splitting the loaded records into craft and eval sets, with data hygiene, is `ecgaudit.data.splits`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecgaudit.data import memory
from ecgaudit.data.interface import SUPERCLASSES, EcgDataset, QualityIssue
from ecgaudit.data.labels import LabelMap
from ecgaudit.data.memory import gib
from ecgaudit.data.preflight import builtin_options, source_kind
from ecgaudit.errors import DataError
from ecgaudit.leads import STANDARD_LEADS

__all__ = ["EcgDataset", "QualityIssue", "SUPERCLASSES", "load_dataset"]

def _load_synthetic(
    spec: str, *, fs: float, n_samples: int, leads: Sequence[str], n_records: int | None
) -> EcgDataset:
    from ecgaudit.data.conform import RawRecord, build_dataset
    from ecgaudit.data.synthetic import generate_synthetic

    opts = builtin_options(spec)
    n, seed = opts["n"], opts["seed"]
    # Generated in the standard 12 leads, then conformed to the model's leads: both copies are held at once.
    record_bytes = (len(STANDARD_LEADS) + len(leads)) * n_samples * np.dtype(np.float32).itemsize
    available = memory.available_memory_bytes()
    if available is not None and n * record_bytes > available:
        raise DataError(
            f"data spec {spec!r} needs {gib(n * record_bytes)} for {n:,} records of {n_samples} samples, more than "
            f"the {gib(available)} of memory available; ask for at most n={available // record_bytes}."
        )
    X, y = generate_synthetic(n, fs, n_samples, seed)
    count = n if n_records is None else min(n, max(n_records, 0))
    records = []
    for i in range(count):
        sig = np.ascontiguousarray(X[i], dtype=np.float32)
        label = np.zeros(len(SUPERCLASSES), dtype=np.uint8)
        if not 0 <= int(y[i]) < len(SUPERCLASSES):
            raise DataError(f"synthetic record {i} has label {int(y[i])}, outside {', '.join(SUPERCLASSES)}.")
        label[int(y[i])] = 1
        records.append(
            RawRecord(
                record_id=f"synthetic-{seed}-{i}",
                signal=sig,
                fs=float(fs),
                lead_names=STANDARD_LEADS,
                sha256=hashlib.sha256(sig.tobytes()).hexdigest(),
                labels=label,
            )
        )
    return build_dataset(
        records,
        fs=fs,
        n_samples=n_samples,
        leads=leads,
        classes=SUPERCLASSES,
        source=f"builtin:synthetic:n={n},seed={seed}",
    )


def load_dataset(
    spec: str,
    *,
    fs: float,
    n_samples: int,
    leads: Sequence[str],
    seed: int = 0,
    n_records: int | None = None,
    label_map: LabelMap | None = None,
) -> EcgDataset:
    """Load the data set named by `spec` and conform it to a model (`fs` Hz, `n_samples`, `leads`).

    `n_records` keeps only the first n records (in the source's order). `seed` is accepted for callers
    that thread one seed everywhere; loading is deterministic and does not use it (the synthetic set's
    seed is part of its spec). `label_map` turns a WFDB record's `# Dx:` codes into labels (default: the built-in
    SNOMED CT map, `ecgaudit.data.labels`).
    """
    del seed  # loading is deterministic; see the docstring
    if spec.startswith("builtin:"):
        return _load_synthetic(spec, fs=fs, n_samples=n_samples, leads=leads, n_records=n_records)

    path = Path(spec).expanduser()
    kind = source_kind(spec, path)
    # Imported here: wfdb pulls in pandas, and pydicom is sizeable; commands that never read data skip both.
    if kind == "npz":
        from ecgaudit.data.npz import load_npz

        return load_npz(path, fs=fs, n_samples=n_samples, leads=leads, n_records=n_records)
    if kind == "ptbxl":
        from ecgaudit.data.ptbxl import load_ptbxl

        return load_ptbxl(path, fs=fs, n_samples=n_samples, leads=leads, n_records=n_records)
    if kind == "dicom":
        from ecgaudit.data.dicom import load_dicom

        return load_dicom(path, fs=fs, n_samples=n_samples, leads=leads, n_records=n_records)
    if kind == "aecg":
        from ecgaudit.data.aecg import load_aecg

        return load_aecg(path, fs=fs, n_samples=n_samples, leads=leads, n_records=n_records)
    from ecgaudit.data.wfdb_source import load_wfdb

    return load_wfdb(path, fs=fs, n_samples=n_samples, leads=leads, n_records=n_records, label_map=label_map)
