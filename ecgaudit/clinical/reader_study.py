"""A reader study kit: the paper's "Human Firewall" (§1, §4.1), measured instead of asserted.

`make_deck` turns a scan's output folder into a blinded, shuffled deck of the clean and adversarial ECGs it
kept (`samples.npz`): a PDF on standard ECG paper and WFDB records, both named only by case id; an answer
sheet (CSV) for readers; and a sealed answer key, signed (DSSE, Ed25519, `ecgaudit.report.signing`) with the scan's
key when one is given, whose subjects are the deck's files. `score` reads the key and the readers' sheets and
gives, per reader and pooled, the sensitivity and specificity of spotting forgeries, with 95% Wilson intervals,
and the diagnoses readers gave to forged and clean records.

Layout of the output folder: `deck/` goes to readers (`deck.pdf`, `wfdb/<case>.hea|.dat`, `answer-sheet.csv`);
`sealed/` stays with the study coordinator (`answer-key.json`, or `answer-key.dsse.json` when signed).
Every kept record appears once clean and once per attack, so a reader may compare pages of the same patient
(a paired design, the easier one for readers); a universal perturbation also repeats across records.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ecgaudit.errors import EcgauditError
from ecgaudit.io import atomic_write_bytes, file_sha256, json_bytes
from ecgaudit.metrics import wilson

KEY_KIND = "ecgaudit reader-study answer key"
SHEET_HEADER = ("case_id", "forged (yes/no)", "diagnosis")
ADC_GAIN = 1000.0
"""WFDB format 16 at 1 µV per unit, the same for every case."""
_YES, _NO = {"yes", "y", "true", "1", "forged"}, {"no", "n", "false", "0", "clean"}


class ReaderStudyError(EcgauditError):
    """A scan folder, answer key or answer sheet cannot be used for the reader study."""


@dataclass(frozen=True)
class Case:
    case_id: str
    forged: bool
    record_id: str
    attack: str | None
    model_decision: str | None


@dataclass(frozen=True)
class DeckResult:
    deck_dir: Path
    key_path: Path
    cases: tuple[Case, ...]
    signed: bool


def load_scan(report_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """`report.json` and `samples.npz` of a scan folder, checked for what the deck needs."""
    report_path, samples_path = report_dir / "report.json", report_dir / "samples.npz"
    for path in (report_path, samples_path):
        if not path.is_file():
            raise ReaderStudyError(f"{path} is missing; give the output folder of 'ecgaudit scan --out DIR'.")
    try:
        report = json.loads(report_path.read_bytes())
        with np.load(samples_path, allow_pickle=False) as npz:
            samples = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as exc:
        raise ReaderStudyError(f"{report_dir}: report.json or samples.npz cannot be read ({exc}).") from exc
    missing = [key for key in ("X", "record_ids", "fs", "leads") if key not in samples]
    attacks = [key[len("delta_"):] for key in samples if key.startswith("delta_")]
    if missing or not attacks:
        raise ReaderStudyError(f"{samples_path} lacks {', '.join(missing) or 'any delta_<attack> array'}; "
                               "rerun the scan with this version of ecgaudit.")
    x = samples["X"]
    if x.ndim != 3 or x.shape[0] == 0 or any(samples[f"delta_{a}"].shape != x.shape for a in attacks):
        raise ReaderStudyError(f"{samples_path}: X must be (N, L, T) with N ≥ 1 and every delta_<attack> of "
                               "the same shape.")
    leads = [str(lead) for lead in samples["leads"]]
    from ecgaudit.render.pdf.ecg import has_standard_12

    if not has_standard_12(leads):
        raise ReaderStudyError(f"{samples_path}: the deck needs the 12 standard leads; it has {', '.join(leads)}.")
    return report, samples


def _cases(samples: dict[str, np.ndarray], attacks: list[str]) -> list[tuple[Case, np.ndarray]]:
    ids = [str(r) for r in samples["record_ids"]]
    clean_dx = samples.get("clean_decision")
    out = []
    for i, record_id in enumerate(ids):
        out.append((Case("", False, record_id, None, None if clean_dx is None else str(clean_dx[i])),
                    samples["X"][i]))
        for attack in attacks:
            dx = samples.get(f"decision_{attack}")
            out.append((Case("", True, record_id, attack, None if dx is None else str(dx[i])),
                        samples["X"][i] + samples[f"delta_{attack}"][i]))
    return out


def _write_wfdb(signal: np.ndarray, name: str, fs: float, leads: list[str], out_dir: Path) -> None:
    import wfdb

    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(leads), sig_name=leads,
                p_signal=np.asarray(signal, dtype=np.float64).T, fmt=["16"] * len(leads),
                adc_gain=[ADC_GAIN] * len(leads), baseline=[0] * len(leads), write_dir=str(out_dir))


def answer_sheet(case_ids: list[str]) -> bytes:
    """The blank answer sheet: one row per case, in deck order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SHEET_HEADER)
    for case_id in case_ids:
        writer.writerow([case_id, "", ""])
    return buffer.getvalue().encode()


def make_deck(report_dir: Path, out_dir: Path, *, key_path: Path | None = None, attacks: list[str] | None = None,
              allow_insecure_key: bool = False) -> DeckResult:
    """Write `out_dir/deck/` (for readers) and `out_dir/sealed/` (the answer key) from a scan folder."""
    from ecgaudit.render.pdf.deck import render_deck
    from ecgaudit.report.signing import load_private_key, sign_envelope, statement

    report, samples = load_scan(report_dir)
    available = sorted(key[len("delta_"):] for key in samples if key.startswith("delta_"))
    chosen = list(attacks) if attacks else available
    unknown = [a for a in chosen if a not in available]
    if unknown:
        raise ReaderStudyError(f"no samples for attack(s) {', '.join(unknown)}; this scan has {', '.join(available)}.")
    private_key = load_private_key(key_path, allow_insecure=allow_insecure_key) if key_path else None
    fs, leads = float(samples["fs"]), [str(lead) for lead in samples["leads"]]
    entries = _cases(samples, chosen)
    secrets.SystemRandom().shuffle(entries)  # not seeded: the order must not be reproducible from public inputs
    width = max(2, len(str(len(entries))))
    case_ids = [f"C{k + 1:0{width}d}" for k in range(len(entries))]
    cases = tuple(Case(cid, c.forged, c.record_id, c.attack, c.model_decision)
                  for cid, (c, _) in zip(case_ids, entries))
    signals = np.stack([signal for _, signal in entries]).astype(np.float32)

    deck_dir, sealed_dir = out_dir / "deck", out_dir / "sealed"
    (deck_dir / "wfdb").mkdir(parents=True, exist_ok=True)
    sealed_dir.mkdir(parents=True, exist_ok=True)
    subjects = {"deck/deck.pdf": atomic_write_bytes(deck_dir / "deck.pdf", render_deck(signals, leads, fs, case_ids)),
                "deck/answer-sheet.csv": atomic_write_bytes(deck_dir / "answer-sheet.csv", answer_sheet(case_ids))}
    for case_id, signal in zip(case_ids, signals):
        _write_wfdb(signal, case_id, fs, leads, deck_dir / "wfdb")
        for ext in ("hea", "dat"):
            subjects[f"deck/wfdb/{case_id}.{ext}"] = file_sha256(deck_dir / "wfdb" / f"{case_id}.{ext}")
    key_doc = {
        "kind": KEY_KIND,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "scan": {"report_sha256": file_sha256(report_dir / "report.json"),
                 "samples_sha256": file_sha256(report_dir / "samples.npz"),
                 "model_sha256": (report.get("model") or {}).get("sha256"),
                 "profile": (report.get("profile") or {}).get("name")},
        "deck": subjects,
        "cases": [c.__dict__ for c in cases],
    }
    for stale in ("answer-key.json", "answer-key.dsse.json"):
        (sealed_dir / stale).unlink(missing_ok=True)
    if private_key is not None:
        key_out = sealed_dir / "answer-key.dsse.json"
        atomic_write_bytes(key_out, sign_envelope(statement(subjects, json_bytes(key_doc)), private_key), mode=0o600)
    else:
        key_out = sealed_dir / "answer-key.json"
        atomic_write_bytes(key_out, json_bytes(key_doc), mode=0o600)
    return DeckResult(deck_dir, key_out, cases, private_key is not None)


@dataclass(frozen=True)
class AnswerKey:
    cases: dict[str, Case]
    verified: bool
    keyid: str | None
    deck: dict[str, str]


def load_key(path: Path, public_key_path: Path | None = None) -> AnswerKey:
    """Read an answer key; a signed one (DSSE) is verified with `public_key_path` before it is trusted.

    Raises `signing.VerificationError` when the signature does not hold (a tampered or foreign key).
    """
    from ecgaudit.report.signing import load_public_key, verify_envelope

    try:
        raw = path.read_bytes()
        document = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ReaderStudyError(f"answer key {path} cannot be read as JSON ({exc}).") from exc
    signed = isinstance(document, dict) and "payloadType" in document
    keyid = None
    if signed:
        if public_key_path is None:
            raise ReaderStudyError(f"{path} is signed; pass --pubkey with the scan's public key to verify it.")
        verified = verify_envelope(raw, load_public_key(public_key_path))
        document, keyid = verified.report, verified.fingerprint
    elif public_key_path is not None:
        raise ReaderStudyError(f"{path} is not signed, so --pubkey cannot verify it; use the answer-key.dsse.json "
                               "that 'reader-study make --key' writes.")
    is_key = isinstance(document, dict) and document.get("kind") == KEY_KIND
    if not is_key or not isinstance(document.get("cases"), list):
        raise ReaderStudyError(f"{path} is not an ecgaudit reader-study answer key.")
    try:
        cases = {str(c["case_id"]): Case(str(c["case_id"]), bool(c["forged"]), str(c["record_id"]),
                                         c.get("attack"), c.get("model_decision")) for c in document["cases"]}
    except (KeyError, TypeError) as exc:
        raise ReaderStudyError(f"{path}: a case entry lacks case_id, forged or record_id.") from exc
    return AnswerKey(cases, signed, keyid, dict(document.get("deck") or {}))


@dataclass(frozen=True)
class Answer:
    forged: bool | None
    diagnosis: str


def read_answers(path: Path, key: AnswerKey) -> dict[str, Answer]:
    """One reader's sheet: case id → answer (forged None when left blank)."""
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError) as exc:
        raise ReaderStudyError(f"answer sheet {path} cannot be read ({exc}).") from exc
    if not rows or [h.strip().lower() for h in rows[0][:1]] != ["case_id"]:
        raise ReaderStudyError(f"{path} does not start with the header {','.join(SHEET_HEADER)}.")
    answers: dict[str, Answer] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not row[0].strip():
            continue
        case_id = row[0].strip()
        if case_id not in key.cases:
            raise ReaderStudyError(f"{path}:{line}: case {case_id!r} is not in the answer key; is it from another "
                                   "deck?")
        if case_id in answers:
            raise ReaderStudyError(f"{path}:{line}: case {case_id} is answered twice.")
        said = row[1].strip().lower() if len(row) > 1 else ""
        if said and said not in _YES | _NO:
            raise ReaderStudyError(f"{path}:{line}: 'forged?' must be yes or no (or blank); got {row[1]!r}.")
        answers[case_id] = Answer(None if not said else said in _YES,
                                  re.sub(r"\s+", " ", row[2]).strip() if len(row) > 2 else "")
    return answers


def _tally(key: AnswerKey, answers: dict[str, Answer], only_attack: str | None = None) -> dict[str, Any]:
    tp = fn = tn = fp = unanswered = 0
    on_forged: dict[str, int] = {}
    on_clean: dict[str, int] = {}
    for case_id, case in key.cases.items():
        if only_attack is not None and case.forged and case.attack != only_attack:
            continue
        answer = answers.get(case_id)
        if answer is None or answer.forged is None:
            unanswered += 1
        elif case.forged:
            tp, fn = tp + answer.forged, fn + (not answer.forged)
        else:
            fp, tn = fp + answer.forged, tn + (not answer.forged)
        if answer is not None and answer.diagnosis:
            bucket = on_forged if case.forged else on_clean
            bucket[answer.diagnosis] = bucket.get(answer.diagnosis, 0) + 1
    return {"confusion": {"tp": tp, "fn": fn, "tn": tn, "fp": fp}, "unanswered": unanswered,
            "diagnoses_on_forged": dict(sorted(on_forged.items())),
            "diagnoses_on_clean": dict(sorted(on_clean.items()))}


def _with_rates(tally: dict[str, Any]) -> dict[str, Any]:
    c = tally["confusion"]
    return {**tally, "sensitivity": wilson(c["tp"], c["tp"] + c["fn"]).to_dict(),
            "specificity": wilson(c["tn"], c["tn"] + c["fp"]).to_dict()}


def _pool(tallies: list[dict[str, Any]]) -> dict[str, Any]:
    pooled: dict[str, Any] = {"confusion": dict.fromkeys(("tp", "fn", "tn", "fp"), 0), "unanswered": 0,
                              "diagnoses_on_forged": {}, "diagnoses_on_clean": {}}
    for t in tallies:
        for k, v in t["confusion"].items():
            pooled["confusion"][k] += v
        pooled["unanswered"] += t["unanswered"]
        for bucket in ("diagnoses_on_forged", "diagnoses_on_clean"):
            for dx, n in t[bucket].items():
                pooled[bucket][dx] = pooled[bucket].get(dx, 0) + n
    return pooled


def score(key_path: Path, answer_paths: list[Path], *, public_key_path: Path | None = None) -> dict[str, Any]:
    """Sensitivity (forged called forged) and specificity (clean called clean) per reader (named by the sheet's
    file stem) and pooled over readers, with 95% Wilson intervals; pooled intervals treat every read as
    independent, which overstates precision when readers differ. Also pooled per attack."""
    key = load_key(key_path, public_key_path)
    if not answer_paths:
        raise ReaderStudyError("give at least one answer sheet (CSV).")
    readers: dict[str, dict[str, Any]] = {}
    sheets: dict[str, dict[str, Answer]] = {}
    for path in answer_paths:
        name = path.stem if path.stem not in readers else f"{path.stem}-{len(readers) + 1}"
        sheets[name] = read_answers(path, key)
        readers[name] = _tally(key, sheets[name])
    attacks = sorted({c.attack for c in key.cases.values() if c.attack})
    per_attack = {}
    for attack in attacks:
        pooled = _pool([_tally(key, answers, attack) for answers in sheets.values()])
        c = pooled["confusion"]
        per_attack[attack] = {"confusion": {"tp": c["tp"], "fn": c["fn"]},
                              "sensitivity": wilson(c["tp"], c["tp"] + c["fn"]).to_dict()}
    return {
        "key": {"path": str(key_path), "verified": key.verified, "keyid": key.keyid,
                "sha256": hashlib.sha256(key_path.read_bytes()).hexdigest(),
                "n_cases": len(key.cases), "n_forged": sum(c.forged for c in key.cases.values())},
        "readers": {name: _with_rates(t) for name, t in readers.items()},
        "pooled": _with_rates(_pool(list(readers.values()))),
        "per_attack": per_attack,
    }
