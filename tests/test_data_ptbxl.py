"""PTB-XL loading, on a small PTB-XL-shaped root built from the real HR records in tests/data."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb
from scipy.signal import resample_poly

from ecgaudit.data import SUPERCLASSES, load_dataset
from ecgaudit.data.ptbxl import load_ptbxl
from ecgaudit.errors import DataError
from ecgaudit.leads import STANDARD_LEADS

from .conftest import data_path

CHALLENGE = data_path("physionet-challenge-2021")
ROWS_CSV = CHALLENGE / "ptbxl_database_rows_06000-06009.csv"
HR_IDS = (6000, 6001, 6002, 6004, 6006)
"""The PTB-XL records tests/data holds (as Challenge records HR0xxxx); the CSV lists 6000-6009."""


def _labels(*names: str) -> list[int]:
    return [int(c in names) for c in SUPERCLASSES]


def build_root(root: Path) -> Path:
    """records500/06000/060xx_hr (exact copies of the samples) and records100/06000/060xx_lr (1:5)."""
    shutil.copy(ROWS_CSV, root / "ptbxl_database.csv")
    shutil.copy(CHALLENGE / "scp_statements.csv", root / "scp_statements.csv")
    for k in HR_IDS:
        rec = wfdb.rdrecord(str(CHALLENGE / f"HR{k:05d}"), physical=False)
        for folder, suffix, d in (
            ("records500", "hr", rec.d_signal),
            ("records100", "lr", np.round(resample_poly(rec.d_signal.astype(float), 1, 5, axis=0))),
        ):
            out = root / folder / "06000"
            out.mkdir(parents=True, exist_ok=True)
            wfdb.wrsamp(
                f"{k:05d}_{suffix}",
                fs=500 if suffix == "hr" else 100,
                units=["mV"] * 12,
                sig_name=rec.sig_name,
                d_signal=d.astype(np.int64),
                fmt=["16"] * 12,
                adc_gain=[1000.0] * 12,
                baseline=[0] * 12,
                write_dir=str(out),
            )
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return build_root(tmp_path_factory.mktemp("ptbxl"))


def _digest(root: Path, rel: str) -> str:
    return hashlib.sha256((root / f"{rel}.hea").read_bytes() + (root / f"{rel}.dat").read_bytes()).hexdigest()


def _copy_csv(root: Path, tmp: Path, name: str, drop: str) -> Path:
    """A copy of `root` (by symlinks) with column `drop` removed from `name`."""
    new = tmp / "root"
    new.mkdir()
    for entry in root.iterdir():
        (new / entry.name).symlink_to(entry)
    (new / name).unlink()
    with (root / name).open(newline="") as fh:
        rows = list(csv.reader(fh))
    keep = [i for i, col in enumerate(rows[0]) if col != drop]
    with (new / name).open("w", newline="") as fh:
        csv.writer(fh).writerows([[r[i] for i in keep] for r in rows])
    return new


def test_fold_10_at_500_hz_reads_records500(root):
    ds = load_dataset(str(root), fs=500, n_samples=5000, leads=STANDARD_LEADS)
    assert ds.record_ids == ("6000", "6004")
    assert ds.X.shape == (2, 12, 5000) and ds.X.dtype == np.float32 and ds.fs == 500.0
    assert ds.leads == STANDARD_LEADS and ds.classes == SUPERCLASSES
    assert ds.labels.tolist() == [_labels("NORM"), _labels("NORM")]
    assert ds.manifest == (
        ("6000", _digest(root, "records500/06000/06000_hr")),
        ("6004", _digest(root, "records500/06000/06004_hr")),
    )
    real = wfdb.rdrecord(str(CHALLENGE / "HR06000"), physical=False).d_signal.T / 1000.0
    np.testing.assert_allclose(ds.X[0], real, atol=1e-6)
    assert "filename_hr" in ds.source


def test_100_hz_model_reads_records100(root):
    ds = load_dataset(str(root), fs=100, n_samples=1000, leads=STANDARD_LEADS)
    assert ds.record_ids == ("6000", "6004") and ds.X.shape == (2, 12, 1000)
    assert ds.manifest[0] == ("6000", _digest(root, "records100/06000/06000_lr"))
    assert "filename_lr" in ds.source


@pytest.mark.parametrize("fs", [101.0, 250.0])
def test_any_model_above_100_hz_reads_records500(root, fs):
    n = round(10 * fs)
    ds = load_ptbxl(root, fs=fs, n_samples=n, leads=STANDARD_LEADS)
    assert ds.X.shape == (2, 12, n) and "filename_hr" in ds.source
    assert ds.manifest[1] == ("6004", _digest(root, "records500/06000/06004_hr"))
    if fs == 250.0:
        # 500 -> 250 Hz of the 500 Hz file keeps the 50-125 Hz band that the 100 Hz file has lost
        hr = load_ptbxl(root, fs=500, n_samples=5000, leads=STANDARD_LEADS)
        np.testing.assert_allclose(ds.X[0], resample_poly(hr.X[0].astype(float), 1, 2, axis=1, padtype="edge"),
                                   atol=1e-5)


def test_labels_of_other_folds(root):
    ds = load_ptbxl(root, fs=500, n_samples=5000, leads=STANDARD_LEADS, fold=7)
    assert ds.record_ids == ("6001",) and ds.labels.tolist() == [_labels("STTC")]  # NST_
    ds = load_ptbxl(root, fs=500, n_samples=5000, leads=STANDARD_LEADS, fold=4)
    assert ds.record_ids == ("6002", "6006")
    assert ds.labels.tolist() == [_labels("NORM", "CD"), _labels("NORM")]  # NORM + IRBBB; SBRAD is a rhythm
    ds = load_ptbxl(root, fs=500, n_samples=5000, leads=STANDARD_LEADS, fold=4, n_records=1)
    assert ds.record_ids == ("6002",)


def test_records_without_a_diagnostic_superclass_keep_zero_labels(root, tmp_path):
    new = _copy_csv(root, tmp_path, "ptbxl_database.csv", drop="")
    text = (new / "ptbxl_database.csv").read_text()
    text = text.replace("{'NORM': 100.0, 'NT_': 0.0, 'SR': 0.0}", "{'SR': 0.0}")
    (new / "ptbxl_database.csv").unlink()
    (new / "ptbxl_database.csv").write_text(text)
    ds = load_ptbxl(new, fs=500, n_samples=5000, leads=STANDARD_LEADS)
    assert ds.labels.tolist() == [_labels(), _labels("NORM")]


def test_patient_ids_are_read(root):
    ds = load_ptbxl(root, fs=500, n_samples=5000, leads=STANDARD_LEADS)
    assert ds.patient_field == "patient_id" and ds.patient_ids == ("5028", "2482")  # written 5028.0, 2482.0


@pytest.mark.parametrize(
    "name, column",
    [
        ("ptbxl_database.csv", "strat_fold"),
        ("ptbxl_database.csv", "scp_codes"),
        ("ptbxl_database.csv", "filename_hr"),
        ("scp_statements.csv", "diagnostic_class"),
    ],
)
def test_missing_column(root, tmp_path, name, column):
    new = _copy_csv(root, tmp_path, name, drop=column)
    with pytest.raises(DataError, match=rf"PTB-XL file .*{name} has no column '{column}'"):
        load_dataset(str(new), fs=500, n_samples=5000, leads=STANDARD_LEADS)


def test_missing_lr_column_only_matters_for_a_slow_model(root, tmp_path):
    new = _copy_csv(root, tmp_path, "ptbxl_database.csv", drop="filename_lr")
    assert load_dataset(str(new), fs=500, n_samples=5000, leads=STANDARD_LEADS).n_records == 2
    with pytest.raises(DataError, match="has no column 'filename_lr'"):
        load_dataset(str(new), fs=100, n_samples=1000, leads=STANDARD_LEADS)


def test_bad_rows(root, tmp_path):
    new = _copy_csv(root, tmp_path, "ptbxl_database.csv", drop="")
    text = (new / "ptbxl_database.csv").read_text()
    (new / "ptbxl_database.csv").unlink()
    (new / "ptbxl_database.csv").write_text(text.replace("{'NORM': 100.0, 'SR': 0.0}\"", 'NORM"', 1))
    with pytest.raises(DataError, match="scp_codes of ecg_id 6004 is not a dict literal"):
        load_ptbxl(new, fs=500, n_samples=5000, leads=STANDARD_LEADS)
    with pytest.raises(DataError, match="lists no records in strat_fold 11"):
        load_ptbxl(root, fs=500, n_samples=5000, leads=STANDARD_LEADS, fold=11)
    (new / "ptbxl_database.csv").unlink()
    (new / "ptbxl_database.csv").write_text(text.replace("records500/06000/06000_hr", "../../etc/passwd"))
    with pytest.raises(DataError, match="does not point inside"):
        load_ptbxl(new, fs=500, n_samples=5000, leads=STANDARD_LEADS)


def test_missing_record_file(root, tmp_path):
    new = _copy_csv(root, tmp_path, "ptbxl_database.csv", drop="")
    (new / "records500").unlink()
    shutil.copytree(root / "records500", new / "records500")
    (new / "records500" / "06000" / "06004_hr.dat").unlink()
    with pytest.raises(DataError, match=r"record 06004_hr: signal file 06004_hr\.dat is missing"):
        load_ptbxl(new, fs=500, n_samples=5000, leads=STANDARD_LEADS)
