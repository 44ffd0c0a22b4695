"""Ed25519 signatures over a DSSE envelope holding an in-toto Statement v1.

Sign exact bytes, verify bytes before parsing them: `verify_envelope` checks the signature over
PAE(payloadType, payload) first and only then decodes the statement.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ecgaudit.errors import EcgauditError
from ecgaudit.io import atomic_write_bytes

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://ecgaudit.invalid/report/v1"
KEY_ENV = "ECGAUDIT_SIGNING_KEY"


class SigningKeyError(EcgauditError):
    """A key file is missing, unreadable, of the wrong type or too widely readable."""


class VerificationError(Exception):
    """Something in an envelope does not hold; the message names it. Not a usage error: exit 1."""


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
    atomic_write_bytes(private_path, private_pem, mode=0o600)
    atomic_write_bytes(public_path, public_pem, mode=0o644)
    return private_path, public_path


def load_private_key(path: Path, *, allow_insecure: bool = False) -> Ed25519PrivateKey:
    """Read an Ed25519 private key; like ssh, refuse a file that group or others can read."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"private key {path} cannot be read ({exc.strerror}).") from exc
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


def statement(subjects: dict[str, str], report: dict[str, Any]) -> bytes:
    """An in-toto Statement v1 (JSON bytes): subjects are name -> sha256, the predicate is the report."""
    document = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in subjects.items()],
        "predicateType": PREDICATE_TYPE,
        "predicate": report,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def sign_envelope(payload: bytes, key: Ed25519PrivateKey) -> bytes:
    """A DSSE envelope (JSON bytes) with one Ed25519 signature over PAE(PAYLOAD_TYPE, payload)."""
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": fingerprint(key.public_key()), "sig": base64.b64encode(signature).decode()}],
    }
    return (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class VerifiedStatement:
    keyid: str
    subjects: dict[str, str]
    report: dict[str, Any]


def verify_envelope(envelope_bytes: bytes, public_key: Ed25519PublicKey) -> VerifiedStatement:
    """Check the envelope's one signature, then parse the statement it signs. Raises `VerificationError`."""
    try:
        envelope = json.loads(envelope_bytes)
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = envelope["signatures"]
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError("the envelope is not a DSSE envelope (JSON with payloadType, payload, "
                                "signatures).") from exc
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
    try:
        document = json.loads(payload)
        subjects = {s["name"]: s["digest"]["sha256"] for s in document["subject"]}
        report = document["predicate"]
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError("the signed payload is not an in-toto Statement with subjects and a "
                                "predicate.") from exc
    if document.get("_type") != STATEMENT_TYPE or document.get("predicateType") != PREDICATE_TYPE:
        raise VerificationError("the signed payload is not an ecgaudit in-toto Statement v1.")
    return VerifiedStatement(keyid=str(signatures[0].get("keyid", "")), subjects=subjects, report=report)
