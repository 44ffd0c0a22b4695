"""Read a PTB-XL root: `ptbxl_database.csv`, `scp_statements.csv`, `records100/` and `records500/`.

The records of one stratified fold (`strat_fold`, default 10, PTB-XL's recommended test fold) are read.
The model's fs picks the file: `filename_lr` (100 Hz) only when the model's fs is at most 100 Hz, else
`filename_hr` (500 Hz), since the 100 Hz files hold nothing above 50 Hz; conforming then resamples to the
model's exact rate. Each record's `patient_id` (when the column is there) keeps a patient's records on one side
of the craft/eval split.

Labels are multi-hot over `SUPERCLASSES`: every code in a record's `scp_codes` (whatever its likelihood)
that `scp_statements.csv` marks `diagnostic == 1` contributes its `diagnostic_class`. Records with no
diagnostic superclass keep all-zero labels. Record ids are the `ecg_id` values; the manifest digests are
those of the WFDB files (see `wfdb_source`).
"""

from __future__ import annotations

import ast
import csv
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from ecgaudit.data.conform import RawRecord, build_dataset
from ecgaudit.data.files import PTBXL_DATABASE_CSV
from ecgaudit.data.interface import SUPERCLASSES, EcgDataset
from ecgaudit.data.wfdb_source import read_record
from ecgaudit.errors import DataError

STATEMENTS_CSV = "scp_statements.csv"
LR_MAX_FS = 100.0
"""Models at or below this rate read the 100 Hz files (`filename_lr`), faster ones the 500 Hz files."""
PATIENT_FIELD = "patient_id"


def _read_csv(path: Path, required: Sequence[str]) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise DataError(
            f"PTB-XL file {path} is missing; a PTB-XL root needs {PTBXL_DATABASE_CSV} and {STATEMENTS_CSV}."
        )
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(
            f"PTB-XL file {path} cannot be read as CSV ({exc}); restore the original file."
        ) from exc
    for column in required:
        if column not in fields:
            raise DataError(f"PTB-XL file {path} has no column {column!r}; restore the original file.")
    return fields, rows


def _number(value: str, what: str, path: Path) -> float:
    try:
        return float(value)
    except ValueError as exc:
        raise DataError(f"PTB-XL file {path}: {what} is {value!r}, not a number; fix that row.") from exc


def diagnostic_classes(path: Path) -> dict[str, str]:
    """SCP code -> diagnostic superclass, for the statements with `diagnostic == 1`."""
    fields, rows = _read_csv(path, ("diagnostic", "diagnostic_class"))
    if not fields:
        raise DataError(f"PTB-XL file {path} is empty; restore the original file.")
    code_column = fields[0]  # PTB-XL writes the SCP code as an unnamed index column
    table: dict[str, str] = {}
    for row in rows:
        flag = (row.get("diagnostic") or "").strip()
        code = (row.get(code_column) or "").strip()
        if flag and _number(flag, f"diagnostic of {code}", path) == 1:
            table[code] = (row.get("diagnostic_class") or "").strip()
    return table


def _labels(scp_codes: str, ecg_id: str, table: dict[str, str], path: Path) -> np.ndarray:
    try:
        codes = ast.literal_eval(scp_codes)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        codes = None
    if not isinstance(codes, dict):
        raise DataError(
            f"PTB-XL file {path}: scp_codes of ecg_id {ecg_id} is not a dict literal; fix that row."
        )
    y = np.zeros(len(SUPERCLASSES), dtype=np.uint8)
    for code in codes:
        superclass = table.get(str(code).strip())
        if superclass in SUPERCLASSES:
            y[SUPERCLASSES.index(superclass)] = 1
    return y


def _patient(value: str | None) -> str | None:
    """PTB-XL writes patient ids as floats (`5028.0`); an empty cell means unknown."""
    value = (value or "").strip()
    if not value or value.lower() == "nan":
        return None
    return value[:-2] if value.endswith(".0") else value


def _record_path(root: Path, rel: str, ecg_id: str, column: str) -> Path:
    """`root / rel`, refusing empty, absolute or `..` paths (a symlinked `records500/` is fine)."""
    rel = rel.strip()
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    if not rel or PurePosixPath(rel).is_absolute() or Path(rel).is_absolute() or ".." in parts:
        raise DataError(
            f"PTB-XL ecg_id {ecg_id}: {column} {rel!r} does not point inside {root}; fix {PTBXL_DATABASE_CSV}."
        )
    return root / rel


def read_ptbxl(
    root: str | Path,
    *,
    fs: float,
    leads: Sequence[str] | None = None,
    fold: int = 10,
    n_records: int | None = None,
) -> tuple[int, Iterator[RawRecord]]:
    """The number of records of fold `fold` (in CSV order, at most `n_records`) and an iterator that reads
    them one at a time, with their superclass labels (the database and statements are checked first)."""
    root = Path(root)
    column = "filename_lr" if fs <= LR_MAX_FS else "filename_hr"
    db_path = root / PTBXL_DATABASE_CSV
    _, rows = _read_csv(db_path, ("ecg_id", "scp_codes", "strat_fold", column))
    table = diagnostic_classes(root / STATEMENTS_CSV)
    in_fold = [row for row in rows
               if _number(row["strat_fold"], f"strat_fold of ecg_id {row['ecg_id'].strip()}", db_path) == fold]
    if n_records is not None:
        in_fold = in_fold[: max(n_records, 0)]
    if not in_fold and n_records != 0:
        raise DataError(f"PTB-XL file {db_path} lists no records in strat_fold {fold}; pick another fold.")
    labelled = [(row["ecg_id"].strip(), row, _labels(row["scp_codes"], row["ecg_id"].strip(), table, db_path))
                for row in in_fold]

    def records() -> Iterator[RawRecord]:
        for ecg_id, row, labels in labelled:
            raw = read_record(_record_path(root, row[column], ecg_id, column), leads=leads)
            yield RawRecord(record_id=ecg_id, signal=raw.signal, fs=raw.fs, lead_names=raw.lead_names,
                            sha256=raw.sha256, labels=labels, patient_id=_patient(row.get(PATIENT_FIELD)))

    return len(labelled), records()


def load_ptbxl(
    root: str | Path,
    *,
    fs: float,
    n_samples: int,
    leads: Sequence[str],
    fold: int = 10,
    n_records: int | None = None,
) -> EcgDataset:
    """Read fold `fold` of a PTB-XL root and conform it to the model (`fs`, `n_samples`, `leads`), one record
    at a time."""
    count, records = read_ptbxl(root, fs=fs, leads=leads, fold=fold, n_records=n_records)
    column = "filename_lr" if fs <= LR_MAX_FS else "filename_hr"
    return build_dataset(
        records,
        count=count,
        fs=fs,
        n_samples=n_samples,
        leads=leads,
        classes=SUPERCLASSES,
        source=f"ptbxl:{root} (strat_fold {fold}, {column})",
        patient_field=PATIENT_FIELD,
    )
