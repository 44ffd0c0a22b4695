"""PTB-XL loading, on a small PTB-XL-shaped root built from the real HR06000-HR06009 records."""

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

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-ecg"
CHALLENGE = REAL / "physionet-challenge-2021"
ROWS_CSV = CHALLENGE / "ptbxl_database_rows_06000-06009.csv"

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real ECG data not found at {REAL}")


def _labels(*names: str) -> list[int]:
    return [int(c in names) for c in SUPERCLASSES]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """records500/06000/060xx_hr (exact copies of the samples) and records100/06000/060xx_lr (1:5)."""
    root = tmp_path_factory.mktemp("ptbxl")
    shutil.copy(ROWS_CSV, root / "ptbxl_database.csv")
    shutil.copy(CHALLENGE / "scp_statements.csv", root / "scp_statements.csv")
    for k in range(6000, 6010):
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


def test_250_hz_model_reads_records100_and_upsamples(root):
    ds = load_ptbxl(root, fs=250, n_samples=2500, leads=STANDARD_LEADS)
    assert ds.X.shape == (2, 12, 2500)
    assert ds.manifest[1] == ("6004", _digest(root, "records100/06000/06004_lr"))
    hr = load_ptbxl(root, fs=500, n_samples=5000, leads=STANDARD_LEADS)
    # the 100 Hz file lacks the 50-125 Hz band, so compare with 500 -> 100 -> 250 Hz of the 500 Hz record
    ref = resample_poly(resample_poly(hr.X[0].astype(float), 1, 5, axis=1), 5, 2, axis=1)
    for j in range(12):
        assert np.corrcoef(ds.X[0, j, 20:-20], ref[j, 20:-20])[0, 1] > 0.999


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
