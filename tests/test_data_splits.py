"""Data hygiene before the craft/eval split: duplicates, patients, flagged records and shortfalls."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgaudit.attacks.harness import split_indices as harness_split_indices
from ecgaudit.data import load_dataset
from ecgaudit.data.interface import EcgDataset
from ecgaudit.data.splits import split_dataset, split_indices
from ecgaudit.errors import DataError
from ecgaudit.leads import STANDARD_LEADS

from .conftest import data_path
from .test_data_ptbxl import build_root

CHALLENGE = data_path("physionet-challenge-2021")
SEEDS = range(40)


def _load(spec: Path | str, fs: float = 500, n: int = 5000) -> EcgDataset:
    return load_dataset(str(spec), fs=fs, n_samples=n, leads=STANDARD_LEADS)


def _ids(ds: EcgDataset, idx: np.ndarray) -> set[str]:
    return {ds.record_ids[i] for i in idx}


@pytest.fixture(scope="module")
def challenge() -> EcgDataset:
    return _load(CHALLENGE)


def test_duplicates_never_straddle_the_split(challenge: EcgDataset) -> None:
    straddled = 0
    for seed in SEEDS:
        split = split_dataset(challenge, n_craft=3, n_eval=3, seed=seed)
        assert "E07510" not in _ids(challenge, split.craft_idx) | _ids(challenge, split.eval_idx)
        craft_bytes = {challenge.X[i].tobytes() for i in split.craft_idx}
        assert not any(challenge.X[i].tobytes() in craft_bytes for i in split.eval_idx)
        assert split.hygiene["duplicates"] == [{"record": "E07510", "duplicate_of": "E07509"}]
        assert split.hygiene["n_usable"] == 7
        craft, evaluation = split_indices(challenge.n_records, n_craft=3, n_eval=3, seed=seed)
        straddled += len({"E07509", "E07510"} & _ids(challenge, craft)) == 1 == len(
            {"E07509", "E07510"} & _ids(challenge, evaluation))
    assert straddled > 0  # without hygiene the pair does land on both sides for some seeds


def test_flagged_records_stay_out_of_eval_and_are_named(challenge: EcgDataset) -> None:
    kept = set()
    for seed in SEEDS:
        split = split_dataset(challenge, n_craft=3, n_eval=3, seed=seed)
        assert not {"JS20004", "HR06006"} & _ids(challenge, split.eval_idx)
        assert split.hygiene["excluded"] == [
            {"record": "HR06006", "reason": "clipped lead(s) II, aVF"},
            {"record": "JS20004", "reason": "flat lead(s) V2, V4, V6"},
        ]
        kept |= _ids(challenge, split_dataset(challenge, n_craft=3, n_eval=3, seed=seed,
                                              keep_flagged=True).eval_idx)
    assert {"JS20004", "HR06006"} <= kept  # keep_flagged lets them into eval


def test_a_shortfall_is_recorded_and_a_minimum_refuses(challenge: EcgDataset) -> None:
    split = split_dataset(challenge, n_craft=64, n_eval=64, seed=0)
    # 8 records, 1 duplicate: 7 usable; eval keeps half of them (3), craft the other 4
    assert split.hygiene["shortfall"] == {"n_craft_asked": 64, "n_craft": 4, "n_eval_asked": 64, "n_eval": 3,
                                          "short": True}
    assert (len(split.craft_idx), len(split.eval_idx)) == (4, 3)
    assert split_dataset(challenge, n_craft=2, n_eval=2, seed=0).hygiene["shortfall"]["short"] is False
    with pytest.raises(DataError, match=r"the eval split holds 3 usable record\(s\), fewer than the profile's "
                                        r"data\.min_n_eval of 4"):
        split_dataset(challenge, n_craft=64, n_eval=64, seed=0, min_n_eval=4)
    assert len(split_dataset(challenge, n_craft=64, n_eval=64, seed=0, min_n_eval=3).eval_idx) == 3


def test_nothing_left_to_evaluate_is_an_error(tmp_path: Path) -> None:
    for rid in ("JS20004", "HR06006"):
        for suffix in (".hea", ".mat"):
            shutil.copy(CHALLENGE / f"{rid}{suffix}", tmp_path)
    with pytest.raises(DataError, match=r"leaving 2 for crafting and 0 for evaluation; supply more distinct, clean"):
        split_dataset(_load(tmp_path), n_craft=4, n_eval=4, seed=0)


def test_splits_are_deterministic_and_plain_data_splits_as_before() -> None:
    ds = _load("builtin:synthetic:n=40,seed=5")
    assert not ds.quality
    for seed in (0, 1, 7):
        split = split_dataset(ds, n_craft=10, n_eval=12, seed=seed)
        again = split_dataset(ds, n_craft=10, n_eval=12, seed=seed)
        assert split.craft_idx.tolist() == again.craft_idx.tolist() and split.hygiene == again.hygiene
        craft, evaluation = harness_split_indices(40, n_craft=10, n_eval=12, seed=seed)
        assert split.craft_idx.tolist() == craft.tolist() and split.eval_idx.tolist() == evaluation.tolist()
        # the plain permutation that split_indices has always drawn
        order = np.random.default_rng(seed).permutation(40)
        assert evaluation.tolist() == order[:12].tolist() and craft.tolist() == order[12:22].tolist()
    assert split.hygiene["patients_split_by"] == "record" and split.hygiene["n_patients"] is None


def _by_patient(root: Path, patients: dict[str, str]) -> Path:
    """`root`'s CSV with every row in fold 10 and `patient_id`s replaced (rows absent from `patients` dropped)."""
    with (root / "ptbxl_database.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, [r for r in reader if r["ecg_id"] in patients]
    for row in rows:
        row["strat_fold"], row["patient_id"] = "10", patients[row["ecg_id"]]
    with (root / "ptbxl_database.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_no_ptbxl_patient_on_both_sides(tmp_path: Path) -> None:
    patients = {"6000": "101.0", "6001": "101.0", "6002": "202.0", "6004": "202.0", "6006": "303.0"}
    root = _by_patient(build_root(tmp_path), patients)
    ds = _load(root)
    assert ds.record_ids == ("6000", "6001", "6002", "6004", "6006")
    assert ds.patient_ids == ("101", "101", "202", "202", "303")
    straddled = 0
    for seed in SEEDS:
        split = split_dataset(ds, n_craft=2, n_eval=2, seed=seed)
        assert not {ds.patient_ids[i] for i in split.craft_idx} & {ds.patient_ids[i] for i in split.eval_idx}
        assert split.hygiene["patients_split_by"] == "patient_id" and split.hygiene["n_patients"] == 3
        craft, evaluation = split_indices(ds.n_records, n_craft=2, n_eval=2, seed=seed)
        straddled += bool({ds.patient_ids[i] for i in craft} & {ds.patient_ids[i] for i in evaluation})
    assert straddled > 0  # a split by record puts one patient on both sides for some seeds


def test_wfdb_patient_comments_group_records(tmp_path: Path) -> None:
    for k, rid in enumerate(("HR06000", "HR06001", "HR06002", "HR06004")):
        rec = wfdb.rdrecord(str(CHALLENGE / rid), physical=False)
        wfdb.wrsamp(rid, fs=500, units=["mV"] * 12, sig_name=rec.sig_name, d_signal=rec.d_signal, fmt=["16"] * 12,
                    adc_gain=[1000.0] * 12, baseline=[0] * 12, comments=[f"Patient: P{k // 2}"],
                    write_dir=str(tmp_path))
    ds = _load(tmp_path)
    assert ds.patient_ids == ("P0", "P0", "P1", "P1") and ds.patient_field == "WFDB header comment Patient"
    for seed in SEEDS:
        split = split_dataset(ds, n_craft=2, n_eval=2, seed=seed)
        assert not {ds.patient_ids[i] for i in split.craft_idx} & {ds.patient_ids[i] for i in split.eval_idx}


def test_a_record_missing_a_lead_is_flagged_not_fatal(tmp_path: Path) -> None:
    for rid in ("HR06000", "HR06001", "HR06002"):
        rec = wfdb.rdrecord(str(CHALLENGE / rid))
        signal, names = rec.p_signal, list(rec.sig_name)
        if rid == "HR06001":
            signal[:, names.index("V3")] = np.nan  # a lead-off electrode: WFDB's "no sample" value throughout
        if rid == "HR06002":
            signal, names = signal[:, :11], names[:11]  # no V6 at all
        wfdb.wrsamp(rid, fs=500, units=["mV"] * len(names), sig_name=names, p_signal=signal,
                    fmt=["16"] * len(names), adc_gain=[1000.0] * len(names), baseline=[0] * len(names),
                    write_dir=str(tmp_path))
    ds = _load(tmp_path)
    assert [(q.record_id, q.lead, q.kind) for q in ds.quality] == [("HR06001", "V3", "missing"),
                                                                  ("HR06002", "V6", "missing")]
    assert not ds.X[1, STANDARD_LEADS.index("V3")].any() and not ds.X[2, STANDARD_LEADS.index("V6")].any()
    split = split_dataset(ds, n_craft=2, n_eval=1, seed=0)
    assert _ids(ds, split.eval_idx) == {"HR06000"}
    assert {e["reason"] for e in split.hygiene["excluded"]} == {"missing lead(s) V3", "missing lead(s) V6"}
