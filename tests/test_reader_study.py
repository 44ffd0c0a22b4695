"""The reader-study kit: a blinded deck that gives nothing away, a signed key, and correct scoring."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from ecgaudit.leads import STANDARD_LEADS

FS = 250.0
RECORD_IDS = ["rec-17", "rec-42", "rec-99"]
ATTACKS = ["scar", "pgd-10uv"]


@pytest.fixture(scope="module")
def scan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minimal scan output folder: report.json and samples.npz as `ecgaudit scan` writes them."""
    from ecgaudit.data.synthetic import generate_synthetic
    from ecgaudit.io import npz_bytes

    out = tmp_path_factory.mktemp("scan")
    x, _ = generate_synthetic(3, FS, 2500, 4)
    t = np.arange(2500) / FS
    universal = (0.1 * np.sin(2 * np.pi * 1.5 * t) * np.ones((12, 1))).astype(np.float32)
    per_record = (0.01 * np.random.default_rng(0).standard_normal(x.shape)).astype(np.float32)
    samples = {"X": x, "record_ids": np.array(RECORD_IDS), "fs": np.array(FS), "leads": np.array(STANDARD_LEADS),
               "clean_decision": np.array(["NORM", "NORM", "HYP"]),
               "delta_scar": np.ascontiguousarray(np.broadcast_to(universal, x.shape)),
               "decision_scar": np.array(["MI", "MI", "MI"]),
               "delta_pgd-10uv": per_record, "decision_pgd-10uv": np.array(["NORM", "STTC", "HYP"])}
    (out / "samples.npz").write_bytes(npz_bytes(samples))
    (out / "report.json").write_text(json.dumps({"model": {"sha256": "ab" * 32}, "profile": {"name": "samd"}}))
    return out


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from ecgaudit.report.signing import keygen

    return keygen(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def deck(scan_dir: Path, keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ecgaudit.clinical.reader_study import make_deck

    out = tmp_path_factory.mktemp("study")
    make_deck(scan_dir, out, key_path=keys[0])
    return out


def _key_cases(deck: Path, public: Path) -> list[dict]:
    from ecgaudit.report.signing import load_public_key, verify_envelope

    envelope = (deck / "sealed" / "answer-key.dsse.json").read_bytes()
    return verify_envelope(envelope, load_public_key(public)).report["cases"]


def _write_sheet(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "forged (yes/no)", "diagnosis"])
        writer.writerows(rows)
    return path


def test_make_then_score_with_scripted_readers_gives_the_right_confusion_counts(
    run_cli, scan_dir: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    code, out, err = run_cli("reader-study", "make", scan_dir, "--out", tmp_path / "study", "--key", keys[0])
    assert code == 0, err
    assert "9 cases (6 forged, 3 clean)" in out
    cases = _key_cases(tmp_path / "study", keys[1])
    assert len(cases) == 9 and sorted({c["record_id"] for c in cases}) == RECORD_IDS
    sheet = (tmp_path / "study" / "deck" / "answer-sheet.csv").read_text().splitlines()
    assert sheet[0] == "case_id,forged (yes/no),diagnosis" and len(sheet) == 10
    # reader "eagle" is always right; reader "scripted" calls only SCAR forgeries forged, calls the first clean
    # case forged too, leaves the last forged PGD case blank, and diagnoses MI on every case it calls forged.
    eagle = [(c["case_id"], "yes" if c["forged"] else "no", "") for c in cases]
    clean_ids = [c["case_id"] for c in cases if not c["forged"]]
    pgd_ids = [c["case_id"] for c in cases if c["attack"] == "pgd-10uv"]
    scripted = []
    for c in cases:
        if c["case_id"] == pgd_ids[-1]:
            continue
        said = c["attack"] == "scar" or c["case_id"] == clean_ids[0]
        scripted.append((c["case_id"], "Yes" if said else "no", "MI" if said else "NORM"))
    sheets = [_write_sheet(tmp_path / "eagle.csv", eagle), _write_sheet(tmp_path / "scripted.csv", scripted)]
    code, out, err = run_cli("reader-study", "score", tmp_path / "study" / "sealed" / "answer-key.dsse.json",
                             *sheets, "--pubkey", keys[1], "--json", tmp_path / "scores.json")
    assert code == 0, err
    result = json.loads((tmp_path / "scores.json").read_text())
    assert result["key"]["verified"] is True
    assert result["readers"]["eagle"]["confusion"] == {"tp": 6, "fn": 0, "tn": 3, "fp": 0}
    assert result["readers"]["scripted"]["confusion"] == {"tp": 3, "fn": 2, "tn": 2, "fp": 1}
    assert result["readers"]["scripted"]["unanswered"] == 1
    assert result["pooled"]["confusion"] == {"tp": 9, "fn": 2, "tn": 5, "fp": 1}
    assert result["readers"]["scripted"]["sensitivity"]["value"] == pytest.approx(3 / 5)
    assert result["readers"]["scripted"]["diagnoses_on_forged"] == {"MI": 3, "NORM": 2}
    assert result["per_attack"]["scar"]["confusion"] == {"tp": 6, "fn": 0}
    assert result["per_attack"]["pgd-10uv"]["confusion"] == {"tp": 3, "fn": 2}
    low, high = result["pooled"]["specificity"]["ci95"]
    assert low < 5 / 6 < high


def _page_texts_and_streams(pdf: Path) -> tuple[list[str], list[bytes], dict]:
    from pypdf import PdfReader

    reader = PdfReader(str(pdf))
    texts = [page.extract_text() for page in reader.pages]
    streams = [page.get_contents().get_data() for page in reader.pages]
    return texts, streams, dict(reader.metadata or {})


def test_the_deck_pdf_reveals_nothing_about_which_case_is_forged(deck: Path, keys: tuple[Path, Path]) -> None:
    texts, streams, metadata = _page_texts_and_streams(deck / "deck" / "deck.pdf")
    cases = _key_cases(deck, keys[1])
    assert len(texts) == len(cases)
    everything = " ".join(texts + [str(v) for v in metadata.values()]).lower()
    for secret in ["forged", "adversar", "clean", "attack", "scar", "pgd", "perturb", "mi", "norm", "hyp",
                   *[r.lower() for r in RECORD_IDS]]:
        assert not re.search(rf"\b{re.escape(secret)}", everything), secret
    # every page says the same thing apart from its case id, in deck order
    for text, case in zip(texts, cases):
        assert f"Case {case['case_id']}" in text
    assert len({text.replace(case["case_id"], "#") for text, case in zip(texts, cases)}) == 1
    # and is built the same way: the same operators, colours, line widths and point counts on every page
    numbers = re.compile(rb"-?\d+(\.\d+)?")
    skeletons = {numbers.sub(b"#", re.sub(rb"\(Case [^)]*\)", b"(Case)", s)) for s in streams}
    assert len(skeletons) == 1
    styles = [sorted(set(re.findall(rb"(?m)^[\d. ]+ (?:rg|RG|g|G|k|K|w)$", s))) for s in streams]
    assert all(style == styles[0] for style in styles)
    # the check has teeth: the traces themselves do differ between pages
    assert len(set(streams)) == len(streams)


def test_wfdb_records_are_named_by_case_and_carry_no_hint(deck: Path, keys: tuple[Path, Path],
                                                          scan_dir: Path) -> None:
    import wfdb

    samples = dict(np.load(scan_dir / "samples.npz"))
    for case in _key_cases(deck, keys[1]):
        header = (deck / "deck" / "wfdb" / f"{case['case_id']}.hea").read_text()
        assert "#" not in header and case["record_id"] not in header
        record = wfdb.rdrecord(str(deck / "deck" / "wfdb" / case["case_id"]))
        i = RECORD_IDS.index(case["record_id"])
        expected = samples["X"][i] + (samples[f"delta_{case['attack']}"][i] if case["forged"] else 0)
        assert np.abs(record.p_signal.T - expected).max() <= 0.0006  # 1 µV steps


def test_a_tampered_or_foreign_key_fails_to_verify(run_cli, deck: Path, keys: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    from ecgaudit.report.signing import keygen

    envelope = json.loads((deck / "sealed" / "answer-key.dsse.json").read_bytes())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["cases"][0]["forged"] = not statement["predicate"]["cases"][0]["forged"]
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    tampered = tmp_path / "tampered.dsse.json"
    tampered.write_text(json.dumps(envelope))
    sheet = _write_sheet(tmp_path / "r.csv", [])
    code, _, err = run_cli("reader-study", "score", tampered, sheet, "--pubkey", keys[1])
    assert code == 1 and "verification failed" in err
    _, other_public = keygen(tmp_path)
    code, _, err = run_cli("reader-study", "score", deck / "sealed" / "answer-key.dsse.json", sheet,
                           "--pubkey", other_public)
    assert code == 1 and "verification failed" in err
    code, _, err = run_cli("reader-study", "score", deck / "sealed" / "answer-key.dsse.json", sheet)
    assert code == 2 and "--pubkey" in err


def test_bad_inputs_are_one_clear_error(run_cli, deck: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    key = deck / "sealed" / "answer-key.dsse.json"
    sheet = _write_sheet(tmp_path / "r.csv", [("C99", "yes", "")])
    code, _, err = run_cli("reader-study", "score", key, sheet, "--pubkey", keys[1])
    assert code == 2 and "not in the answer key" in err
    case_id = _key_cases(deck, keys[1])[0]["case_id"]
    sheet = _write_sheet(tmp_path / "r.csv", [(case_id, "maybe", "")])
    code, _, err = run_cli("reader-study", "score", key, sheet, "--pubkey", keys[1])
    assert code == 2 and "yes or no" in err
    code, _, err = run_cli("reader-study", "make", tmp_path, "--out", tmp_path / "x")
    assert code == 2 and "report.json" in err


def test_an_unsigned_key_scores_but_says_it_is_unverified(run_cli, scan_dir: Path, tmp_path: Path) -> None:
    code, out, _ = run_cli("reader-study", "make", scan_dir, "--out", tmp_path, "--attack", "scar")
    assert code == 0 and "NOT signed" in out and "6 cases (3 forged, 3 clean)" in out
    sheet = _write_sheet(tmp_path / "r.csv", [])
    code, out, _ = run_cli("reader-study", "score", tmp_path / "sealed" / "answer-key.json", sheet)
    assert code == 0 and "unsigned" in out
