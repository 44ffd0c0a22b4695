"""Label vocabularies: a data set's diagnosis codes mapped to class names a model's classes are matched with.

Real ECG data sets label in their own vocabulary: SNOMED CT in the PhysioNet/CinC Challenges (and the Georgia,
Ningbo, Chapman-Shaoxing and CODE sets they gather), SCP-ECG statements in PTB-XL, a vendor's own codes elsewhere.
A `LabelMap` turns a record's codes into labels:

* built in, `snomed-challenge2021`: the Challenge 2021's 30 scored SNOMED CT codes (`vocabularies/`, with source and
  licence) -> the Challenge's abbreviations, a pair it scores as one diagnosis giving both names (so a model with
  either name is judged the same way);
* `--label-map FILE.csv`: rows `code,class` (a header line `code,class` first; a code on several rows maps to
  several classes) for any other vocabulary or class set.

A code the map lacks is counted and named in the report; a record none of whose codes is mapped is unlabelled
(never a default class such as NORM), and is left out of every accuracy.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ecgaudit.errors import DataError

BUILTIN_SNOMED = "snomed-challenge2021"
MAX_MAP_BYTES = 4 << 20
_SAME = re.compile(r"We score (\d+) and (\d+) as the same diagnosis")


@dataclass(frozen=True)
class LabelMap:
    name: str
    """`snomed-challenge2021`, or the file's path."""
    description: str
    sha256: str
    """Of the table's bytes, so the report pins the exact map used."""
    codes: dict[str, tuple[str, ...]]
    """code -> the class names it stands for."""
    classes: tuple[str, ...] = field(default=())
    """Every class name the map can give, in first-seen order."""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "description": self.description, "sha256": self.sha256}


def snomed_challenge2021() -> LabelMap:
    raw = resources.files("ecgaudit.data.vocabularies").joinpath("challenge2021_dx_mapping_scored.csv").read_bytes()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
    names = {row["SNOMEDCTCode"]: row["Abbreviation"] for row in rows}
    codes: dict[str, tuple[str, ...]] = {}
    for row in rows:
        code, mapped = row["SNOMEDCTCode"], [row["Abbreviation"]]
        same = _SAME.search(row.get("Notes") or "")
        if same:
            mapped += [names[other] for other in same.groups() if other != code and other in names]
        codes[code] = tuple(dict.fromkeys(mapped))
    return LabelMap(BUILTIN_SNOMED, "SNOMED CT, PhysioNet/CinC Challenge 2021 scored diagnoses (30 codes)",
                    hashlib.sha256(raw).hexdigest(), codes, tuple(dict.fromkeys(names.values())))


def read_label_map(path: Path) -> LabelMap:
    """A `code,class` CSV file; every problem is one DataError naming the file and line."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise DataError(f"--label-map {path} is not a file; give a CSV file of code,class rows.")
        if size > MAX_MAP_BYTES:
            raise DataError(f"--label-map {path} is {size} bytes, more than the {MAX_MAP_BYTES} a label map needs.")
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"--label-map {path} does not exist; give a CSV file of code,class rows.") from exc
    except OSError as exc:
        raise DataError(f"--label-map {path} cannot be read ({exc.strerror}).") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"--label-map {path} is not UTF-8 text; save it as a UTF-8 CSV.") from exc
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip().lower() for c in rows[0]] != ["code", "class"]:
        raise DataError(f"--label-map {path} must start with the header line 'code,class'.")
    codes: dict[str, list[str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DataError(f"--label-map {path}, line {line}: expected 'code,class', got {','.join(row)!r}.")
        code, name = row[0].strip(), row[1].strip()
        if name not in codes.setdefault(code, []):
            codes[code].append(name)
    if not codes:
        raise DataError(f"--label-map {path} maps no code; add code,class rows under the header.")
    classes = tuple(dict.fromkeys(name for names in codes.values() for name in names))
    return LabelMap(str(path), f"code,class map {path.name} ({len(codes)} codes)", hashlib.sha256(raw).hexdigest(),
                    {code: tuple(names) for code, names in codes.items()}, classes)


def label_map_for(spec: str | Path | None) -> LabelMap | None:
    """`--label-map`: None (the source's own), `snomed-challenge2021`, or a CSV path."""
    if spec is None:
        return None
    if str(spec) == BUILTIN_SNOMED:
        return snomed_challenge2021()
    return read_label_map(Path(spec))


def header_codes(comments: Iterable[str]) -> tuple[str, ...] | None:
    """The codes of a WFDB header's `# Dx: a,b,c` comment (the Challenges' form), or None without one."""
    for comment in comments:
        key, sep, value = comment.partition(":")
        if sep and key.strip().lower() == "dx":
            return tuple(code.strip() for code in value.split(",") if code.strip())
    return None


@dataclass(frozen=True)
class MappedLabels:
    labels: np.ndarray
    """`(N, K)` uint8 multi-hot over the map's classes (all zero for an unlabelled record)."""
    labelled: np.ndarray
    """`(N,)` bool: at least one of the record's codes is in the map."""
    unmapped: dict[str, int]
    """Each code the map lacks -> on how many records, most frequent first."""


def apply_label_map(label_map: LabelMap, codes: Sequence[tuple[str, ...] | None]) -> MappedLabels:
    index = {name: k for k, name in enumerate(label_map.classes)}
    labels = np.zeros((len(codes), len(label_map.classes)), dtype=np.uint8)
    labelled = np.zeros(len(codes), dtype=bool)
    unmapped: Counter[str] = Counter()
    for i, record_codes in enumerate(codes):
        for code in record_codes or ():
            names = label_map.codes.get(code)
            if names is None:
                unmapped[code] += 1
                continue
            labelled[i] = True
            for name in names:
                labels[i, index[name]] = 1
    return MappedLabels(labels, labelled, dict(unmapped.most_common()))
