"""Read WFDB records (one record, or every `*.hea` in a folder) into `RawRecord`s.

Only the channels whose names are leads the caller needs are read (names compared case-insensitively),
so e.g. PTB's `s0010_re` reads its 12 standard leads from `s0010_re.dat` and never touches the Frank
leads in `s0010_re.xyz`. Units are converted to mV from each channel's `units` field.

A record's `sha256` is the SHA-256 over the header file's bytes followed by the bytes of each distinct
signal file that the read channels live in, in header order. WFDB records carry no labels we trust, so
`labels` is None.

Checked before any sample is read: the header's sampling rate must be written and positive (wfdb itself
silently falls back to 250 Hz); headers and signal files must be regular files, not symlinks, and signal
files must sit in the header's folder (a name with a path in it is refused), so nothing outside the data
folder is read. A header comment `# Patient: ID` (also `Patient ID`, `patient_id`, `Subject`, `Subject ID`;
any case) names the record's patient, which keeps that patient's records on one side of the split.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import wfdb

from ecgaudit.data.conform import MAX_SAMPLES, UNITS_PER_MV, RawRecord, build_dataset, lead_key
from ecgaudit.data.interface import EcgDataset
from ecgaudit.data.labels import LabelMap, header_codes
from ecgaudit.data.wfdb_header import check_regular, header_fs, header_units, list_records, record_base, signal_path
from ecgaudit.errors import DataError
from ecgaudit.leads import STANDARD_LEADS

# Bytes per sample of the uncompressed WFDB formats, to spot truncated signal files before reading.
_BYTES_PER_SAMPLE = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5}


PATIENT_KEYS = frozenset({"patient", "patient id", "patient_id", "patientid", "subject", "subject id", "subject_id"})
PATIENT_FIELD = "WFDB header comment Patient"
"""What `EcgDataset.patient_field` says for WFDB records (the `# Patient:` comment or its synonyms)."""


def header_patient(comments: Sequence[str]) -> str | None:
    """The patient named by a `# Patient: ID` comment (or a synonym in `PATIENT_KEYS`), else None."""
    for comment in comments:
        key, sep, value = comment.partition(":")
        if sep and key.strip().lower() in PATIENT_KEYS and value.strip():
            return value.strip()
    return None


def _units_per_mv(name: str, channel: str, unit: str | None) -> float:
    per_mv = UNITS_PER_MV.get((unit or "").strip().lower())
    if per_mv is None:
        raise DataError(
            f"record {name}, lead {channel} has unit {unit!r}, which ecgaudit cannot convert to mV; "
            "use mV, uV or V."
        )
    return per_mv


def _check_file(name: str, base: Path, header: wfdb.Record, fname: str) -> Path:
    """The path of signal file `fname`, after checking it is a regular file beside the header, as long as the
    header says."""
    fpath = signal_path(name, base, fname)
    in_file = [i for i, f in enumerate(header.file_name) if f == fname]
    bps = _BYTES_PER_SAMPLE.get(str(header.fmt[in_file[0]]))
    size = fpath.stat().st_size
    if bps is not None and size / bps > MAX_SAMPLES:  # also covers headers that omit the length
        raise DataError(
            f"record {name}: signal file {fname} holds more than ecgaudit's cap of {MAX_SAMPLES} samples; "
            "split the record."
        )
    if bps is not None and header.sig_len:
        spf = header.samps_per_frame or [1] * len(header.file_name)
        offset = (header.byte_offset or [0] * len(header.file_name))[in_file[0]] or 0
        frame = sum(int(spf[i] or 1) for i in in_file)
        need = int(offset) + math.floor(int(header.sig_len) * frame * bps)
        if size < need:
            raise DataError(
                f"record {name}: signal file {fname} is truncated ({size} bytes, the header needs {need}); "
                "restore the complete file."
            )
    return fpath


def read_record(path: str | Path, *, leads: Sequence[str] | None = None) -> RawRecord:
    """Read one WFDB record's channels that are among `leads` (default: the 12 standard leads), in mV."""
    base = record_base(path)
    try:
        return _read_record(base, leads)
    except DataError:
        raise
    except Exception as exc:  # a header wfdb accepts can still be self-contradictory in many ways
        raise DataError(
            f"record {base.name}: the header describes its signals inconsistently ({type(exc).__name__}: {exc}); "
            "fix or drop the record."
        ) from exc


def _read_record(base: Path, leads: Sequence[str] | None) -> RawRecord:
    name = base.name
    head_path = base.with_name(name + ".hea")
    check_regular(head_path, "header", name)
    fs = header_fs(head_path)
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises many types for malformed headers
        raise DataError(
            f"record {name}: header {name}.hea cannot be parsed ({exc}); fix or drop it."
        ) from exc
    if isinstance(header, wfdb.MultiRecord):
        raise DataError(
            f"record {name} is a multi-segment WFDB record; ecgaudit reads single-segment records only."
        )
    n_sig, sig_len = int(header.n_sig or 0), int(header.sig_len or 0)
    if n_sig * sig_len > MAX_SAMPLES:
        raise DataError(
            f"record {name}: header claims {n_sig} x {sig_len} samples, more than ecgaudit's cap of "
            f"{MAX_SAMPLES}; check the header or split the record."
        )
    wanted = {lead_key(lead) for lead in (leads if leads is not None else STANDARD_LEADS)}
    names = list(header.sig_name or [])
    channels = [i for i, ch in enumerate(names) if lead_key(ch) in wanted]
    parsed = header.units or [None] * n_sig
    units = [w if w is not None else parsed[i] for i, w in enumerate(header_units(head_path, n_sig))]
    per_mv = np.array([_units_per_mv(name, names[i], units[i]) for i in channels])
    files: list[str] = []
    for i in channels:
        if header.file_name[i] not in files:
            files.append(header.file_name[i])
    paths = [_check_file(name, base, header, f) for f in files]
    if channels:
        try:
            rec = wfdb.rdrecord(str(base), channels=channels, physical=True)
        except Exception as exc:
            raise DataError(f"record {name} cannot be read by wfdb ({exc}); check its files.") from exc
        signal = np.asarray(rec.p_signal, dtype=np.float64).T / per_mv[:, None]
    else:
        signal = np.zeros((0, sig_len))
    digest = hashlib.sha256(head_path.read_bytes())
    for fpath in paths:
        digest.update(fpath.read_bytes())
    return RawRecord(
        record_id=name,
        signal=signal,
        fs=fs,
        lead_names=tuple(names[i] for i in channels),
        sha256=digest.hexdigest(),
        labels=None,
        patient_id=header_patient(header.comments or []),
        codes=header_codes(header.comments or []),
    )


def load_wfdb(
    path: str | Path,
    *,
    fs: float,
    n_samples: int,
    leads: Sequence[str],
    n_records: int | None = None,
    label_map: LabelMap | None = None,
) -> EcgDataset:
    """Read WFDB record(s) and conform them to the model (`fs`, `n_samples`, `leads`); `# Dx:` codes become labels
    through `label_map` (default: the built-in SNOMED CT map)."""
    bases = list_records(path)
    if n_records is not None:
        bases = bases[: max(n_records, 0)]
    return build_dataset(
        (read_record(b, leads=leads) for b in bases), count=len(bases), fs=fs, n_samples=n_samples, leads=leads,
        classes=None, source=f"wfdb:{Path(path)}",
        patient_field=PATIENT_FIELD, label_map=label_map,
    )
