"""The caller's side of rendering: load the files a report names from its folder, for `Artifacts`.

Only files inside the folder are read (a report cannot point a renderer at `/etc/passwd`); each is hashed as
read, so the PDF can say whether it matches the digest the report records. Nothing here renders.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from ecgaudit.render.interface import Artifacts


def named_files(report: Mapping[str, Any]) -> list[str]:
    """Relative paths of the perturbations a report names (the gated one and each threat model's)."""
    paths: list[str] = []
    for attack in report.get("attacks") or []:
        if not isinstance(attack, dict):
            continue
        entries = [attack, *[t for t in attack.get("threat_models") or [] if isinstance(t, dict)]]
        for entry in entries:
            path = (entry.get("perturbation") or {}).get("path") if isinstance(entry.get("perturbation"), dict) \
                else None
            if path and str(path) not in paths:
                paths.append(str(path))
    return paths


def load_artifacts(report: Mapping[str, Any], folder: Path, *, report_sha256: str | None = None,
                   key_fingerprint: str | None = None) -> Artifacts:
    """The samples and perturbations `report` names, read from `folder` and hashed."""
    import numpy as np

    folder = Path(folder)
    digests: dict[str, str | None] = {}
    problems: dict[str, str] = {}
    arrays: dict[str, np.ndarray] = {}
    for relative in named_files(report):
        data = _read_inside(folder, relative, digests, problems)
        if data is not None:
            try:
                arrays[relative] = np.load(io.BytesIO(data), allow_pickle=False)
            except (OSError, ValueError) as exc:
                problems[relative] = f"unreadable ({exc})"
    samples_entry = report.get("samples")
    samples_name = str(samples_entry.get("path") or "samples.npz") if isinstance(samples_entry, dict) \
        else "samples.npz"
    samples: dict[str, np.ndarray] | None = None
    samples_problem: str | None = None
    data = _read_inside(folder, samples_name, digests, problems)
    if data is None:
        samples_problem = f"{samples_name} was not found next to report.json"
    else:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                samples = {key: npz[key] for key in npz.files}
        except (OSError, ValueError) as exc:
            samples_problem = f"{samples_name} could not be read ({exc})"
    return Artifacts(report_sha256=report_sha256, key_fingerprint=key_fingerprint, samples=samples,
                     samples_problem=samples_problem, arrays=arrays, digests=digests, problems=problems)


def _read_inside(folder: Path, relative: str, digests: dict[str, str | None], problems: dict[str, str]
                 ) -> bytes | None:
    """The bytes of `folder/relative` when that is a regular file inside `folder`; records its digest."""
    root = folder.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        digests[relative] = None
        problems[relative] = "file missing" if path.is_relative_to(root) else "outside the report folder"
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        digests[relative] = None
        problems[relative] = f"unreadable ({exc.strerror})"
        return None
    digests[relative] = hashlib.sha256(data).hexdigest()
    return data
