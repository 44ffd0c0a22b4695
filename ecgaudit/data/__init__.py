"""Data sources, conformed to a model's input contract (fs, length, lead order, mV).

`load_dataset(spec, ...)` dispatches on `spec`:

* `builtin:synthetic` or `builtin:synthetic:n=300,seed=2026` (both options optional; defaults n=300,
  seed=2026) — synthetic records generated at the model's fs and length;
* a path ending in `.npz` — see `ecgaudit.data.npz`;
* a folder holding `ptbxl_database.csv` — a PTB-XL root, fold 10 (see `ecgaudit.data.ptbxl`);
* any other folder, a `.hea` file or a record path without extension — WFDB (see `ecgaudit.data.wfdb_source`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecgaudit.data.conform import RawRecord, build_dataset
from ecgaudit.data.interface import SUPERCLASSES, EcgDataset, QualityIssue
from ecgaudit.errors import DataError
from ecgaudit.leads import STANDARD_LEADS

__all__ = ["EcgDataset", "QualityIssue", "SUPERCLASSES", "load_dataset"]

SYNTHETIC_DEFAULTS = {"n": 300, "seed": 2026}


def _synthetic_options(spec: str, rest: str) -> dict[str, int]:
    options = dict(SYNTHETIC_DEFAULTS)
    if not rest:
        return options
    for item in rest.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in options:
            raise DataError(
                f"data spec {spec!r} has option {item.strip()!r}; "
                "builtin:synthetic takes only n=<int> and seed=<int>."
            )
        try:
            options[key] = int(value.strip())
        except ValueError as exc:
            raise DataError(f"data spec {spec!r}: {key} must be an integer, not {value.strip()!r}.") from exc
    if options["n"] <= 0:
        raise DataError(f"data spec {spec!r}: n must be a positive number of records.")
    return options


def _load_synthetic(
    spec: str, rest: str, *, fs: float, n_samples: int, leads: Sequence[str], n_records: int | None
) -> EcgDataset:
    from ecgaudit.data.synthetic import generate_synthetic

    opts = _synthetic_options(spec, rest)
    n, seed = opts["n"], opts["seed"]
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
) -> EcgDataset:
    """Load the data set named by `spec` and conform it to a model (`fs` Hz, `n_samples`, `leads`).

    `n_records` keeps only the first n records (in the source's order). `seed` is accepted for callers
    that thread one seed everywhere; loading is deterministic and does not use it (the synthetic set's
    seed is part of its spec).
    """
    del seed  # loading is deterministic; see the docstring
    if spec.startswith("builtin:"):
        name, _, rest = spec[len("builtin:") :].partition(":")
        if name != "synthetic":
            raise DataError(
                f"unknown built-in data set {name!r} in {spec!r}; the only one is builtin:synthetic."
            )
        return _load_synthetic(spec, rest, fs=fs, n_samples=n_samples, leads=leads, n_records=n_records)

    # Imported here: wfdb pulls in pandas, which costs start-up time for commands that never read data.
    from ecgaudit.data.npz import load_npz
    from ecgaudit.data.ptbxl import is_ptbxl_root, load_ptbxl
    from ecgaudit.data.wfdb_source import load_wfdb

    path = Path(spec).expanduser()
    if path.suffix.lower() == ".npz":
        return load_npz(path, fs=fs, n_samples=n_samples, leads=leads, n_records=n_records)
    if path.is_dir() and is_ptbxl_root(path):
        return load_ptbxl(path, fs=fs, n_samples=n_samples, leads=leads, n_records=n_records)
    if (
        path.is_dir()
        or path.with_name(path.name + ".hea").is_file()
        or (path.is_file() and path.suffix.lower() == ".hea")
    ):
        return load_wfdb(path, fs=fs, n_samples=n_samples, leads=leads, n_records=n_records)
    if path.exists():
        raise DataError(
            f"data source {spec!r} is not a .npz file, a WFDB header or record path, or a folder; "
            "give one of those (for WFDB, name the .hea file)."
        )
    raise DataError(
        f"data source {spec!r} does not exist; give a .npz file, a WFDB record or folder, a PTB-XL root, "
        "or builtin:synthetic."
    )
