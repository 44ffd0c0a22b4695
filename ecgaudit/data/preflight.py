"""The checks on a data source that need no model, run before torch is imported.

A scan loads its data at the model's rate, so after the model; but most bad inputs can be told from the files
alone: an unknown spec, a folder of mixed formats, a WFDB header with no valid rate or a symlinked signal file.
`preflight_data` finds those first, so such a run ends in well under a second instead of after torch, onnxruntime
and the model have loaded (13-72 s on a loaded CI runner). It imports nothing heavier than numpy.
"""

from __future__ import annotations

from pathlib import Path

from ecgaudit.data.files import is_dicom_file, is_ptbxl_root, record_files
from ecgaudit.errors import DataError

SYNTHETIC_DEFAULTS = {"n": 300, "seed": 2026}


def preflight_data(spec: str) -> None:
    """Raise the DataError that loading `spec` would raise for anything decidable without the model."""
    if spec.startswith("builtin:"):
        builtin_options(spec)
        return
    path = Path(spec).expanduser()
    kind = source_kind(spec, path)
    if kind == "wfdb":
        from ecgaudit.data.wfdb_header import check_header, list_records

        for base in list_records(path):
            check_header(base)
    elif kind == "dicom":
        record_files(path, ".dcm", "DICOM")
    elif kind == "aecg":
        record_files(path, ".xml", "HL7 aECG")


def builtin_options(spec: str) -> dict[str, int]:
    """The options of a `builtin:` spec; only `builtin:synthetic[:n=...,seed=...]` exists."""
    name, _, rest = spec[len("builtin:") :].partition(":")
    if name != "synthetic":
        raise DataError(f"unknown built-in data set {name!r} in {spec!r}; the only one is builtin:synthetic.")
    return synthetic_options(spec, rest)


def synthetic_options(spec: str, rest: str) -> dict[str, int]:
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
    if options["seed"] < 0:
        raise DataError(f"data spec {spec!r}: seed must be a non-negative integer (e.g. seed=2026).")
    return options


_FOLDER_KINDS = {".hea": "wfdb", ".dcm": "dicom", ".xml": "aecg"}
_KIND_NAMES = {"wfdb": "WFDB header (.hea)", "dicom": "DICOM (.dcm)", "aecg": "HL7 aECG (.xml)"}


def source_kind(spec: str, path: Path) -> str:
    """`npz`, `ptbxl`, `dicom`, `aecg` or `wfdb` for a data path, or a DataError saying what is wrong."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if path.is_dir():
        if is_ptbxl_root(path):
            return "ptbxl"
        kinds = sorted({_FOLDER_KINDS[p.suffix.lower()] for p in path.iterdir() if p.suffix.lower() in _FOLDER_KINDS})
        if len(kinds) > 1:
            raise DataError(
                f"folder {path} holds {' and '.join(_KIND_NAMES[k] for k in kinds)} files; "
                "put each format in its own folder and give one of them."
            )
        if not kinds:
            raise DataError(
                f"folder {path} holds no WFDB header (.hea), DICOM (.dcm) or HL7 aECG (.xml) files; "
                "point ecgaudit at a folder of ECG records."
            )
        return kinds[0]
    if path.is_file() and suffix in (".dcm", ".xml"):
        return _FOLDER_KINDS[suffix]
    if path.with_name(path.name + ".hea").is_file() or (path.is_file() and suffix == ".hea"):
        return "wfdb"
    if path.is_file() and is_dicom_file(path):
        return "dicom"
    if path.exists():
        raise DataError(
            f"data source {spec!r} is not a .npz, DICOM (.dcm) or HL7 aECG (.xml) file, a WFDB header or "
            "record path, or a folder; give one of those (for WFDB, name the .hea file)."
        )
    raise DataError(
        f"data source {spec!r} does not exist; give a .npz file, a WFDB record or folder, a PTB-XL root, a DICOM "
        "or HL7 aECG file or folder, or builtin:synthetic."
    )
