"""Finding and reading one-file-per-record sources (DICOM, HL7 aECG) without leaving the data folder."""

from __future__ import annotations

from pathlib import Path

from ecgaudit.errors import DataError


def record_files(path: Path, suffix: str, what: str, n_records: int | None = None) -> list[Path]:
    """`path` itself, or the `*<suffix>` files of folder `path` (any case, sorted, not recursive; the first
    `n_records` when given).

    Symlinks are refused rather than followed, so nothing outside the data folder is read.
    """
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() == suffix)
        if not found:
            raise DataError(f"folder {path} holds no {what} ({suffix}) files; point ecgaudit at {what} files.")
    else:
        found = [path]
    if n_records is not None:
        found = found[: max(n_records, 0)]
    for p in found:
        if p.is_symlink() or not p.is_file():
            raise DataError(
                f"{what} file {p.name} is a symlink or not a regular file; ecgaudit reads only regular files "
                "inside the data folder, so copy the file itself there."
            )
    return found


def read_capped(path: Path, max_bytes: int, what: str) -> bytes:
    """The file's bytes, refusing a file larger than `max_bytes` before reading it."""
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(
            f"{what} file {path.name} is {size} bytes, more than ecgaudit's cap of {max_bytes}; "
            "split the recording into shorter files."
        )
    return path.read_bytes()


def is_dicom_file(path: Path) -> bool:
    """True for a file with DICOM's `DICM` marker after the 128-byte preamble."""
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


PTBXL_DATABASE_CSV = "ptbxl_database.csv"


def is_ptbxl_root(path: str | Path) -> bool:
    """True if `path` is a folder holding `ptbxl_database.csv`."""
    return (Path(path) / PTBXL_DATABASE_CSV).is_file()
