"""Ed25519 signatures over a DSSE envelope holding an in-toto Statement v1.

Sign exact bytes, verify bytes before parsing them: `verify_envelope` checks the signature over
PAE(payloadType, payload) first and only then decodes the statement. The statement's predicate is
report.json itself: `statement` takes the report's exact bytes, and `json_bytes(predicate)` gives them back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ecgaudit.errors import EcgauditError, ReportError, VerificationError
from ecgaudit.io import MAX_ENVELOPE_BYTES, atomic_write_bytes, json_bytes, loads_json

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://ecgaudit.invalid/report/v1"
KEY_ENV = "ECGAUDIT_SIGNING_KEY"


class SigningKeyError(EcgauditError):
    """A key file is missing, unreadable, of the wrong type or too widely readable."""


__all__ = ["VerificationError", "SigningKeyError", "VerifiedStatement", "fingerprint", "keygen", "load_private_key",
           "load_public_key", "pae", "sign_envelope", "signing_key_path", "statement", "verify_envelope"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    type_bytes = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the public key's SubjectPublicKeyInfo DER, hex."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def keygen(out_dir: Path) -> tuple[Path, Path]:
    """Write `ecgaudit-signing.pem` (private, mode 0600) and `ecgaudit-signing.pub.pem`."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_path, public_path = out_dir / "ecgaudit-signing.pem", out_dir / "ecgaudit-signing.pub.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise SigningKeyError(f"{path} already exists; ecgaudit will not overwrite a key.")
    try:
        atomic_write_bytes(private_path, private_pem, mode=0o600)
        atomic_write_bytes(public_path, public_pem, mode=0o644)
    except OSError as exc:
        private_path.unlink(missing_ok=True)  # never half a key pair
        raise SigningKeyError(f"the key pair cannot be written to {out_dir} ({exc.strerror}).") from exc
    return private_path, public_path


def load_private_key(path: Path, *, allow_insecure: bool = False) -> Ed25519PrivateKey:
    """Read an Ed25519 private key; like ssh, refuse a file that group or others can read."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"private key {path} cannot be read ({exc.strerror}).") from exc
    if b"-----BEGIN PUBLIC KEY-----" in data:
        raise SigningKeyError(f"{path} is a public key; signing needs the private key (ecgaudit-signing.pem from "
                              "`ecgaudit keygen`), and the public one is for `ecgaudit verify --key`.")
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and not allow_insecure:
        raise SigningKeyError(
            f"private key {path} is readable by group or others (mode {stat.S_IMODE(mode):o}); "
            f"run 'chmod 600 {path}' or pass --allow-insecure-key."
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key.") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key.")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise SigningKeyError(f"public key {path} cannot be read ({exc.strerror}).") from exc
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not a PEM public key.") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key.")
    return key


def signing_key_path(explicit: Path | None) -> Path | None:
    """`--key`, else the file named by $ECGAUDIT_SIGNING_KEY, else None."""
    if explicit is not None:
        return explicit
    env = os.environ.get(KEY_ENV)
    return Path(env) if env else None


def statement(subjects: dict[str, str], report_bytes: bytes) -> bytes:
    """An in-toto Statement v1 (JSON bytes): subjects are name -> sha256, the predicate is report.json's content.

    `report_bytes` must be the canonical bytes `json_bytes` wrote, so a verifier can rebuild them from the
    predicate and compare their digest with the report.json subject.
    """
    report = json.loads(report_bytes)
    if json_bytes(report) != report_bytes:
        raise ValueError("statement() needs the report's canonical bytes, as json_bytes() writes them")
    document = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in subjects.items()],
        "predicateType": PREDICATE_TYPE,
        "predicate": report,
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def sign_envelope(payload: bytes, key: Ed25519PrivateKey) -> bytes:
    """A DSSE envelope (JSON bytes) with one Ed25519 signature over PAE(PAYLOAD_TYPE, payload)."""
    return _envelope_bytes(payload, fingerprint(key.public_key()), key.sign(pae(PAYLOAD_TYPE, payload)))


def _envelope_bytes(payload: bytes, keyid: str, signature: bytes) -> bytes:
    """The one byte form ecgaudit writes an envelope in; `verify_envelope` refuses any other."""
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode()}],
    }
    return (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class VerifiedStatement:
    """What a valid signature vouches for. `fingerprint` is that of the key that verified, not the keyid."""

    fingerprint: str
    subjects: dict[str, str]
    report: dict[str, Any]


def verify_envelope(envelope_bytes: bytes, public_key: Ed25519PublicKey, *, what: str = "the envelope"
                    ) -> VerifiedStatement:
    """Check the envelope's one signature, then parse the statement it signs.

    Raises `ReportError` when the bytes are not a DSSE envelope at all, `VerificationError` when it does not hold.
    """
    # A file that is not a DSSE envelope at all is the wrong input (ReportError, exit 2), not failed evidence.
    envelope = loads_json(envelope_bytes, what, ReportError, max_bytes=MAX_ENVELOPE_BYTES)
    try:
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = envelope["signatures"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"{what} is not a DSSE envelope (JSON with payloadType, payload, signatures); pass the "
                          "report.dsse.json a signed scan wrote.") from exc
    if payload_type != PAYLOAD_TYPE:
        raise VerificationError(f"the envelope's payloadType is {payload_type!r}, not {PAYLOAD_TYPE!r}.")
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise VerificationError("the envelope must carry exactly one signature.")
    try:
        signature = base64.b64decode(signatures[0]["sig"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError("the envelope's signature is not valid base64.") from exc
    try:
        public_key.verify(signature, pae(payload_type, payload))
    except InvalidSignature as exc:
        raise VerificationError("the signature does not verify with this public key: the envelope was altered "
                                "or signed with another key.") from exc
    # The keyid and the JSON around the signed bytes are outside the signature: pin them, so that no byte of
    # the envelope can change unnoticed (a keyid naming someone else, base64 with altered padding bits).
    key_fingerprint = fingerprint(public_key)
    if signatures[0].get("keyid") != key_fingerprint:
        raise VerificationError(f"the envelope's keyid is not the fingerprint of the key that verified "
                                f"(SHA256:{key_fingerprint}): the envelope was altered.")
    if envelope_bytes != _envelope_bytes(payload, key_fingerprint, signature):
        raise VerificationError("the envelope is not byte for byte the form ecgaudit writes (its JSON was "
                                "reformatted or something outside the signature was changed).")
    # From here on the bytes are the signer's; they are still parsed strictly and with bounds.
    document = loads_json(payload, "the signed payload", VerificationError, max_bytes=MAX_ENVELOPE_BYTES)
    try:
        subjects = [(s["name"], s["digest"]["sha256"]) for s in document["subject"]]
        report = document["predicate"]
    except (KeyError, TypeError) as exc:
        raise VerificationError("the signed payload is not an in-toto Statement with subjects and a "
                                "predicate.") from exc
    if document.get("_type") != STATEMENT_TYPE or document.get("predicateType") != PREDICATE_TYPE:
        raise VerificationError("the signed payload is not an ecgaudit in-toto Statement v1.")
    if not isinstance(report, dict):
        raise VerificationError("the signed statement's predicate is not a report (a JSON object).")
    for name, digest in subjects:
        if not _safe_subject(name) or not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise VerificationError(f"the signed statement has a malformed subject {str(name)[:80]!r}: a subject is "
                                    "a relative path inside the report folder with a hex SHA-256.")
    names = [name for name, _ in subjects]
    if len(set(names)) != len(names):
        raise VerificationError("the signed statement names a subject twice.")
    return VerifiedStatement(fingerprint=key_fingerprint, subjects=dict(subjects), report=report)


def _safe_subject(name: object) -> bool:
    """A relative POSIX path without `..`, `.`, empty parts, backslashes or control characters."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        return False
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))
