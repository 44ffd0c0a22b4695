from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from ecgaudit.signing import (
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
    payload = statement({"m.onnx": "a" * 64, "report.json": "b" * 64}, {"verdict": "PASS"})
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
    with pytest.raises(VerificationError, match="not a DSSE envelope"):
        verify_envelope(b"{}", load_public_key(public))
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
