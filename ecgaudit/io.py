"""Files in and out: atomic writes, bounded reads of JSON and TOML inputs, and the report's exact bytes.

Every JSON or TOML input (card, profile, baseline, report, envelope) is bounded in size and nesting depth
*before* it is parsed, so a hostile file is one clear error instead of a `RecursionError` or a memory blow-up.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

MAX_DEPTH = 64
"""Deepest nesting of arrays/objects (tables) accepted in any input; an ecgaudit report needs about 10."""
MAX_PROFILE_BYTES = 1 << 20
MAX_REPORT_BYTES = 64 << 20
"""A report with a 20,000-record manifest is a few MB; an envelope is its base64 (4/3) plus the subjects."""
MAX_ENVELOPE_BYTES = 96 << 20

# Each pattern always matches from an opening quote (an unterminated string runs to the end), with possessive
# repeats, so stripping is linear even on hostile text such as a megabyte of `"\\"`.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_TOML_STRING_OR_COMMENT = re.compile(
    rb"'''.*?(?:'''|\Z)"
    rb'|"""(?:[^\\]|\\.)*?(?:"""|\\?\Z)'
    rb"|'[^'\n]*+(?:'|(?=\n)|\Z)"
    rb'|"(?:[^"\\\n]|\\.)*+(?:"|(?=\n)|\\?\Z)'
    rb"|#[^\n]*",
    re.DOTALL,
)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> str:
    """Write `data` to a temp file beside `path`, fsync, then rename over it. Returns the SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def current_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_bounded(path: Path, what: str, error: type[Exception], *, max_bytes: int) -> bytes:
    """A regular file's bytes, refusing more than `max_bytes` (read no further than that, whatever it claims)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise error(f"{what} {path} does not exist.") from exc
    except IsADirectoryError as exc:
        raise error(f"{what} {path} is a folder, not a file.") from exc
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror}).") from exc
    if len(data) > max_bytes:
        raise error(f"{what} {path} is larger than {_size(max_bytes)}, the limit for this input; "
                    "pass the right file.")
    return data


def _size(n_bytes: int) -> str:
    return f"{n_bytes >> 20} MiB" if n_bytes >= 1 << 20 else f"{n_bytes} bytes"


def nesting_depth(text: bytes, *, syntax: str = "json") -> int:
    """The deepest run of open `[`/`{` outside strings (and, for TOML, comments), without parsing."""
    import numpy as np  # imported where used: the CLI's instant commands never load numpy

    pattern = _JSON_STRING if syntax == "json" else _TOML_STRING_OR_COMMENT
    stripped = np.frombuffer(pattern.sub(b"", text), dtype=np.uint8)
    # UTF-8 multi-byte sequences never contain ASCII bytes, so counting bytes is counting brackets.
    steps = np.isin(stripped, (ord("["), ord("{"))).astype(np.int64) - np.isin(stripped, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def check_input(text: bytes, what: str, error: type[Exception], *, syntax: str = "json",
                max_bytes: int = MAX_REPORT_BYTES) -> None:
    """Refuse `text` if it is larger than `max_bytes` or nested deeper than `MAX_DEPTH`, before any parser sees it."""
    if len(text) > max_bytes:
        raise error(f"{what} is larger than {_size(max_bytes)}, the limit for this input; pass the right file.")
    depth = nesting_depth(text, syntax=syntax)
    if depth > MAX_DEPTH:
        raise error(f"{what} nests arrays or objects {depth} deep; ecgaudit accepts at most {MAX_DEPTH} "
                    "(its own files need about 10), so this is not a file it wrote or reads.")


def bounded_toml(text: bytes, what: str, error: type[Exception], *, max_bytes: int = MAX_PROFILE_BYTES
                 ) -> dict[str, Any]:
    """`tomllib.loads` of UTF-8 `text` after `check_input`; decoding and TOML errors propagate as themselves."""
    import tomllib

    check_input(text, what, error, syntax="toml", max_bytes=max_bytes)
    try:
        return tomllib.loads(text.decode("utf-8"))
    except RecursionError as exc:  # only if the pre-scan was fooled; tomllib recurses per level
        raise error(f"{what} is nested too deeply to read.") from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def loads_json(text: bytes, what: str, error: type[Exception], *, max_bytes: int = MAX_REPORT_BYTES) -> Any:
    """Strict JSON (no NaN/Infinity) of bounded size and depth; every failure is `error` naming `what`."""
    check_input(text, what, error, max_bytes=max_bytes)
    try:
        return json.loads(text.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 text.") from exc
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise error(f"{what} is not valid JSON ({exc}).") from exc
    except RecursionError as exc:  # only if the pre-scan was fooled
        raise error(f"{what} is nested too deeply to read.") from exc


def read_json_object(path: Path, what: str, error: type[Exception], *, max_bytes: int = MAX_REPORT_BYTES
                     ) -> dict[str, Any]:
    """Parse a JSON file that must hold an object; every failure is `error` naming `what` and the file."""
    data = loads_json(read_bounded(path, what, error, max_bytes=max_bytes), f"{what} {path}", error,
                      max_bytes=max_bytes)
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a JSON object.")
    return data


def npy_bytes(array: np.ndarray) -> bytes:
    """The exact bytes `np.save` writes for `array` as float32 (deterministic header)."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed `.npz` of plain (non-object) arrays."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def json_bytes(document: Any) -> bytes:
    """The canonical bytes of a report: keys in the order they were written, 2-space indent, UTF-8, final newline.

    NaN and ±inf become null (JSON has neither). The form is a fixed point: `json_bytes(json.loads(b)) == b` for
    any `b` it returns, which is how `verify` checks that a signed statement's predicate *is* report.json. Key
    order is kept, not sorted, so what the scan wrote in order (classes, parameters) reads back in that order.
    """
    return (json.dumps(finite(document), indent=2, allow_nan=False, default=_default) + "\n").encode()


def finite(value: Any) -> Any:
    """Replace NaN and ±inf floats with None (JSON has no such numbers), recursively."""
    # No numpy value can exist before numpy is imported, so the check never imports it.
    np = sys.modules.get("numpy")
    if isinstance(value, float) or (np is not None and isinstance(value, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if np is not None and isinstance(value, np.ndarray):
        return finite(value.tolist())
    return value


def _default(value: Any) -> Any:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
