"""`ecgaudit verify`: the signature, then the statement, then every subject file against its signed digest.

Order matters: nothing is parsed before the signature over its bytes holds, and the subject files are only
hashed, never parsed. Every subject must be present and match unless the reviewer names it in `skip`; a
missing or changed file is a failure naming that file, never "not checked".
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ecgaudit.errors import ReportError, VerificationError
from ecgaudit.io import MAX_ENVELOPE_BYTES, file_sha256, json_bytes, read_bounded
from ecgaudit.report.schema import schema_errors
from ecgaudit.report.signing import load_public_key, verify_envelope

ENVELOPE_NAME = "report.dsse.json"
REPORT_NAME = "report.json"


@dataclass(frozen=True)
class Verification:
    """The outcome: what held, what failed (one sentence per file), what the reviewer chose not to check."""

    fingerprint: str
    report: dict[str, Any]
    held: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unsigned_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_bundle(envelope: Path, public_key: Path | Ed25519PublicKey, *, model: Path | None = None,
                  report_dir: Path | None = None, skip: Iterable[str] = ()) -> Verification:
    """Check `envelope` and every subject it signs; raise `VerificationError` when the statement itself fails.

    Subjects are looked up in `report_dir` (default: the envelope's folder), the model subject at `model`.
    Names in `skip` must be subjects; they are reported as skipped, not as held.
    """
    key = public_key if isinstance(public_key, Ed25519PublicKey) else load_public_key(public_key)
    verified = verify_envelope(read_bounded(envelope, "envelope", ReportError, max_bytes=MAX_ENVELOPE_BYTES), key,
                               what=f"envelope {envelope}")
    report, subjects = verified.report, verified.subjects
    skipped = list(dict.fromkeys(skip))
    unknown = [name for name in skipped if name not in subjects]
    if unknown:
        raise ReportError(f"--skip names '{unknown[0]}', which is not a subject of the signed statement; its "
                          f"subjects are {', '.join(subjects)}.")
    errors = schema_errors(report)
    if errors:
        raise VerificationError(f"the signed report does not follow the report schema ({errors[0]}).")
    _check_statement(report, subjects, verified.fingerprint)
    held = [
        f"signature: valid Ed25519 signature by the key with fingerprint SHA256:{verified.fingerprint}",
        f"statement: its predicate is {REPORT_NAME} byte for byte (sha256 {subjects[REPORT_NAME]}) and follows "
        "the ecgaudit report schema",
    ]
    failures = report_claims(report, subjects)
    report_dir = report_dir or envelope.parent
    model_name = model_subject(report)
    for name, digest in subjects.items():
        if name in skipped:
            continue
        if name == model_name:
            if model is None:
                failures.append(f"{name}: the audited model was not checked; pass --model PATH (the model file) "
                                f"or --skip {name}.")
                continue
            path = model
        else:
            path = report_dir / name
        problem = _file_problem(path, name, digest)
        if problem:
            failures.append(problem)
        else:
            held.append(f"{name}: sha256 matches ({digest})")
    return Verification(verified.fingerprint, report, held, failures, skipped,
                        _unsigned_files(report_dir, subjects, model_name))


def model_subject(report: dict[str, Any]) -> str:
    """The statement's subject name for the audited model: its file name."""
    return Path(str(report["model"]["path"])).name


def _check_statement(report: dict[str, Any], subjects: dict[str, str], key_fingerprint: str) -> None:
    """The statement must bind report.json (as its predicate) and the model, and name the key that signed it."""
    if REPORT_NAME not in subjects:
        raise VerificationError(f"the signed statement has no {REPORT_NAME} subject, so it binds no report file.")
    if hashlib.sha256(json_bytes(report)).hexdigest() != subjects[REPORT_NAME]:
        raise VerificationError(f"the signed predicate is not the {REPORT_NAME} the statement names (their digests "
                                "differ): the statement was not written by ecgaudit from that report.")
    model_name = model_subject(report)
    if subjects.get(model_name) != report["model"]["sha256"]:
        raise VerificationError(f"the signed statement does not bind the audited model {model_name} with the "
                                "report's model sha256.")
    claimed = (report.get("signing") or {}).get("key_fingerprint")
    if claimed != key_fingerprint:
        raise VerificationError(f"the report says it was signed by the key with fingerprint {claimed}, but the "
                                f"signature verifies with SHA256:{key_fingerprint}.")


def report_claims(report: dict[str, Any], subjects: dict[str, str]) -> list[str]:
    """Every file the report lists with a digest must be a subject with that same digest."""
    claims: dict[str, Any] = {}
    for artifact in report.get("artifacts") or []:
        claims[str(artifact.get("path"))] = artifact.get("sha256")
    samples = report.get("samples") or {}
    if samples:
        claims[str(samples.get("path"))] = samples.get("sha256")
    for attack in report.get("attacks") or []:
        perturbation = attack.get("perturbation") or {}
        if "path" in perturbation:
            claims[str(perturbation["path"])] = perturbation.get("sha256")
    return [f"{path}: the report lists it with sha256 {digest}, but the signed statement "
            f"{'does not name it' if path not in subjects else 'has ' + subjects[path]}."
            for path, digest in claims.items() if subjects.get(path) != digest]


def _file_problem(path: Path, name: str, digest: str) -> str | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return f"{name}: missing ({path} does not exist); the evidence is incomplete without it."
    except OSError as exc:
        return f"{name}: {path} cannot be read ({exc.strerror})."
    if not stat.S_ISREG(info.st_mode):
        return f"{name}: {path} is not a regular file."
    try:
        actual = file_sha256(path)
    except OSError as exc:
        return f"{name}: {path} cannot be read ({exc.strerror})."
    if actual != digest:
        return (f"{name}: {path} does not match its signed digest (sha256 {actual}, signed {digest}): the file was "
                "changed after signing or is not the file that was audited.")
    return None


def _unsigned_files(report_dir: Path, subjects: dict[str, str], model_name: str) -> list[str]:
    """Files beside the subjects that the signature does not cover (shown, so nobody mistakes them for evidence)."""
    folders = {report_dir} | {(report_dir / name).parent for name in subjects if name != model_name}
    covered = {report_dir / name for name in subjects} | {report_dir / ENVELOPE_NAME}
    found = []
    for folder in sorted(folders):
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        found += [str(p.relative_to(report_dir)) for p in entries if p.is_file() and p not in covered]
    return found
