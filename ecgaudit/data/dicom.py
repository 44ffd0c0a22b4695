"""Read DICOM ECG waveforms (one file, or every `*.dcm` in a folder) into `RawRecord`s, with pydicom.

Which samples: the multiplex group of the Waveform Sequence labelled `RHYTHM`, else the first group (a
12-lead file often carries a `MEDIAN BEAT` group too, which is not a recording). Its `SamplingFrequency`
is the record's rate.

Units: a channel's physical value is `(stored + ChannelBaseline) * ChannelSensitivity *
ChannelSensitivityCorrectionFactor` (DICOM PS3.3 C.10.9.1.4: the baseline is on the stored-value scale),
in the unit of `ChannelSensitivityUnitsSequence` (UCUM `uV`, `mV` or `V`), converted to mV.

Lead names: from each channel's source code, SCP-ECG `5.6.3-9-N` or MDC `2:N` (DICOM CID 3001), else its
code meaning (`Lead I (Einthoven)` -> `I`, `Lead aVR` -> `aVR`); other channels keep their meaning and are
read only if a model asks for them by that name.

The record id is the file's stem, `sha256` the SHA-256 of the file's bytes, and `PatientID` names the patient.
Before any sample is decoded: the file is at most `MAX_FILE_BYTES`; the declared samples (channels x samples)
at most `MAX_SAMPLES`; the waveform data exactly as long as declared; the encoding an integer one
(8/16/32-bit signed or unsigned; mu-law and A-law are refused); the transfer syntax little-endian.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecgaudit.data.conform import MAX_SAMPLES, UNITS_PER_MV, RawRecord, build_dataset
from ecgaudit.data.files import read_capped, record_files
from ecgaudit.data.interface import EcgDataset
from ecgaudit.errors import DataError
from ecgaudit.leads import canonical_lead

MAX_FILE_BYTES = 512 * 2**20
PATIENT_FIELD = "DICOM PatientID"

_DTYPES = {(8, "SB"): "i1", (8, "UB"): "u1", (16, "SS"): "<i2", (16, "US"): "<u2", (32, "SL"): "<i4", (32, "UL"): "<u4"}
# CID 3001 numbers the standard leads alike in SCP-ECG (5.6.3-9-N) and MDC (2:N).
_LEAD_NUMBER = {1: "I", 2: "II", 61: "III", 62: "aVR", 63: "aVL", 64: "aVF",
                **{2 + k: f"V{k}" for k in range(1, 7)}}
_CODE = re.compile(r"^(?:5\.6\.3-9-|2:)(\d+)$")
_MEANING = re.compile(r"^\s*lead\s+(\S+)", re.IGNORECASE)


def lead_name(code_value: str, meaning: str) -> str:
    """The lead a DICOM channel source code (or, failing that, its meaning) names."""
    match = _CODE.match(code_value.strip())
    if match and int(match.group(1)) in _LEAD_NUMBER:
        return _LEAD_NUMBER[int(match.group(1))]
    words = _MEANING.match(meaning)
    if words and canonical_lead(words.group(1)):
        return canonical_lead(words.group(1)) or ""
    return meaning.strip() or code_value.strip()


def _number(item: Any, keyword: str, default: float | None, where: str) -> float:
    value = item.get(keyword, default)
    try:
        number = float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise DataError(f"{where}: {keyword} is {value!r}; it must be a finite number.")
    return number


def _group(ds: Any, name: str) -> Any:
    groups = ds.get("WaveformSequence")
    if not groups:
        raise DataError(f"DICOM file {name} holds no waveform (Waveform Sequence); give a DICOM ECG waveform file.")
    labels = [str(g.get("MultiplexGroupLabel", "")).strip().upper() for g in groups]
    return groups[labels.index("RHYTHM")] if "RHYTHM" in labels else groups[0]


def _samples(group: Any, name: str) -> np.ndarray:
    """The stored samples, `(channels, samples)`, after checking the declared sizes against the data."""
    n_ch = int(group.get("NumberOfWaveformChannels") or 0)
    n_s = int(group.get("NumberOfWaveformSamples") or 0)
    if n_ch <= 0 or n_s <= 0:
        raise DataError(f"DICOM file {name} declares {n_ch} channels x {n_s} samples; it holds no waveform.")
    if n_ch * n_s > MAX_SAMPLES:
        raise DataError(
            f"DICOM file {name} declares {n_ch} channels x {n_s} samples, more than ecgaudit's cap of "
            f"{MAX_SAMPLES}; check the file or split the recording."
        )
    bits, kind = int(group.get("WaveformBitsAllocated") or 0), str(group.get("WaveformSampleInterpretation", ""))
    dtype = _DTYPES.get((bits, kind))
    if dtype is None:
        raise DataError(
            f"DICOM file {name} encodes samples as {bits}-bit {kind!r}; ecgaudit reads 8, 16 or 32-bit "
            "signed or unsigned integers (not mu-law or A-law)."
        )
    data = group.get("WaveformData")
    need = n_ch * n_s * bits // 8
    have = len(data) if isinstance(data, bytes) else 0
    if have not in (need, need + need % 2):  # OB data is padded to an even length
        raise DataError(
            f"DICOM file {name}: the waveform data holds {have} bytes but {n_ch} channels x {n_s} samples "
            f"of {bits} bits need {need}; the file is truncated or its header is wrong."
        )
    return np.frombuffer(data, dtype=dtype, count=n_ch * n_s).reshape(n_s, n_ch).T


def _channels(group: Any, n_ch: int, name: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Lead names, the baseline (stored units), the sensitivity (unit per stored unit) and units per mV."""
    defs = group.get("ChannelDefinitionSequence") or []
    if len(defs) != n_ch:
        raise DataError(
            f"DICOM file {name} defines {len(defs)} channels but its waveform holds {n_ch}; the file is malformed."
        )
    names, baselines, gains, per_mvs = [], [], [], []
    for k, ch in enumerate(defs):
        source = (ch.get("ChannelSourceSequence") or [None])[0]
        lead = lead_name(str(source.get("CodeValue", "")), str(source.get("CodeMeaning", ""))) if source else ""
        where = f"DICOM file {name}, channel {k + 1} ({lead or 'unnamed'})"
        units = (ch.get("ChannelSensitivityUnitsSequence") or [None])[0]
        unit = str(units.get("CodeValue", "")) if units else ""
        per_mv = UNITS_PER_MV.get(unit.strip().lower())
        if per_mv is None or "ChannelSensitivity" not in ch:
            raise DataError(f"{where} has sensitivity unit {unit!r}; ecgaudit needs a sensitivity in uV, mV or V.")
        sensitivity = _number(ch, "ChannelSensitivity", None, where)
        correction = _number(ch, "ChannelSensitivityCorrectionFactor", 1.0, where)
        names.append(lead or f"channel {k + 1}")
        baselines.append(_number(ch, "ChannelBaseline", 0.0, where))
        gains.append(sensitivity * correction)
        per_mvs.append(per_mv)
    return names, np.array(baselines), np.array(gains), np.array(per_mvs)


def read_dicom_file(path: Path) -> RawRecord:
    """One DICOM ECG waveform file as a `RawRecord` (all its channels, in mV; conforming picks the leads)."""
    import pydicom  # imported here: only DICOM sources need it
    name = path.name
    raw = read_capped(path, MAX_FILE_BYTES, "DICOM")
    try:
        with warnings.catch_warnings():  # pydicom warns about oddities; the checks below decide what is fatal
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(raw))
        meta = getattr(ds, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        if syntax is not None and not syntax.is_little_endian:
            raise DataError(f"DICOM file {name} is big-endian ({syntax}); convert it to a little-endian syntax.")
        group = _group(ds, name)
        stored = _samples(group, name)
        fs = _number(group, "SamplingFrequency", None, f"DICOM file {name}")
        names, baselines, gains, per_mv = _channels(group, stored.shape[0], name)
        patient = str(ds.get("PatientID", "") or "").strip() or None
    except DataError:
        raise
    except pydicom.errors.InvalidDicomError as exc:
        raise DataError(
            f"file {name} is not a DICOM file (it lacks the 'DICM' marker and file meta header); "
            "give a DICOM ECG waveform file."
        ) from exc
    except Exception as exc:  # pydicom raises many types for malformed files
        first = str(exc).split(". ")[0][:200]
        raise DataError(
            f"DICOM file {name} cannot be read ({type(exc).__name__}: {first}); check that it is an intact DICOM file."
        ) from exc
    if fs <= 0:
        raise DataError(f"DICOM file {name} gives sampling frequency {fs:g}; it must be positive.")
    return RawRecord(
        record_id=path.stem,
        signal=(stored.astype(np.float64) + baselines[:, None]) * gains[:, None] / per_mv[:, None],
        fs=fs,
        lead_names=tuple(names),
        sha256=hashlib.sha256(raw).hexdigest(),
        patient_id=patient,
    )


def load_dicom(
    path: str | Path, *, fs: float, n_samples: int, leads: Sequence[str], n_records: int | None = None
) -> EcgDataset:
    """Read a DICOM ECG file, or the `*.dcm` files of a folder, and conform them to the model."""
    files = record_files(Path(path), ".dcm", "DICOM", n_records)
    return build_dataset(
        (read_dicom_file(f) for f in files), count=len(files), fs=fs, n_samples=n_samples, leads=leads,
        classes=None, source=f"dicom:{Path(path)}", patient_field=PATIENT_FIELD,
    )
