"""The evidence a reviewer gets: a signed, schema-valid report that verifies, and breaks when anything changes."""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgaudit.report import report_schema, schema_errors
from ecgaudit.signing import load_private_key, sign_envelope, statement

from .conftest import MODELS, REPO

PROFILE = REPO / "tests" / "profiles" / "scan-lenient.toml"


@dataclass
class SignedScan:
    out: Path
    model: Path
    private: Path
    public: Path


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> SignedScan:
    from ecgaudit._cli import main

    root = tmp_path_factory.mktemp("signed")
    model = root / "cnn-ml100.onnx"
    shutil.copy(MODELS / "cnn-ml100.onnx", model)
    shutil.copy(MODELS / "cnn-ml100.card.json", root / "cnn-ml100.card.json")
    with pytest.raises(SystemExit) as keygen_exit:
        main(["keygen", "--out", str(root)])
    assert keygen_exit.value.code == 0
    with pytest.raises(SystemExit) as scan_exit:
        main(["scan", str(model), "--profile", str(PROFILE), "--out", str(root / "out"), "--quiet",
              "--key", str(root / "ecgaudit-signing.pem"), "--export-wfdb"])
    assert scan_exit.value.code == 0
    return SignedScan(root / "out", model, root / "ecgaudit-signing.pem", root / "ecgaudit-signing.pub.pem")


def _copy(scan: SignedScan, tmp_path: Path) -> SignedScan:
    out = tmp_path / "out"
    shutil.copytree(scan.out, out)
    model = tmp_path / scan.model.name
    shutil.copy(scan.model, model)
    return SignedScan(out, model, scan.private, scan.public)


def _verify(run_cli, scan: SignedScan, *extra: object) -> tuple[int, str]:
    code, out, err = run_cli("verify", scan.out / "report.dsse.json", "--key", scan.public, "--model", scan.model,
                             *extra)
    return code, " ".join((out + err).split())


def test_signed_scan_verifies(run_cli, signed: SignedScan) -> None:
    code, text = _verify(run_cli, signed)
    assert code == 0, text
    for fragment in ("valid Ed25519 signature", "report.json: sha256 matches", "report.pdf: sha256 matches",
                     "cnn-ml100.onnx: sha256 matches", "verified"):
        assert fragment in text


def test_envelope_is_dsse_around_an_in_toto_statement(signed: SignedScan) -> None:
    envelope = json.loads((signed.out / "report.dsse.json").read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement_doc = json.loads(base64.b64decode(envelope["payload"]))
    assert statement_doc["_type"] == "https://in-toto.io/Statement/v1"
    names = {s["name"] for s in statement_doc["subject"]}
    assert names == {"cnn-ml100.onnx", "report.json", "report.pdf"}
    assert statement_doc["predicate"] == json.loads((signed.out / "report.json").read_text())


@pytest.mark.parametrize("target", ["report.json", "model", "signature"])
def test_one_changed_byte_breaks_verification_and_is_named(run_cli, signed: SignedScan, tmp_path: Path,
                                                          target: str) -> None:
    scan = _copy(signed, tmp_path)
    if target == "report.json":
        path = scan.out / "report.json"
        data = bytearray(path.read_bytes())
        data[data.index(b'"verdict"') + 13] ^= 0x01
        path.write_bytes(bytes(data))
        expected = "report.json does not match its signed digest"
    elif target == "model":
        data = bytearray(scan.model.read_bytes())
        data[len(data) // 2] ^= 0x01
        scan.model.write_bytes(bytes(data))
        expected = "cnn-ml100.onnx does not match its signed digest"
    else:
        path = scan.out / "report.dsse.json"
        envelope = json.loads(path.read_text())
        sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
        sig[10] ^= 0x01
        envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
        path.write_text(json.dumps(envelope))
        expected = "signature does not verify"
    code, text = _verify(run_cli, scan)
    assert code == 1, text
    assert expected in text
    assert "Traceback" not in text


def test_a_different_public_key_fails(run_cli, signed: SignedScan, tmp_path: Path) -> None:
    code, _, _ = run_cli("keygen", "--out", tmp_path)
    assert code == 0
    other = SignedScan(signed.out, signed.model, signed.private, tmp_path / "ecgaudit-signing.pub.pem")
    code, text = _verify(run_cli, other)
    assert code == 1 and "signature does not verify" in text


def test_a_signed_report_missing_a_required_field_is_rejected(run_cli, signed: SignedScan, tmp_path: Path) -> None:
    scan = _copy(signed, tmp_path)
    report = json.loads((scan.out / "report.json").read_text())
    del report["model"]["sha256"]
    subjects = {scan.model.name: "0" * 64}
    envelope = sign_envelope(statement(subjects, report), load_private_key(scan.private))
    (scan.out / "report.dsse.json").write_bytes(envelope)
    code, text = _verify(run_cli, scan)
    assert code == 1
    assert "does not follow the report schema" in text and "sha256" in text


def test_reports_follow_the_published_schema(run_cli, signed: SignedScan) -> None:
    report = json.loads((signed.out / "report.json").read_text())
    assert schema_errors(report) == []
    code, out, _ = run_cli("schema", "report")
    assert code == 0 and json.loads(out) == report_schema()
    assert report["signing"]["signed"] is True


def test_pdf_carries_the_report_digest_and_rebuilds_from_the_saved_report(run_cli, signed: SignedScan,
                                                                        tmp_path: Path) -> None:
    import hashlib

    from pypdf import PdfReader

    report_sha = hashlib.sha256((signed.out / "report.json").read_bytes()).hexdigest()
    reader = PdfReader(signed.out / "report.pdf")
    assert report_sha in json.dumps({k: str(v) for k, v in (reader.metadata or {}).items()})
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "PASS" in text and json.loads((signed.out / "report.json").read_text())["model"]["sha256"] in text
    rebuilt = tmp_path / "again.pdf"
    code, _, _ = run_cli("render", signed.out / "report.json", "--out", rebuilt)
    assert code == 0 and rebuilt.read_bytes().startswith(b"%PDF")
    assert report_sha in json.dumps({k: str(v) for k, v in (PdfReader(rebuilt).metadata or {}).items()})


def test_exported_wfdb_samples_read_back_to_the_format_resolution(signed: SignedScan) -> None:
    samples = np.load(signed.out / "samples.npz", allow_pickle=False)
    report = json.loads((signed.out / "report.json").read_text())
    headers = sorted((signed.out / "wfdb").glob("*.hea"))
    assert len(headers) == len(report["attacks"]) * len(samples["record_ids"])
    for attack in report["attacks"]:
        for i, record_id in enumerate(samples["record_ids"]):
            name = f"{attack['id']}_{record_id}".replace("-", "_")
            record = wfdb.rdrecord(str(signed.out / "wfdb" / name))
            expected = (samples["X"][i] + samples[f"delta_{attack['id']}"][i]).T
            assert record.sig_name == [str(lead) for lead in samples["leads"]]
            assert record.fs == float(samples["fs"])
            assert np.abs(record.p_signal - expected).max() <= 0.5 / 1000 + 1e-9  # 1 µV steps
    listed = {a["path"] for a in report["artifacts"]}
    assert all(f"wfdb/{h.name}" in listed for h in headers)


def test_unsigned_scan_says_so_loudly(run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli("scan", MODELS / "cnn-ml100.onnx", "--profile", PROFILE, "--out", tmp_path / "o")
    assert code == 0
    assert "UNSIGNED" in err
    assert not (tmp_path / "o" / "report.dsse.json").exists()
    assert json.loads((tmp_path / "o" / "report.json").read_text())["signing"]["signed"] is False
