"""The evidence a reviewer gets: a signed bundle that verifies whole, and fails, naming the file, when any file changes.

Two signed scans of one model (seeds 0 and 1) are built once for the module: the second run supplies the "same
file from another run" for the swap attacks.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgaudit.errors import EcgauditError
from ecgaudit.io import json_bytes
from ecgaudit.report.schema import report_schema, schema_errors
from ecgaudit.report.signing import fingerprint, load_private_key, load_public_key, sign_envelope, statement
from ecgaudit.report.verification import verify_bundle

from .conftest import MODELS, REPO

PROFILE = REPO / "tests" / "profiles" / "scan-lenient.toml"


@dataclass
class SignedScan:
    out: Path
    model: Path
    private: Path
    public: Path

    def subjects(self) -> dict[str, str]:
        envelope = json.loads((self.out / "report.dsse.json").read_text())
        return {s["name"]: s["digest"]["sha256"] for s in json.loads(base64.b64decode(envelope["payload"]))["subject"]}

    def path(self, subject: str) -> Path:
        return self.model if subject == self.model.name else self.out / subject


def _main(*args: object) -> int:
    from ecgaudit._cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return int(exit_info.value.code or 0)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("keys")
    assert _main("keygen", "--out", root) == 0
    return root / "ecgaudit-signing.pem", root / "ecgaudit-signing.pub.pem"


def _signed_scan(root: Path, keys: tuple[Path, Path], seed: int) -> SignedScan:
    model = root / "cnn-ml100.onnx"
    shutil.copy(MODELS / "cnn-ml100.onnx", model)
    shutil.copy(MODELS / "cnn-ml100.card.json", root / "cnn-ml100.card.json")
    out = root / "out"
    code = _main("scan", model, "--profile", PROFILE, "--out", out, "--quiet", "--key", keys[0], "--export-wfdb",
                 "--junit-xml", out / "junit.xml", "--seed", seed)
    assert code == 0
    return SignedScan(out, model, *keys)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> SignedScan:
    return _signed_scan(tmp_path_factory.mktemp("signed"), keys, seed=0)


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> SignedScan:
    """Another run of the same scan with another seed: same file names, other contents."""
    return _signed_scan(tmp_path_factory.mktemp("other"), keys, seed=1)


def _copy(scan: SignedScan, tmp_path: Path) -> SignedScan:
    out = tmp_path / "out"
    shutil.copytree(scan.out, out)
    model = tmp_path / scan.model.name
    shutil.copy(scan.model, model)
    return SignedScan(out, model, scan.private, scan.public)


def _verify(run_cli, scan: SignedScan, *extra: object) -> tuple[int, str]:
    code, out, err = run_cli("verify", scan.out / "report.dsse.json", "--key", scan.public, "--model", scan.model,
                             *extra)
    return code, out + err


def test_signed_scan_verifies_and_names_the_key_by_its_fingerprint(run_cli, signed: SignedScan) -> None:
    code, text = _verify(run_cli, signed)
    assert code == 0, text
    key_fingerprint = fingerprint(load_public_key(signed.public))
    assert f"valid Ed25519 signature by the key with fingerprint SHA256:{key_fingerprint}" in text
    for name, digest in signed.subjects().items():
        assert f"{name}: sha256 matches ({digest})" in text, name
    assert text.rstrip().endswith("verified")


def test_every_file_the_scan_wrote_and_the_model_are_subjects(signed: SignedScan) -> None:
    written = {p.relative_to(signed.out).as_posix() for p in signed.out.rglob("*") if p.is_file()}
    assert written - {"report.dsse.json"} | {signed.model.name} == set(signed.subjects())
    assert {"report.json", "report.pdf", "samples.npz", "junit.xml", "perturbations/scar.npy"} <= written
    assert any(name.startswith("wfdb/") and name.endswith(".dat") for name in written)
    for name, digest in signed.subjects().items():
        assert hashlib.sha256(signed.path(name).read_bytes()).hexdigest() == digest, name


def test_the_signed_predicate_is_report_json_byte_for_byte(signed: SignedScan) -> None:
    envelope = json.loads((signed.out / "report.dsse.json").read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"])
    document = json.loads(payload, parse_constant=lambda name: pytest.fail(f"bare {name} in the signed payload"))
    assert document["_type"] == "https://in-toto.io/Statement/v1"
    report_bytes = (signed.out / "report.json").read_bytes()
    assert json_bytes(document["predicate"]) == report_bytes
    assert json_bytes(json.loads(report_bytes)) == report_bytes, "report.json must be a canonical fixed point"


# --- tampering: every subject, four ways ---------------------------------------------------------------------------


def _flip(path: Path, other_path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path, other_path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1])


def _delete(path: Path, other_path: Path) -> None:
    path.unlink()


def _swap(path: Path, other_path: Path) -> None:
    shutil.copy(other_path, path)


def _counterpart(other: SignedScan, name: str, model_name: str) -> Path:
    """The same file of the other run; for WFDB records (other records were kept) one of the same kind."""
    if name == model_name:  # the same file in both runs: another model under the same name instead
        return MODELS / "cnn.onnx"
    if (other.out / name).exists():
        return other.out / name
    return next(p for p in sorted((other.out / name).parent.glob(f"*{Path(name).suffix}")))


TAMPERINGS: dict[str, Callable[[Path, Path], None]] = {"flip": _flip, "truncate": _truncate, "delete": _delete,
                                                        "swap": _swap}


@pytest.mark.parametrize("how", TAMPERINGS)
def test_each_subject_tampered_fails_verification_naming_the_file(run_cli, signed: SignedScan, other: SignedScan,
                                                                 tmp_path: Path, how: str) -> None:
    scan = _copy(signed, tmp_path)
    subjects = scan.subjects()
    assert len(subjects) >= 10
    for name in subjects:
        path = scan.path(name)
        replacement = _counterpart(other, name, scan.model.name)
        assert replacement.read_bytes() != path.read_bytes(), f"precondition: {name} differs between the runs"
        original = path.read_bytes()
        TAMPERINGS[how](path, replacement)
        code, text = _verify(run_cli, scan)
        path.write_bytes(original)
        assert code == 1, f"{how} of {name} was accepted:\n{text}"
        failures = [line for line in text.splitlines() if line.startswith("✗")]
        assert failures and all(name in line for line in failures), f"{how} of {name}:\n{text}"
        assert "Traceback" not in text
    code, text = _verify(run_cli, scan)
    assert code == 0, text


def test_an_envelope_from_another_run_fails_on_every_file(run_cli, signed: SignedScan, other: SignedScan,
                                                         tmp_path: Path) -> None:
    scan = _copy(signed, tmp_path)
    shutil.copy(other.out / "report.dsse.json", scan.out / "report.dsse.json")
    code, text = _verify(run_cli, scan)
    assert code == 1
    for name in ("report.json", "report.pdf", "samples.npz", "perturbations/scar.npy"):
        assert any(line.startswith(f"✗ {name}:") for line in text.splitlines()), name


def test_random_single_byte_flips_anywhere_in_the_bundle_are_all_refused(signed: SignedScan, tmp_path: Path) -> None:
    """200 flips here (the 1,000-flip count is benchmarks/bench_tamper.py); the envelope is a target too."""
    scan = _copy(signed, tmp_path)
    files = [scan.path(name) for name in scan.subjects()] + [scan.out / "report.dsse.json"]
    rng = random.Random(13)
    key = load_public_key(scan.public)
    for _ in range(200):
        path = rng.choice(files)
        original = path.read_bytes()
        data = bytearray(original)
        offset = rng.randrange(len(data))
        data[offset] ^= rng.randrange(1, 256)
        path.write_bytes(bytes(data))
        try:
            accepted = verify_bundle(scan.out / "report.dsse.json", key, model=scan.model).ok
        except EcgauditError:  # VerificationError, or ReportError when the envelope no longer parses
            accepted = False
        path.write_bytes(original)
        assert not accepted, f"a flip of byte {offset} in {path.name} was accepted"


def test_a_missing_model_argument_fails_unless_skipped_and_says_so(run_cli, signed: SignedScan) -> None:
    code, out, err = run_cli("verify", signed.out / "report.dsse.json", "--key", signed.public)
    assert code == 1
    assert f"✗ {signed.model.name}: the audited model was not checked" in err
    code, out, err = run_cli("verify", signed.out / "report.dsse.json", "--key", signed.public,
                             "--skip", signed.model.name)
    assert code == 0, err
    assert f"NOT CHECKED (--skip): {signed.model.name}" in err
    assert f"EXCEPT 1 skipped subject(s) NOT CHECKED: {signed.model.name}" in " ".join(out.split())


def test_a_skipped_missing_subject_passes_loudly_and_an_unknown_skip_is_bad_usage(run_cli, signed: SignedScan,
                                                                                tmp_path: Path) -> None:
    scan = _copy(signed, tmp_path)
    (scan.out / "report.pdf").unlink()
    code, text = _verify(run_cli, scan)
    assert code == 1 and "✗ report.pdf: missing" in text
    code, text = _verify(run_cli, scan, "--skip", "report.pdf")
    assert code == 0 and "NOT CHECKED (--skip): report.pdf" in text, text
    code, text = _verify(run_cli, scan, "--skip", "report.txt")
    assert code == 2 and "not a subject" in text


def test_a_file_nobody_signed_is_pointed_out(run_cli, signed: SignedScan, tmp_path: Path) -> None:
    scan = _copy(signed, tmp_path)
    (scan.out / "perturbations" / "extra.npy").write_bytes(b"not evidence")
    code, text = _verify(run_cli, scan)
    assert code == 0
    assert "perturbations/extra.npy is in the folder but not signed" in text


def test_a_different_public_key_fails(run_cli, signed: SignedScan, tmp_path: Path) -> None:
    code, _, _ = run_cli("keygen", "--out", tmp_path)
    assert code == 0
    other_key = SignedScan(signed.out, signed.model, signed.private, tmp_path / "ecgaudit-signing.pub.pem")
    code, text = _verify(run_cli, other_key)
    assert code == 1 and "signature does not verify" in text


def test_a_signed_report_missing_a_required_field_is_rejected(run_cli, signed: SignedScan, tmp_path: Path) -> None:
    scan = _copy(signed, tmp_path)
    report = json.loads((scan.out / "report.json").read_text())
    del report["model"]["sha256"]
    subjects = {scan.model.name: "0" * 64}
    envelope = sign_envelope(statement(subjects, json_bytes(report)), load_private_key(scan.private))
    (scan.out / "report.dsse.json").write_bytes(envelope)
    code, text = _verify(run_cli, scan)
    assert code == 1
    assert "does not follow the report schema" in text and "sha256" in text


def test_a_statement_without_the_files_the_report_lists_is_rejected(run_cli, signed: SignedScan,
                                                                   tmp_path: Path) -> None:
    """A signer who leaves samples.npz out of the subjects cannot pass: the report itself lists it."""
    scan = _copy(signed, tmp_path)
    subjects = {k: v for k, v in scan.subjects().items() if k != "samples.npz"}
    report_bytes = (scan.out / "report.json").read_bytes()
    (scan.out / "report.dsse.json").write_bytes(sign_envelope(statement(subjects, report_bytes),
                                                              load_private_key(scan.private)))
    code, text = _verify(run_cli, scan)
    assert code == 1 and "samples.npz: the report lists it" in text


def test_reports_follow_the_published_schema(run_cli, signed: SignedScan) -> None:
    report = json.loads((signed.out / "report.json").read_text())
    assert schema_errors(report) == []
    code, out, _ = run_cli("schema", "report")
    assert code == 0 and json.loads(out) == report_schema()
    assert report["signing"] == {"signed": True, "key_fingerprint": fingerprint(load_public_key(signed.public))}


# --- the PDF and the order of what the scan wrote ------------------------------------------------------------------


def test_render_gives_the_scans_pdf_byte_for_byte(run_cli, signed: SignedScan, tmp_path: Path) -> None:
    from pypdf import PdfReader

    rebuilt = tmp_path / "again.pdf"
    code, _, err = run_cli("render", signed.out / "report.json", "--out", rebuilt)
    assert code == 0, err
    assert rebuilt.read_bytes() == (signed.out / "report.pdf").read_bytes()
    report_sha = hashlib.sha256((signed.out / "report.json").read_bytes()).hexdigest()
    assert report_sha in json.dumps({k: str(v) for k, v in (PdfReader(rebuilt).metadata or {}).items()})


def test_report_json_keeps_the_order_the_scan_wrote(signed: SignedScan) -> None:
    """Classes in the card's order and parameters in the attack's order, so the PDF's columns read the same."""
    from ecgaudit.attacks import build_attack

    report = json.loads((signed.out / "report.json").read_text())
    card = report["model"]["card"]
    assert list(report["clean"]["predicted_counts"]) == card["classes"] != sorted(card["classes"])
    scar = next(a for a in report["attacks"] if a["id"] == "scar")
    attack = build_attack("scar", fs=card["fs"], leads=tuple(card["leads"]),
                          params={"epochs": 1, "batch_size": 8, "eps_limb_mv": 2.0, "eps_chest_mv": 4.0})
    assert list(scar["params"]) == list(attack.params())


# --- WFDB samples --------------------------------------------------------------------------------------------------


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
    assert all(f"wfdb/{h.name}" in listed and f"wfdb/{h.stem}.dat" in listed for h in headers)


def test_record_ids_cannot_inject_header_lines(tmp_path: Path) -> None:
    from ecgaudit.export import export_wfdb

    ids = np.array(["rec\n100 12 500 5000", "rec\r# fake comment", "rec\t\x00é"])
    samples = {"X": np.zeros((3, 12, 50), np.float32), "record_ids": ids, "fs": np.array(100.0),
               "leads": np.array(["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]),
               "delta_a": np.zeros((3, 12, 50), np.float32)}
    written = export_wfdb(samples, tmp_path / "wfdb", ["a"])
    headers = [tmp_path / path for path, _ in written if path.endswith(".hea")]
    assert len(headers) == 3 and len(set(headers)) == 3, "ids that sanitise alike must not overwrite each other"
    for header in headers:
        lines = header.read_text(encoding="ascii").splitlines()
        assert len(lines) == 1 + 12 + 2, lines  # record line, one per lead, our two comments
        assert sum(line.startswith("#") for line in lines) == 2
        record = wfdb.rdheader(str(header.with_suffix("")))
        assert record.n_sig == 12 and record.fs == 100.0
    comments = " ".join(wfdb.rdheader(str(headers[0].with_suffix(""))).comments)
    assert "rec\\n100 12 500 5000" in comments


def test_unsigned_scan_says_so_loudly(run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli("scan", MODELS / "cnn-ml100.onnx", "--profile", PROFILE, "--out", tmp_path / "o")
    assert code == 0
    assert "UNSIGNED" in err
    assert not (tmp_path / "o" / "report.dsse.json").exists()
    assert json.loads((tmp_path / "o" / "report.json").read_text())["signing"]["signed"] is False


# --- output paths the evidence commands cannot use: one sentence, exit 2, nothing half-written ----------------------


def test_keygen_render_and_verify_refuse_paths_they_cannot_use(run_cli, signed: SignedScan, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    cases = [
        (("keygen", "--out", a_file), "is a file"),
        (("keygen", "--out", a_file / "sub"), "is a file, not a folder"),
        (("render", signed.out / "report.json", "--out", tmp_path), "is a folder"),
        (("render", signed.out / "report.json", "--out", a_file / "x.pdf"), "is a file, not a folder"),
        (("verify", signed.out / "report.dsse.json", "--key", signed.public, "--model", signed.model,
          "--report-dir", tmp_path / "nope"), "is not a folder"),
    ]
    for args, needle in cases:
        code, out, err = run_cli(*args)
        text = out + err
        assert code == 2, (args, text)
        assert needle in text and "Traceback" not in text and "internal error" not in text, (args, text)
    assert a_file.read_text() == "not a folder" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_keygen_that_cannot_write_is_exit_2_and_leaves_no_half_pair(run_cli, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import ecgaudit.report.signing as signing

    real = signing.atomic_write_bytes

    def full_disk(path: Path, data: bytes, **kwargs: object) -> str:
        if path.name.endswith(".pub.pem"):  # the private key is written, then the disk is full
            raise OSError(28, "No space left on device")
        return real(path, data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(signing, "atomic_write_bytes", full_disk)
    code, _, err = run_cli("keygen", "--out", tmp_path)
    assert code == 2 and "No space left on device" in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []  # no private key without its public half


def test_record_ids_that_share_a_file_name_never_overwrite_each_other_on_export(tmp_path: Path) -> None:
    """`r.`, `r__2` and `r,` all become `a_r_...` once unsafe characters are replaced: the third used to overwrite
    the second's files, and the artifact list held one path twice with different digests."""
    from ecgaudit.export import export_wfdb

    ids = np.array(["r.", "r__2", "r,", "R,"])
    rng = np.random.default_rng(0)
    samples = {"fs": np.float32(100.0), "leads": np.array(["I", "II"]), "record_ids": ids,
               "X": rng.normal(0, 0.5, (4, 2, 50)).astype(np.float32),
               "delta_a": np.zeros((4, 2, 50), np.float32)}
    written = export_wfdb(samples, tmp_path / "wfdb", ["a"])
    paths = [path for path, _ in written]
    assert len(paths) == len({path.lower() for path in paths}) == 8
    assert len({digest for _, digest in written}) == 8
    for i, record_id in enumerate(ids):  # each file holds its own record, and its header names it
        name = next(p for p in paths if p.endswith(".hea") and
                    f"source record {record_id}" in (tmp_path / p).read_text()).removesuffix(".hea")
        record = wfdb.rdrecord(str(tmp_path / name))
        assert np.allclose(record.p_signal.T, samples["X"][i], atol=1e-3)


def test_an_independent_dsse_verifier_agrees_with_ours_on_the_envelope_and_on_every_tampering(
        signed: SignedScan) -> None:
    """securesystemslib's DSSE implementation (what in-toto and TUF use), given only the public key, accepts a
    signed scan's envelope and refuses it after a one-byte change of anything the signature covers (payload,
    signature, payload type); ours gives the same answer each time. Where they differ is by design and outside
    the signature: ours also refuses an envelope whose JSON was re-encoded (asserted last)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError as ThirdPartyRefusal
    from securesystemslib.signer import SSlibKey

    from ecgaudit.report.signing import PREDICATE_TYPE, verify_envelope

    raw = (signed.out / "report.dsse.json").read_bytes()
    document = json.loads(raw)
    public = load_pem_public_key(signed.public.read_bytes())
    key = SSlibKey.from_crypto(public, keyid=document["signatures"][0]["keyid"])

    def theirs(envelope: dict) -> bool:
        try:
            Envelope.from_dict(copy.deepcopy(envelope)).verify([key], 1)  # from_dict empties the signatures
        except ThirdPartyRefusal:
            return False
        return True

    def ours(envelope: dict) -> bool:
        try:
            # in the one byte form ecgaudit writes (see the last assertion)
            verify_envelope((json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode(),
                            load_public_key(signed.public))
        except EcgauditError:
            return False
        return True

    assert theirs(document) and ours(document)
    statement_doc = json.loads(Envelope.from_dict(copy.deepcopy(document)).payload)
    assert statement_doc["_type"] == "https://in-toto.io/Statement/v1"
    assert statement_doc["predicateType"] == PREDICATE_TYPE
    for subject in statement_doc["subject"]:  # what it vouches for is the files on disk
        assert hashlib.sha256(signed.path(subject["name"]).read_bytes()).hexdigest() == subject["digest"]["sha256"]
    payload = base64.b64decode(document["payload"])
    signature = base64.b64decode(document["signatures"][0]["sig"])
    rng = random.Random(7)
    tampered = [{**document, "payload": base64.b64encode(_flip(payload, i)).decode()}
                for i in (0, len(payload) - 1, *rng.sample(range(len(payload)), 6))]
    tampered += [{**document, "signatures": [{**document["signatures"][0], "sig": base64.b64encode(
        _flip(signature, i)).decode()}]} for i in (0, 31, 63)]
    tampered.append({**document, "payloadType": document["payloadType"].replace("json", "jsoN")})
    for envelope in tampered:
        assert (theirs(envelope), ours(envelope)) == (False, False)
    compact = json.dumps(document, separators=(",", ":")).encode()
    assert theirs(json.loads(compact))
    with pytest.raises(EcgauditError, match="not byte for byte the form ecgaudit writes"):
        verify_envelope(compact, load_public_key(signed.public))


def _flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)
