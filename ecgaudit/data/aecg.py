"""HL7 aECG (the FDA's annotated ECG XML, HL7 v3 `AnnotatedECG`): read a file or every `*.xml` in a folder,
and write one (`write_aecg`, used by tests and for handing signals to aECG tools).

Parsing uses `defusedxml` with DTDs forbidden, since these files come from third parties: a document
type declaration (and with it every entity, internal or external, and every "billion laughs" expansion) is
refused before anything is expanded or fetched. A file is at most `MAX_FILE_BYTES` and its leads at most
`MAX_SAMPLES` samples in all.

Which samples: the `series` whose code is `RHYTHM` (else the first series), its first `sequenceSet`. The
`TIME_ABSOLUTE` / `TIME_RELATIVE` sequence's `increment` (in `s` or `ms`) gives the rate; each lead
sequence is coded `MDC_ECG_LEAD_<NAME>` (`MDC_ECG_LEAD_AVR` -> `aVR`) and holds an `SLIST_PQ` value:
physical = `origin + scale * digit` (each in its own unit, `uV`, `mV` or `V`), converted to mV.

The record id is the file's stem, `sha256` the SHA-256 of the file's bytes, and the trial subject's id
(`subjectAssignment/subject/trialSubject/id`, its `extension` or else its `root`) names the patient.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from ecgaudit.data.conform import MAX_SAMPLES, UNITS_PER_MV, RawRecord, build_dataset
from ecgaudit.data.files import read_capped, record_files
from ecgaudit.data.interface import EcgDataset
from ecgaudit.errors import DataError
from ecgaudit.leads import canonical_lead

MAX_FILE_BYTES = 128 * 2**20
PATIENT_FIELD = "aECG trialSubject id"
HL7_NS = "urn:hl7-org:v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
LEAD_PREFIX = "MDC_ECG_LEAD_"
_SECONDS = {"s": 1.0, "ms": 1e-3}
_TOKEN = re.compile(r"\S+")


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(node: Any, *path: str) -> list[Any]:
    """Descendants along `path` of local names (namespaces ignored), in document order."""
    found = [node]
    for name in path:
        found = [child for parent in found for child in parent if _local(child.tag) == name]
    return found


def _code(node: Any) -> str:
    codes = _children(node, "code")
    return (codes[0].get("code") or "").strip() if codes else ""


def _quantity(node: Any, what: str, where: str) -> tuple[float, str]:
    """`value` and `unit` of an HL7 PQ element."""
    raw = node.get("value")
    try:
        value = float(raw) if raw is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"{where}: {what} has value {raw!r}; it must be a finite number.")
    return value, (node.get("unit") or "").strip()


def _per_mv(unit: str, what: str, where: str) -> float:
    per_mv = UNITS_PER_MV.get(unit.lower())
    if per_mv is None:
        raise DataError(f"{where}: {what} has unit {unit!r}; ecgaudit reads uV, mV or V.")
    return per_mv


def _parse(raw: bytes, name: str) -> Any:
    import defusedxml
    from defusedxml.ElementTree import fromstring

    try:
        root = fromstring(raw, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise DataError(
            f"aECG file {name} declares a DTD or entities ({type(exc).__name__}), which ecgaudit refuses for "
            "safety; export the file without a DOCTYPE."
        ) from exc
    except ElementTree.ParseError as exc:
        raise DataError(f"aECG file {name} is not well-formed XML ({exc}); export it again.") from exc
    if _local(root.tag) != "AnnotatedECG":
        raise DataError(
            f"aECG file {name} has root element {_local(root.tag)!r}, not AnnotatedECG; give an HL7 aECG file."
        )
    return root


def _rate(sequences: list[Any], where: str) -> float:
    for seq in sequences:
        if _code(seq).startswith("TIME_"):
            inc = _children(seq, "value", "increment")
            if not inc:
                break
            step, unit = _quantity(inc[0], "the time increment", where)
            if unit not in _SECONDS or step <= 0:
                raise DataError(f"{where}: the time increment is {step:g} {unit!r}; give a positive step in s or ms.")
            fs = 1.0 / (step * _SECONDS[unit])
            # 0.002 s is written in decimal; read it back as exactly 500 Hz.
            return float(round(fs)) if abs(fs - round(fs)) < 1e-9 * fs else fs
    raise DataError(f"{where} has no time sequence with an increment; the sampling rate is unknown.")


def _lead(seq: Any, budget: int, where: str) -> tuple[str, np.ndarray]:
    """The lead's name and samples in mV; at most `budget` samples are parsed before refusing the file."""
    suffix = _code(seq)[len(LEAD_PREFIX) :]
    name = canonical_lead(suffix) or suffix
    where = f"{where}, lead {name}"
    value = (_children(seq, "value") or [None])[0]
    origin, scale, digits = ((_children(value, tag) or [None])[0] if value is not None else None
                             for tag in ("origin", "scale", "digits"))
    if scale is None or digits is None:
        raise DataError(f"{where} holds no SLIST_PQ scale and digits; ecgaudit reads digit lists only.")
    step, unit = _quantity(scale, "scale", where)
    per_mv = _per_mv(unit, "scale", where)
    offset = 0.0
    if origin is not None:  # the origin in the scale's unit, so `(offset + step * digit) / per_mv` is mV
        value, origin_unit = _quantity(origin, "origin", where)
        offset = value * per_mv / _per_mv(origin_unit, "origin", where)
    # Parsed token by token: a split() list of a huge digit string would cost ~60 bytes per digit.
    tokens = (m.group() for m in _TOKEN.finditer(digits.text or ""))
    try:
        numbers = np.fromiter(itertools.islice(map(float, tokens), budget + 1), dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{where}: its digits are not all numbers ({exc}); export the file again.") from exc
    if len(numbers) > budget:
        raise DataError(f"{where} takes the file past ecgaudit's cap of {MAX_SAMPLES} samples; split the recording.")
    return name, (offset + step * numbers) / per_mv


def _patient(root: Any) -> str | None:
    path = ("componentOf", "timepointEvent", "componentOf", "subjectAssignment", "subject", "trialSubject", "id")
    ids = _children(root, *path)
    if not ids:
        return None
    value = (ids[0].get("extension") or ids[0].get("root") or "").strip()
    return value or None


def read_aecg_file(path: Path) -> RawRecord:
    """One HL7 aECG file as a `RawRecord` (every lead of its rhythm series, in mV)."""
    name = path.name
    raw = read_capped(path, MAX_FILE_BYTES, "aECG")
    root = _parse(raw, name)
    series = _children(root, "component", "series")
    if not series:
        raise DataError(f"aECG file {name} holds no waveform series; give an aECG file with a rhythm series.")
    chosen = next((s for s in series if _code(s) == "RHYTHM"), series[0])
    sets = _children(chosen, "component", "sequenceSet")
    sequences = _children(sets[0], "component", "sequence") if sets else []
    where = f"aECG file {name}"
    fs = _rate(sequences, where)
    leads: list[tuple[str, np.ndarray]] = []
    for seq in sequences:
        if _code(seq).startswith(LEAD_PREFIX):
            leads.append(_lead(seq, MAX_SAMPLES - sum(len(x) for _, x in leads), where))
    if not leads:
        raise DataError(f"{where} holds no {LEAD_PREFIX}* sequences; it carries no ECG leads.")
    lengths = {len(x) for _, x in leads}
    if len(lengths) != 1:
        raise DataError(
            f"{where}: its leads hold different numbers of samples ({', '.join(map(str, sorted(lengths)))}); "
            "export the leads of one recording over the same time span."
        )
    return RawRecord(
        record_id=path.stem,
        signal=np.stack([x for _, x in leads]),
        fs=fs,
        lead_names=tuple(n for n, _ in leads),
        sha256=hashlib.sha256(raw).hexdigest(),
        patient_id=_patient(root),
    )


def load_aecg(
    path: str | Path, *, fs: float, n_samples: int, leads: Sequence[str], n_records: int | None = None
) -> EcgDataset:
    """Read an HL7 aECG file, or the `*.xml` files of a folder, and conform them to the model."""
    files = record_files(Path(path), ".xml", "HL7 aECG", n_records)
    return build_dataset(
        (read_aecg_file(f) for f in files), count=len(files), fs=fs, n_samples=n_samples, leads=leads, classes=None,
        source=f"aecg:{Path(path)}", patient_field=PATIENT_FIELD,
    )


def write_aecg(
    path: str | Path,
    signal_mv: np.ndarray,
    fs: float,
    leads: Sequence[str],
    *,
    scale_uv: float = 1.0,
    patient_id: str | None = None,
) -> None:
    """Write `signal_mv` (`(L, T)` mV, one row per name in `leads`) as a minimal HL7 aECG rhythm series.

    Samples are stored as integer digits of `scale_uv` µV each (origin 0), so a signal already on that grid
    (e.g. WFDB samples at 1000 adu/mV with `scale_uv=1`) reads back exactly.
    """
    x = np.asarray(signal_mv, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(leads) or not np.isfinite(x).all():
        raise ValueError(f"signal of shape {x.shape} does not fit {len(leads)} leads, or is not finite")
    ElementTree.register_namespace("", HL7_NS)
    ElementTree.register_namespace("xsi", XSI_NS)

    def sub(parent: Any, tag: str, **attrs: str) -> Any:
        return ElementTree.SubElement(parent, f"{{{HL7_NS}}}{tag}", attrs)

    stem = Path(path).stem
    root = ElementTree.Element(f"{{{HL7_NS}}}AnnotatedECG", {"type": "Observation"})
    sub(root, "id", root=str(uuid.uuid5(uuid.NAMESPACE_URL, f"ecgaudit:aecg:{stem}")))
    sub(root, "code", code="93000", codeSystem="2.16.840.1.113883.6.12", codeSystemName="CPT-4")
    if patient_id is not None:
        chain = root
        for tag in ("componentOf", "timepointEvent", "componentOf", "subjectAssignment", "subject", "trialSubject"):
            chain = sub(chain, tag)
        sub(chain, "id", root="2.16.840.1.113883.3.400", extension=patient_id)
    series = sub(sub(root, "component"), "series")
    sub(series, "code", code="RHYTHM", codeSystem="2.16.840.1.113883.5.4")
    seq_set = sub(sub(series, "component"), "sequenceSet")
    time = sub(sub(seq_set, "component"), "sequence")
    sub(time, "code", code="TIME_ABSOLUTE", codeSystem="2.16.840.1.113883.5.4")
    value = sub(time, "value", **{f"{{{XSI_NS}}}type": "GLIST_TS"})
    sub(value, "head", value="20000101000000")
    sub(value, "increment", value=repr(1.0 / fs), unit="s")
    digits = np.rint(x * 1000.0 / scale_uv).astype(np.int64)
    for lead, row in zip(leads, digits):
        seq = sub(sub(seq_set, "component"), "sequence")
        sub(seq, "code", code=LEAD_PREFIX + lead.upper(), codeSystem="2.16.840.1.113883.6.24")
        value = sub(seq, "value", **{f"{{{XSI_NS}}}type": "SLIST_PQ"})
        sub(value, "origin", value="0", unit="uV")
        sub(value, "scale", value=repr(float(scale_uv)), unit="uV")
        sub(value, "digits").text = " ".join(map(str, row.tolist()))
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
