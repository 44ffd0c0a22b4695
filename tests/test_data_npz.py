"""`.npz` data sets (built from real records) and `load_dataset`'s dispatch."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgaudit.data import SUPERCLASSES, EcgDataset, QualityIssue, load_dataset
from ecgaudit.errors import DataError
from ecgaudit.leads import STANDARD_LEADS

from .conftest import MODELS, data_path

CHALLENGE = data_path("physionet-challenge-2021")
NAMES = ("E07509", "HR06001", "HR06000", "HR06002")


@pytest.fixture(scope="module")
def real_x() -> np.ndarray:
    """(4, 12, 5000) mV from real Challenge records, standard lead order."""
    return np.stack([wfdb.rdrecord(str(CHALLENGE / n)).p_signal.T for n in NAMES]).astype(np.float32)


def _save(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _load(path: Path | str, fs: float = 500, n: int = 5000, leads=STANDARD_LEADS, **kw) -> EcgDataset:
    return load_dataset(str(path), fs=fs, n_samples=n, leads=leads, **kw)


def test_npz_leads_by_name_and_labels(tmp_path, real_x):
    order = np.random.default_rng(1).permutation(12)
    leads = np.array([STANDARD_LEADS[k].lower() for k in order])
    path = _save(
        tmp_path / "set.npz", X=real_x[:, order], y=np.array([0, 3, 1, 0]), fs=np.float64(500), leads=leads
    )
    ds = _load(path)
    assert ds.X.shape == (4, 12, 5000) and ds.X.dtype == np.float32 and ds.leads == STANDARD_LEADS
    np.testing.assert_array_equal(ds.X, real_x)
    assert ds.classes == SUPERCLASSES and ds.labels.dtype == np.uint8
    assert ds.labels.tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 1, 0], [0, 1, 0, 0, 0], [1, 0, 0, 0, 0]]
    assert ds.record_ids == ("set-0", "set-1", "set-2", "set-3")
    # sha256 per record = sha256 of X[i] as float32, C order, in the file's lead order
    digest = hashlib.sha256(np.ascontiguousarray(real_x[2, order]).tobytes()).hexdigest()
    assert ds.manifest[2] == ("set-2", digest)
    assert _load(path).manifest_sha256 == ds.manifest_sha256
    assert ds.source.startswith("npz:")


def test_npz_resamples_multi_hot_classes_and_ids(tmp_path, real_x):
    y = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]], dtype=np.uint8)
    path = _save(
        tmp_path / "mh.npz",
        X=real_x.astype(np.float64),
        y=y,
        fs=500,
        leads=np.array(STANDARD_LEADS),
        classes=np.array(["a", "b", "c"]),
        record_ids=np.array(list(NAMES)),
    )
    ds = _load(path, fs=100, n=1000, n_records=3)
    assert ds.X.shape == (3, 12, 1000) and ds.fs == 100.0
    assert ds.record_ids == NAMES[:3] and ds.classes == ("a", "b", "c")
    assert ds.labels.tolist() == y[:3].tolist()
    lead_ii = ds.X[:, 1]
    assert 0.3 < np.median(lead_ii.max(axis=1) - lead_ii.min(axis=1)) < 5


def _ok_arrays(**over) -> dict:
    arrays = {
        "X": np.zeros((2, 12, 100), np.float32) + np.linspace(0, 1, 100, dtype=np.float32),
        "y": np.array([0, 1]),
        "fs": np.array(100.0),
        "leads": np.array(STANDARD_LEADS),
    }
    arrays.update(over)
    return {k: v for k, v in arrays.items() if v is not None}


def test_npz_without_y(tmp_path):
    path = _save(tmp_path / "noy.npz", **_ok_arrays(y=None))
    with pytest.raises(DataError, match=r"noy\.npz has no array 'y'"):
        _load(path, fs=100, n=100)


def test_npz_with_object_array(tmp_path):
    path = _save(tmp_path / "obj.npz", **_ok_arrays(record_ids=np.array([{"a": 1}, "b"], dtype=object)))
    with pytest.raises(DataError, match="holds pickled objects; ecgaudit refuses to unpickle data"):
        _load(path, fs=100, n=100)
    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(pickle.dumps({"X": np.zeros(3)}))
    with pytest.raises(DataError, match="refuses to unpickle"):
        _load(pickled, fs=100, n=100)


@pytest.mark.parametrize(
    "over, message",
    [
        ({"y": np.array([0, 7])}, r"label 7 of record 1 is outside the 5 classes"),
        ({"y": np.array([[1, 0], [0, 1]])}, r"'y' has shape \(2, 2\)"),
        ({"y": np.array([[2, 0, 0, 0, 0], [0, 1, 0, 0, 0]])}, "values other than 0 and 1"),
        ({"fs": np.array([100.0, 200.0])}, "'fs' must be one positive number"),
        ({"leads": np.array(STANDARD_LEADS[:11])}, "'leads' names 11 leads but X has 12"),
        ({"X": np.zeros((2, 100))}, r"'X' must be a numeric \(N, leads, samples\) array"),
        ({"record_ids": np.array(["a", "a"])}, "holds record id a more than once"),
    ],
)
def test_npz_bad_contents(tmp_path, over, message):
    path = _save(tmp_path / "bad.npz", **_ok_arrays(**over))
    with pytest.raises(DataError, match=message):
        _load(path, fs=100, n=100)


def test_npz_non_finite_and_missing_lead(tmp_path):
    X = _ok_arrays()["X"].copy()
    X[1, 4, 50] = np.inf
    with pytest.raises(DataError, match="record inf-1, lead aVL holds 1 infinite sample"):
        _load(_save(tmp_path / "inf.npz", **_ok_arrays(X=X)), fs=100, n=100)
    eleven = _ok_arrays(X=X[:, :11], leads=np.array(STANDARD_LEADS[:11]))
    with pytest.raises(DataError, match=r"record eleven-0 lacks lead\(s\) V6 that the model needs"):
        _load(_save(tmp_path / "eleven.npz", **eleven), fs=100, n=100)
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match=r"is not a \.npz \(zip\) archive"):
        _load(tmp_path / "garbage.npz", fs=100, n=100)


@pytest.mark.parametrize("command", [("inspect",), ("scan", "--profile", "ci", "--quiet")])
def test_npz_with_no_records_is_exit_2(run_cli, tmp_path: Path, command: tuple[str, ...]) -> None:
    path = _save(tmp_path / "empty.npz", **_ok_arrays(X=np.zeros((0, 12, 5000), np.float32), y=np.zeros(0, int),
                                                      fs=np.array(500.0)))
    code, out, err = run_cli(command[0], MODELS / "cnn.onnx", *command[1:], "--data", path,
                             *(("--out", tmp_path / "o") if command[0] == "scan" else ()))
    assert code == 2, out + err
    assert "internal error" not in err and f"{path} holds no records" in " ".join(err.split())


def test_identical_data_identical_manifest(tmp_path):
    a = _load(_save(tmp_path / "a.npz", **_ok_arrays()), fs=100, n=100)
    b = _load(_save(tmp_path / "b.npz", **_ok_arrays(record_ids=np.array(["a-0", "a-1"]))), fs=100, n=100)
    assert a.manifest == b.manifest and a.manifest_sha256 == b.manifest_sha256
    c = _load(_save(tmp_path / "a.npz", **_ok_arrays(y=np.array([4, 4]))), fs=100, n=100)
    assert c.manifest_sha256 == a.manifest_sha256  # labels are not part of the record digest


def test_dispatch_errors(tmp_path):
    with pytest.raises(DataError, match="unknown built-in data set 'mitbih'"):
        _load("builtin:mitbih")
    with pytest.raises(DataError, match="builtin:synthetic takes only n=<int> and seed=<int>"):
        _load("builtin:synthetic:n=3,colour=red")
    with pytest.raises(DataError, match="n must be an integer, not 'many'"):
        _load("builtin:synthetic:n=many")
    with pytest.raises(DataError, match="does not exist"):
        _load(tmp_path / "absent.npz")
    with pytest.raises(DataError, match="does not exist"):
        _load(str(tmp_path / "absent"))
    (tmp_path / "E1.mat").write_bytes(b"")
    with pytest.raises(DataError, match=r"is not a \.npz, DICOM \(\.dcm\) or HL7 aECG \(\.xml\) file, a WFDB header"):
        _load(tmp_path / "E1.mat")


@pytest.mark.parametrize("option, key", [("seed=-1", "seed"), ("n=0", "n"), ("n=-5", "n")])
def test_bad_synthetic_option_is_exit_2_naming_it(run_cli, option: str, key: str) -> None:
    code, out, err = run_cli("inspect", MODELS / "cnn.onnx", "--data", f"builtin:synthetic:{option}")
    assert code == 2, out + err
    assert "internal error" not in err and f"{option}': {key} must be" in " ".join(err.split())


def test_synthetic_records_beyond_available_memory_are_refused(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import ecgaudit.data.memory as memory

    record_bytes = (12 + 12) * 1000 * 4  # generated and conformed copies of one 12-lead, 1000-sample record
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 5 * record_bytes + 1)
    assert _load("builtin:synthetic:n=5", fs=100, n=1000).X.shape == (5, 12, 1000)
    with pytest.raises(DataError, match=r"needs 0\.5 MiB for 6 records .* ask for at most n=5\."):
        _load("builtin:synthetic:n=6", fs=100, n=1000)
    code, out, err = run_cli("inspect", MODELS / "cnn-ml100.onnx", "--data", "builtin:synthetic:n=1000000000")
    assert code == 2, out + err
    assert "1,000,000,000 records" in err and "at most n=5." in " ".join(err.split())


def test_available_memory_reads_memavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    import ecgaudit.data.memory as memory

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemFree:          100 kB\nMemAvailable:    2048 kB\n")
    monkeypatch.setattr(memory, "MEMINFO", meminfo)
    assert memory.available_memory_bytes() == 2048 * 1024
    monkeypatch.setattr(memory, "MEMINFO", tmp_path / "absent")
    if hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        assert memory.available_memory_bytes() == os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_reexports():
    import ecgaudit.data as data

    assert set(data.__all__) == {"EcgDataset", "QualityIssue", "SUPERCLASSES", "load_dataset"}
    assert QualityIssue("r", "II", "flat").kind == "flat"


def test_builtin_synthetic():
    ds = _load("builtin:synthetic:n=10,seed=5", fs=100, n=1000, leads=("V1", "II"))
    assert ds.X.shape == (10, 2, 1000) and ds.X.dtype == np.float32 and ds.leads == ("V1", "II")
    assert ds.record_ids[0] == "synthetic-5-0" and ds.labels.shape == (10, 5)
    assert (ds.labels.sum(axis=1) == 1).all() and ds.classes == SUPERCLASSES
    again = _load("builtin:synthetic:n=10,seed=5", fs=100, n=1000, leads=("V1", "II"), n_records=4)
    assert again.record_ids == ds.record_ids[:4] and again.manifest == ds.manifest[:4]
    np.testing.assert_array_equal(again.X, ds.X[:4])
    default = _load("builtin:synthetic", fs=100, n=1000, n_records=2)
    assert default.record_ids == ("synthetic-2026-0", "synthetic-2026-1")
    assert default.source == "builtin:synthetic:n=300,seed=2026"
