"""A WFDB record's header, read without wfdb: where the record is, its sampling rate, its signal files.

Light on purpose (no wfdb, pandas or scipy): `check_header` runs before torch is imported, so a header that
ecgaudit will refuse anyway (a rate of `-500`, a symlinked or missing signal file, a path in a file name) is refused
in well under a second instead of after the model has loaded. `ecgaudit.data.wfdb_source` reads the samples.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from ecgaudit.errors import DataError

_FS_FIELD = re.compile(r"^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:/.*)?$")


def record_base(path: str | Path) -> Path:
    """The record path without extension, for a path to a `.hea` file or to the record itself."""
    p = Path(path)
    base = p.with_suffix("") if p.suffix.lower() == ".hea" else p
    if not base.with_name(base.name + ".hea").is_file():
        raise DataError(
            f"WFDB record {p} not found: there is no header file {base.name}.hea; check the path."
        )
    return base


def list_records(path: str | Path) -> list[Path]:
    """Record paths (no extension) for a record or a folder of records (sorted, not recursive)."""
    p = Path(path)
    if p.is_dir():
        heads = sorted(h for h in p.glob("*.hea") if h.is_file())
        if not heads:
            raise DataError(f"folder {p} holds no WFDB header (.hea) files; point ecgaudit at WFDB records.")
        return [h.with_suffix("") for h in heads]
    return [record_base(p)]


def header_units(header_path: Path, n_sig: int) -> list[str | None]:
    """Each signal's units as written in the header (wfdb's parser drops a non-ASCII `µ`: `µV` -> `V`).

    Units follow the `/` in a signal line's third field (`gain(baseline)/units`); None where not given.
    """
    lines = header_lines(header_path)[1 : 1 + n_sig]
    units: list[str | None] = []
    for line in lines:
        fields = line.split()
        gain = fields[2] if len(fields) > 2 else ""
        units.append(gain.split("/", 1)[1] if "/" in gain else None)
    return units + [None] * (n_sig - len(units))


def header_lines(header_path: Path) -> list[str]:
    """The header's non-comment lines, stripped (the record line first)."""
    raw = header_path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = [ln.strip() for ln in text.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def header_fs(header_path: Path) -> float:
    """The sampling rate written in the header's record line (`name n_sig fs[/counter[(base)]] ...`), in Hz.

    wfdb reads a missing or unparsable rate (`-500`, `abc`) as its default of 250 Hz; that would silently
    change every duration, so here it is an error.
    """
    name = header_path.name
    lines = header_lines(header_path)
    fields = lines[0].split() if lines else []
    token = fields[2] if len(fields) > 2 else ""
    if not _FS_FIELD.match(token):
        got = f"{token!r}" if token else "no sampling rate"
        raise DataError(
            f"header {name} gives {got} where the sampling rate belongs (third field of its first line); "
            "write the rate in Hz, e.g. 'rec 12 500 5000'."
        )
    fs = float(token.split("/", 1)[0])
    if not (math.isfinite(fs) and fs > 0):
        raise DataError(f"header {name} gives sampling rate {token!r}; write a positive rate in Hz.")
    return fs


def check_regular(path: Path, what: str, name: str) -> None:
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise DataError(
            f"record {name}: {what} {path.name} is a symlink or not a regular file; ecgaudit reads only "
            "regular files inside the data folder, so copy the file itself there."
        )


def signal_path(name: str, base: Path, fname: str) -> Path:
    """Signal file `fname` of record `name` (header at `base`.hea): a plain file name, a regular file beside the
    header (not a symlink), present."""
    if not fname or fname in {".", ".."} or Path(fname).name != fname or "\\" in fname:
        raise DataError(
            f"record {name}: signal file {fname!r} is not a plain file name; a WFDB header may only name "
            "signal files in its own folder."
        )
    fpath = base.parent / fname
    check_regular(fpath, "signal file", name)
    if not fpath.is_file():
        raise DataError(f"record {name}: signal file {fname} is missing; put it next to {name}.hea.")
    return fpath


def check_header(base: Path) -> None:
    """What can be checked of record `base` from its header alone: a regular header file, a positive sampling rate,
    and each signal file (`signal_path`). The first field of each signal line names its file."""
    name = base.name
    head_path = base.with_name(name + ".hea")
    check_regular(head_path, "header", name)
    header_fs(head_path)
    lines = header_lines(head_path)
    fields = lines[0].split()
    n_sig = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
    for fname in dict.fromkeys(line.split()[0] for line in lines[1 : 1 + n_sig]):
        signal_path(name, base, fname)
