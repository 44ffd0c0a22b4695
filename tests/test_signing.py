from __future__ import annotations

import base64
import json
import math
import stat
from pathlib import Path

import pytest

from ecgaudit.errors import EcgauditError, ExitCode, ReportError
from ecgaudit.io import json_bytes
from ecgaudit.report.signing import (
    PAYLOAD_TYPE,
    SigningKeyError,
    VerificationError,
    keygen,
    load_private_key,
    load_public_key,
    pae,
    sign_envelope,
    statement,
    verify_envelope,
)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return keygen(tmp_path)


def test_keygen_writes_a_private_key_only_the_owner_can_read(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    with pytest.raises(SigningKeyError, match="already exists"):
        keygen(private.parent)


def test_pae_is_the_dsse_v1_encoding() -> None:
    assert pae("t", b"hello") == b"DSSEv1 1 t 5 hello"


def test_round_trip_and_every_tamper_is_caught(keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, public = keys
    payload = statement({"m.onnx": "a" * 64, "report.json": "b" * 64}, json_bytes({"verdict": "PASS"}))
    envelope = sign_envelope(payload, load_private_key(private))
    verified = verify_envelope(envelope, load_public_key(public))
    assert verified.subjects == {"m.onnx": "a" * 64, "report.json": "b" * 64}
    assert verified.report == {"verdict": "PASS"}
    doc = json.loads(envelope)
    assert doc["payloadType"] == PAYLOAD_TYPE

    # one byte of the payload
    tampered = bytearray(base64.b64decode(doc["payload"]))
    tampered[tampered.index(b"PASS")] = ord("F")
    with pytest.raises(VerificationError, match="does not verify"):
        verify_envelope(json.dumps({**doc, "payload": base64.b64encode(bytes(tampered)).decode()}).encode(),
                        load_public_key(public))
    # one byte of the signature
    sig = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
    sig[0] ^= 1
    bad_sig = {**doc, "signatures": [{**doc["signatures"][0], "sig": base64.b64encode(bytes(sig)).decode()}]}
    with pytest.raises(VerificationError, match="does not verify"):
        verify_envelope(json.dumps(bad_sig).encode(), load_public_key(public))
    # another key
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    _, other_public = keygen(other_dir)
    with pytest.raises(VerificationError, match="does not verify"):
        verify_envelope(envelope, load_public_key(other_public))


def test_envelope_shape_is_checked_before_anything_is_trusted(keys: tuple[Path, Path]) -> None:
    _, public = keys
    with pytest.raises(ReportError, match="not a DSSE envelope"):
        verify_envelope(b"{}", load_public_key(public))
    with pytest.raises(ReportError, match="nests arrays or objects 1000 deep"):
        verify_envelope(b"[" * 1000 + b"]" * 1000, load_public_key(public))
    with pytest.raises(VerificationError, match="exactly one signature"):
        verify_envelope(json.dumps({"payloadType": PAYLOAD_TYPE, "payload": "", "signatures": []}).encode(),
                        load_public_key(public))


def test_group_readable_private_key_is_refused_like_ssh(keys: tuple[Path, Path]) -> None:
    private, _ = keys
    private.chmod(0o640)
    with pytest.raises(SigningKeyError, match="readable by group or others.*chmod 600"):
        load_private_key(private)
    assert load_private_key(private, allow_insecure=True) is not None


def test_wrong_key_files_are_named(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    with pytest.raises(SigningKeyError, match="not a PEM public key"):
        load_public_key(private)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    junk.chmod(0o600)
    with pytest.raises(SigningKeyError, match="not an unencrypted PEM private key"):
        load_private_key(junk)
    with pytest.raises(SigningKeyError, match="cannot be read"):
        load_private_key(tmp_path / "missing.pem")


def test_verification_error_is_an_ecgaudit_error_that_exits_1() -> None:
    assert issubclass(VerificationError, EcgauditError)
    assert VerificationError("x").exit_code == ExitCode.EVIDENCE_DOES_NOT_HOLD == 1
    assert EcgauditError("x").exit_code == ExitCode.BAD_INPUT == 2


def test_the_predicate_is_the_report_bytes_and_nan_becomes_null(keys: tuple[Path, Path]) -> None:
    private, public = keys
    report = {"b": float("nan"), "a": [float("inf"), -float("inf"), 1.5], "classes": {"NORM": 1, "MI": 2}}
    report_bytes = json_bytes(report)
    payload = statement({"report.json": "c" * 64}, report_bytes)
    # strict JSON all the way down: no bare NaN/Infinity in the signed bytes
    json.loads(payload, parse_constant=lambda name: pytest.fail(f"{name} in the signed payload"))
    verified = verify_envelope(sign_envelope(payload, load_private_key(private)), load_public_key(public))
    assert verified.report == {"b": None, "a": [None, None, 1.5], "classes": {"NORM": 1, "MI": 2}}
    assert json_bytes(verified.report) == report_bytes, "the predicate must rebuild report.json byte for byte"
    assert list(verified.report["classes"]) == ["NORM", "MI"], "key order is the scan's, not sorted"
    with pytest.raises(ValueError, match="canonical"):
        statement({}, json.dumps(report).encode())  # Python's default JSON: bare NaN, not what json_bytes writes
    assert math.isnan(json.loads(json.dumps(report))["b"])


def _resigned(envelope: bytes, change) -> bytes:
    doc = json.loads(envelope)
    change(doc)
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def test_nothing_outside_the_signature_can_change(keys: tuple[Path, Path]) -> None:
    private, public = keys
    envelope = sign_envelope(statement({"report.json": "c" * 64}, json_bytes({"v": 1})), load_private_key(private))
    key = load_public_key(public)
    assert verify_envelope(envelope, key).fingerprint == json.loads(envelope)["signatures"][0]["keyid"]

    def attacker_keyid(doc: dict) -> None:
        doc["signatures"][0]["keyid"] = "ATTACKER-CHOSEN-IDENTITY"

    with pytest.raises(VerificationError, match="keyid"):
        verify_envelope(_resigned(envelope, attacker_keyid), key)
    with pytest.raises(VerificationError, match="byte for byte"):
        verify_envelope(envelope.replace(b'\n  "payload"', b'\n   "payload"'), key)
    # base64 whose last character differs only in bits the decoder ignores: same signed bytes, other file
    doc = json.loads(envelope)
    sig = doc["signatures"][0]["sig"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = sig.rstrip("=")[-1]
    twin = sig.rstrip("=")[:-1] + alphabet[alphabet.index(last) ^ 1] + sig[len(sig.rstrip("=")):]
    assert base64.b64decode(twin) == base64.b64decode(sig)
    with pytest.raises(VerificationError, match="byte for byte"):
        verify_envelope(_resigned(envelope, lambda d: d["signatures"][0].update(sig=twin)), key)


def test_subject_names_must_stay_inside_the_report_folder(keys: tuple[Path, Path]) -> None:
    private, public = keys
    for name in ("../etc/passwd", "/etc/passwd", "a/../../b", "a\\b", "line\nbreak", ""):
        envelope = sign_envelope(statement({name: "c" * 64}, json_bytes({"v": 1})), load_private_key(private))
        with pytest.raises(VerificationError, match="malformed subject"):
            verify_envelope(envelope, load_public_key(public))


def test_a_public_key_given_for_signing_is_named_as_such(keys: tuple[Path, Path]) -> None:
    _, public = keys
    with pytest.raises(SigningKeyError, match="is a public key") as info:
        load_private_key(public)
    assert "chmod" not in str(info.value)
