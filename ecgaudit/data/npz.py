"""Read a `.npz` data set.

Keys:
* `X` — `(N, L, T)` signals in mV, one row per name in `leads` (leads are mapped by name);
* `y` — `(N,)` integer class indices or `(N, K)` multi-hot (0/1) over `classes`;
* `fs` — the sampling rate in Hz (a scalar);
* `leads` — `(L,)` lead names (strings);
* `classes` — optional `(K,)` class names, default `SUPERCLASSES`;
* `record_ids` — optional `(N,)` unique record ids, default `<file stem>-<index>`.

The file is loaded with `allow_pickle=False`: object arrays are refused. A record's `sha256` is the
SHA-256 of its signal `X[i]` converted to float32, C order (so it ignores `y`, `fs` and names).
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecgaudit.data import memory
from ecgaudit.data.conform import RawRecord, build_dataset
from ecgaudit.data.interface import SUPERCLASSES, EcgDataset
from ecgaudit.data.memory import gib
from ecgaudit.errors import DataError

REQUIRED_KEYS = ("X", "y", "fs", "leads")


def _strings(arr: np.ndarray, key: str, path: Path) -> tuple[str, ...]:
    if arr.ndim != 1 or arr.dtype.kind not in "US":
        raise DataError(
            f"{path}: {key!r} must be a 1-D array of strings; save it with np.array([...], dtype=str)."
        )
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in arr.tolist())


def _pickled(path: Path) -> DataError:
    return DataError(
        f"{path} holds pickled objects; ecgaudit refuses to unpickle data, so save plain numeric "
        "and string arrays."
    )


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with path.open("rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x80"):  # a bare pickle stream
        raise _pickled(path)
    if not magic.startswith(b"PK"):
        raise DataError(f"{path} is not a .npz (zip) archive; save the arrays with numpy.savez.")
    try:
        _refuse_oversized(path)
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise _pickled(path) from exc
        raise DataError(
            f"{path} cannot be read as a .npz file ({exc}); re-save it with numpy.savez."
        ) from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path} cannot be read as a .npz file ({exc}); re-save it with numpy.savez."
        ) from exc


def _refuse_oversized(path: Path) -> None:
    """Every array a member's header declares fits in the bytes the member holds, and the members together fit
    in memory: numpy allocates what a header declares before it reads a byte, and the zip's own sizes bound
    what can be read (zipfile stops at them and checks the CRC)."""
    total_bytes = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            total_bytes += info.file_size
            with archive.open(info) as member:
                if member.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
                    continue  # numpy reads such a member as raw bytes: its file_size bounds it
                major = member.read(2)[:1]
                read_header = (np.lib.format.read_array_header_1_0 if major == b"\x01"
                               else np.lib.format.read_array_header_2_0)  # 3.0 differs only in utf-8 names
                shape, _, dtype = read_header(member)
            declared_bytes = math.prod(shape) * dtype.itemsize
            if declared_bytes > info.file_size:
                raise DataError(
                    f"{path}: {info.filename} declares a {dtype} array of shape {shape} ({gib(declared_bytes)}) "
                    f"but holds {info.file_size} bytes; the file is truncated or forged, so re-save it with "
                    "numpy.savez."
                )
    limit = memory.available_memory_bytes()
    if limit is not None and total_bytes > limit:
        raise DataError(
            f"{path} unpacks to {gib(total_bytes)}, more than the {gib(limit)} of memory available; split it "
            "into smaller files or run on a machine with more memory."
        )


def _labels(y: np.ndarray, n: int, classes: tuple[str, ...], path: Path) -> np.ndarray:
    k = len(classes)
    if y.dtype.kind not in "iub":
        if y.dtype.kind != "f" or not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{path}: 'y' must hold integer class indices or 0/1 multi-hot rows; fix 'y'.")
        y = y.astype(np.int64)
    if y.ndim == 1 and y.shape[0] == n:
        bad = (y < 0) | (y >= k)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: label {int(y[i])} of record {i} is outside the {k} classes {', '.join(classes)}; "
                "fix 'y' or add 'classes'."
            )
        out = np.zeros((n, k), dtype=np.uint8)
        out[np.arange(n), y.astype(np.int64)] = 1
        return out
    if y.ndim == 2 and y.shape == (n, k):
        if not np.isin(y, (0, 1)).all():
            raise DataError(f"{path}: multi-hot 'y' holds values other than 0 and 1; fix 'y'.")
        return y.astype(np.uint8)
    raise DataError(
        f"{path}: 'y' has shape {y.shape} but X holds {n} records and there are {k} classes; "
        f"save 'y' as ({n},) indices or ({n}, {k}) multi-hot."
    )


def read_npz(path: str | Path, *, n_records: int | None = None) -> tuple[list[RawRecord], tuple[str, ...]]:
    """Records of a `.npz` file (at most the first `n_records`) and their class names."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; check the path.")
    arrays = _arrays(path)
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise DataError(f"{path} has no array {key!r}; ecgaudit needs {', '.join(REQUIRED_KEYS)}.")
    X = arrays["X"]
    if X.ndim != 3 or X.dtype.kind not in "iuf":
        raise DataError(f"{path}: 'X' must be a numeric (N, leads, samples) array, not {X.dtype} {X.shape}.")
    n = X.shape[0]
    lead_names = _strings(arrays["leads"], "leads", path)
    if len(lead_names) != X.shape[1]:
        raise DataError(f"{path}: 'leads' names {len(lead_names)} leads but X has {X.shape[1]}; fix 'leads'.")
    fs_arr = arrays["fs"]
    if fs_arr.size != 1 or fs_arr.dtype.kind not in "iuf" or not float(fs_arr.reshape(())) > 0:
        raise DataError(f"{path}: 'fs' must be one positive number (Hz); fix 'fs'.")
    fs = float(fs_arr.reshape(()))
    classes = _strings(arrays["classes"], "classes", path) if "classes" in arrays else SUPERCLASSES
    labels = _labels(arrays["y"], n, classes, path)
    if "record_ids" in arrays:
        ids = _strings(arrays["record_ids"], "record_ids", path)
        if len(ids) != n:
            raise DataError(f"{path}: 'record_ids' has {len(ids)} entries for {n} records; fix 'record_ids'.")
    else:
        ids = tuple(f"{path.stem}-{i}" for i in range(n))
    count = n if n_records is None else min(n, max(n_records, 0))
    records = []
    for i in range(count):
        sig = np.ascontiguousarray(X[i], dtype=np.float32)
        records.append(
            RawRecord(
                record_id=ids[i],
                signal=sig,
                fs=fs,
                lead_names=lead_names,
                sha256=hashlib.sha256(sig.tobytes()).hexdigest(),
                labels=labels[i],
            )
        )
    return records, classes


def load_npz(
    path: str | Path,
    *,
    fs: float,
    n_samples: int,
    leads: Sequence[str],
    n_records: int | None = None,
) -> EcgDataset:
    """Read a `.npz` data set and conform it to the model (`fs`, `n_samples`, `leads`)."""
    records, classes = read_npz(path, n_records=n_records)
    return build_dataset(
        records, fs=fs, n_samples=n_samples, leads=leads, classes=classes, source=f"npz:{Path(path)}"
    )
