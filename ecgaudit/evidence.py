"""The evidence bundle: a scan's files written, hashed, signed and swapped into place as one.

`write_bundle` builds every file in a fresh folder beside `--out` (same filesystem): the perturbations,
`samples.npz`, the exported WFDB records, `report.json` (its canonical bytes), the PDF rendered from exactly
those bytes, JUnit XML, and the signed statement over all of them. It checks the folder as `verify` would,
then swaps it in with one rename (an atomic exchange where the kernel offers it). Until that rename the
previous bundle is untouched; after it, the new one is complete. A kill at any moment leaves one or the other.
`write_folder` does the same for `ecgaudit attack`'s folder (attack.json and its perturbations).

One scan at a time per output folder: `output_lock` holds an `flock` on `.<name>.lock` beside the folder,
and removes that file when it is done.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ecgaudit.errors import OutputError, ReportError
from ecgaudit.folders import check_creatable, output_lock, replace_folder, resolve_path
from ecgaudit.io import atomic_write_bytes, json_bytes, loads_json, npy_bytes, npz_bytes
from ecgaudit.report.model import Report
from ecgaudit.report.schema import validate_report
from ecgaudit.report.signing import fingerprint, sign_envelope, statement
from ecgaudit.report.verification import ENVELOPE_NAME, REPORT_NAME, model_subject, report_claims, verify_bundle

if TYPE_CHECKING:
    from ecgaudit.scan import ScanResult

PDF_NAME = "report.pdf"
SAMPLES_NAME = "samples.npz"
JUNIT_NAME = "junit.xml"
BUNDLE_ENTRIES = frozenset({REPORT_NAME, PDF_NAME, ENVELOPE_NAME, SAMPLES_NAME, JUNIT_NAME, "perturbations", "wfdb"})
"""What a bundle folder may hold at its top level; a folder holding anything else is not replaced."""
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Bundle:
    """A written bundle. `report` is what report.json holds (parsed); `subjects` is what the statement signs."""

    out_dir: Path
    report: Report
    report_sha256: str
    subjects: dict[str, str]
    """Subject name -> SHA-256: the model's file name, then paths relative to `out_dir` (POSIX separators)."""
    key_fingerprint: str | None
    junit_path: Path | None

    @property
    def report_path(self) -> Path:
        return self.out_dir / REPORT_NAME

    @property
    def envelope_path(self) -> Path | None:
        return self.out_dir / ENVELOPE_NAME if self.key_fingerprint else None


ATTACK_JSON = "attack.json"
_ATTACK_ENTRY = re.compile(r"attack\.json|augmentation\.(npz|json)|perturbation(\.[A-Za-z0-9_-]+)?\.npy")


def is_bundle_entry(name: str) -> bool:
    return name in BUNDLE_ENTRIES


def is_attack_entry(name: str) -> bool:
    """What an `ecgaudit attack` folder may hold at its top level (see `attack_file`)."""
    return _ATTACK_ENTRY.fullmatch(name) is not None


def attack_file(attack_id: str, key: str) -> str:
    """Where a one-attack run writes its perturbation `key` (`ScanResult.perturbations`): the gated worst case is
    `perturbation.npy`, each other threat model's `perturbation.<threat-model>.npy`."""
    return "perturbation.npy" if key == attack_id else f"perturbation.{key.removeprefix(attack_id + '.')}.npy"


def check_output(out_dir: Path, junit: bool | Path = False, *, is_entry: Callable[[str], bool] = is_bundle_entry,
                 kind: str = "report") -> None:
    """Refuse, before any work, an output folder that cannot be written or replaced, or a JUnit path that is a folder.

    Raises `OutputError`. It cannot prove the later renames will succeed (another process may change the
    folder), but it catches every mistake a user makes: a file for a folder, a read-only place, a folder of
    other files that the swap would throw away. `is_entry` says which top-level names an earlier output of
    this `kind` ("report", "attack run") may hold.
    """
    out = resolve_path(out_dir, "--out")
    if out.parent == out:
        raise OutputError(f"--out {out_dir} is the filesystem root; pass a folder for the report.")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out_dir} is an existing file, not a folder; pass a folder path (it is created "
                          "if missing).")
    check_creatable(out.parent, f"--out {out_dir}")
    junit_inside = _junit_inside(out, junit)
    if out.is_dir():
        if not os.access(out, os.W_OK | os.X_OK):
            raise OutputError(f"--out {out_dir} is a read-only folder; pass a folder you can write to.")
        junit_entry = junit_inside.split("/")[0] if junit_inside else None
        for entry in sorted(out.iterdir()):
            if not (is_entry(entry.name) or entry.name == junit_entry
                    or (entry.name.startswith(".") and entry.name.endswith(".partial"))):
                raise OutputError(
                    f"--out {out_dir} holds {entry.name}, which is not part of an ecgaudit {kind}; the new {kind} "
                    "replaces the whole folder, so pass a new or empty folder (or move that file away)."
                )
    if isinstance(junit, Path):
        target = resolve_path(junit, "--junit-xml")
        if target.is_dir():
            raise OutputError(f"--junit-xml {junit} is a folder; pass a file path such as {junit}/junit.xml.")
        if junit_inside is None:
            check_creatable(target.parent, f"--junit-xml {junit}")


def _junit_inside(out: Path, junit: bool | Path) -> str | None:
    """The JUnit file's path inside the bundle (a subject), or None when there is none or it lies outside."""
    if junit is True:
        return JUNIT_NAME
    if not isinstance(junit, Path):
        return None
    target = resolve_path(junit, "--junit-xml")
    if not target.is_relative_to(out):
        return None
    relative = target.relative_to(out).as_posix()
    if relative == "." or relative.split("/")[0] in BUNDLE_ENTRIES - {JUNIT_NAME}:
        raise OutputError(f"--junit-xml {junit} would overwrite part of the report in {out}; pass another name.")
    return relative


@contextlib.contextmanager
def reserve_output(out_dir: Path, junit: bool | Path = False, *, is_entry: Callable[[str], bool] = is_bundle_entry,
                   kind: str = "report") -> Iterator[None]:
    """What a command does before any model work: `check_output`, then hold `output_lock` while the body runs.

    A JUnit file outside the bundle is removed now: CI must not read an earlier run's result after this one
    failed. The bundle itself stays as it is until `write_bundle` swaps in the new one.
    """
    check_output(out_dir, junit, is_entry=is_entry, kind=kind)
    with output_lock(out_dir):
        if isinstance(junit, Path) and _junit_inside(out_dir.resolve(), junit) is None:
            junit.unlink(missing_ok=True)
        yield


def write_bundle(result: ScanResult, out_dir: Path, *, key: Ed25519PrivateKey | None = None,
                 junit: bool | Path = False, export_wfdb: bool = False) -> Bundle:
    """Write the scan's evidence into `out_dir`, replacing any earlier bundle there in one step.

    `junit`: True writes `junit.xml` into the bundle; a path inside `out_dir` puts it there (a subject
    either way); a path outside is written after the swap, and is not signed. `export_wfdb` adds the kept
    records, attacked, as WFDB files under `wfdb/`. Raises `OutputError` when the folder cannot be used.
    """
    check_output(out_dir, junit)
    out = out_dir.resolve()
    junit_inside = _junit_inside(out, junit)
    junit_outside = junit.resolve() if isinstance(junit, Path) and junit_inside is None else None

    def build(staging: Path) -> Bundle:
        bundle = _build(result, staging, key, junit_inside, export_wfdb)
        _check_built(staging, bundle, key)
        if junit_outside is not None:
            junit_outside.unlink(missing_ok=True)  # a stale JUnit file must not outlive a failed swap
        return bundle

    with output_lock(out):
        bundle = replace_folder(out, build)
        if junit_outside is not None:
            from ecgaudit.render.junit import render_junit

            atomic_write_bytes(junit_outside, render_junit(bundle.report))
    junit_path = out_dir / junit_inside if junit_inside else (junit if isinstance(junit, Path) else None)
    return Bundle(out_dir, bundle.report, bundle.report_sha256, bundle.subjects, bundle.key_fingerprint, junit_path)


def write_folder(out_dir: Path, files: Mapping[str, bytes]) -> None:
    """Replace `out_dir` whole by a folder holding exactly `files` (relative path -> bytes), as `write_bundle` does:
    nothing of an earlier run survives beside the new files, and a failure leaves the earlier folder untouched."""

    def build(staging: Path) -> None:
        for name, data in files.items():
            _write(staging / name, data)

    with output_lock(out_dir):
        replace_folder(out_dir.resolve(), build)


def render_report_pdf(report_bytes: bytes, folder: Path, *, what: str = "report") -> bytes:
    """The PDF of report.json's exact bytes, with its samples and perturbations read from `folder`.

    The scan and `ecgaudit render` both call this with the same bytes, so they give the same PDF.
    """
    from ecgaudit.render.files import load_artifacts
    from ecgaudit.render.interface import Format, render

    report = loads_json(report_bytes, what, ReportError)
    validate_report(report, what=what)
    signing = report.get("signing") or {}
    artifacts = load_artifacts(report, folder, report_sha256=hashlib.sha256(report_bytes).hexdigest(),
                               key_fingerprint=signing.get("key_fingerprint"))
    return render(report, Format.PDF, artifacts)


def _build(result: ScanResult, staging: Path, key: Ed25519PrivateKey | None, junit_inside: str | None,
           export_wfdb: bool) -> Bundle:
    report = dict(result.report)  # a shallow copy: the caller's report is not changed
    artifacts = []
    for attack_id, v in result.perturbations.items():
        if not _SAFE_ID.fullmatch(attack_id):
            raise OutputError(f"attack id {attack_id!r} cannot name a file; use letters, digits, '_', '-' and '.'.")
        relative = f"perturbations/{attack_id}.npy"
        artifacts.append({"path": relative, "sha256": _write(staging / relative, npy_bytes(v))})
    samples_sha = _write(staging / SAMPLES_NAME, npz_bytes(result.samples))
    report["samples"] = {"path": SAMPLES_NAME, "sha256": samples_sha,
                         "record_ids": [str(r) for r in result.samples["record_ids"]]}
    artifacts.append({"path": SAMPLES_NAME, "sha256": samples_sha})
    if export_wfdb:
        from ecgaudit.export import export_wfdb as write_wfdb

        written = write_wfdb(result.samples, staging / "wfdb", [a["id"] for a in report["attacks"]])
        artifacts += [{"path": path, "sha256": digest} for path, digest in written]
    report["artifacts"] = artifacts
    key_fingerprint = fingerprint(key.public_key()) if key is not None else None
    report["signing"] = {"signed": key is not None, "key_fingerprint": key_fingerprint}
    report_bytes = json_bytes(report)
    canonical = loads_json(report_bytes, "the report this scan produced", ReportError)
    validate_report(canonical, what="report this scan produced")
    report_sha = _write(staging / REPORT_NAME, report_bytes)
    subjects = {model_subject(canonical): canonical["model"]["sha256"], REPORT_NAME: report_sha,
                PDF_NAME: _write(staging / PDF_NAME, render_report_pdf(report_bytes, staging))}
    for artifact in artifacts:
        subjects[artifact["path"]] = artifact["sha256"]
    if junit_inside is not None:
        from ecgaudit.render.junit import render_junit

        subjects[junit_inside] = _write(staging / junit_inside, render_junit(canonical))
    if key is not None:  # last: a folder with an envelope holds every file the envelope names
        _write(staging / ENVELOPE_NAME, sign_envelope(statement(subjects, report_bytes), key))
    return Bundle(staging, canonical, report_sha, subjects, key_fingerprint, None)


def _check_built(staging: Path, bundle: Bundle, key: Ed25519PrivateKey | None) -> None:
    """Read the staged folder back as a reviewer would; a bundle that would not verify is never swapped in."""
    model_name = model_subject(bundle.report)
    if key is not None:
        verification = verify_bundle(staging / ENVELOPE_NAME, key.public_key(), report_dir=staging,
                                     skip=[model_name])  # hashed when the scan loaded it
        problems = verification.failures
    else:
        problems = report_claims(bundle.report, bundle.subjects)
        problems += [f"{name}: written with sha256 {digest} but reads back differently"
                     for name, digest in bundle.subjects.items()
                     if name != model_name and hashlib.sha256((staging / name).read_bytes()).hexdigest() != digest]
    if problems:
        raise OutputError(f"the report folder written in {staging.parent} does not check out ({problems[0]}); "
                          "the previous report was left in place.")


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return hashlib.sha256(data).hexdigest()
