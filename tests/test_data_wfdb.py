"""WFDB loading and conforming, on the real records in tests/data."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import wfdb
from scipy.signal import decimate, find_peaks, resample_poly

from ecgaudit.data import load_dataset
from ecgaudit.data.conform import RawRecord, conform_records
from ecgaudit.errors import DataError
from ecgaudit.leads import STANDARD_LEADS

from .conftest import data_path

CHALLENGE = data_path("physionet-challenge-2021")
PTB = data_path("ptb-diagnostic")
N_CHALLENGE = 8


def _load(spec: Path | str, fs: float = 500, n: int = 5000, leads=STANDARD_LEADS, **kw):
    return load_dataset(str(spec), fs=fs, n_samples=n, leads=leads, **kw)


def _write(
    tmp: Path,
    name: str,
    d_signal: np.ndarray,
    names: list[str],
    units: str = "mV",
    gain: float = 1000.0,
    fs: float = 500,
) -> Path:
    """Write digital samples exactly (format 16, given gain, baseline 0)."""
    n_sig = d_signal.shape[1]
    wfdb.wrsamp(
        name,
        fs=fs,
        units=[units] * n_sig,
        sig_name=names,
        d_signal=d_signal.astype(np.int64),
        fmt=["16"] * n_sig,
        adc_gain=[gain] * n_sig,
        baseline=[0] * n_sig,
        write_dir=str(tmp),
    )
    return tmp / name


def _digital(name: str) -> tuple[np.ndarray, list[str]]:
    rec = wfdb.rdrecord(str(CHALLENGE / name), physical=False)
    return rec.d_signal, list(rec.sig_name)


@pytest.fixture(scope="module")
def challenge500():
    return _load(CHALLENGE)


def test_every_challenge_record_loads_in_mv(challenge500):
    ds = challenge500
    assert ds.X.shape == (N_CHALLENGE, 12, 5000) and ds.X.dtype == np.float32
    assert np.isfinite(ds.X).all()
    assert ds.leads == STANDARD_LEADS and ds.fs == 500.0
    assert ds.record_ids == tuple(sorted(ds.record_ids)) and len(set(ds.record_ids)) == N_CHALLENGE
    assert len(ds.manifest) == N_CHALLENGE
    # their '# Dx:' SNOMED codes are labels now (tests/test_labels.py checks each one)
    assert ds.labels is not None and ds.vocabulary is not None and ds.vocabulary["n_labelled"] == N_CHALLENGE
    assert ds.patient_ids is None and ds.patient_field is None  # no `# Patient:` comments in these headers
    assert np.abs(ds.X).max() < 20
    lead_ii = ds.X[:, STANDARD_LEADS.index("II")]
    assert 0.3 < np.median(lead_ii.max(axis=1) - lead_ii.min(axis=1)) < 5
    # exact values: physical = digital / 1000 (the HR headers write the unit as lowercase "mv")
    d, _ = _digital("HR06000")
    np.testing.assert_allclose(ds.X[ds.record_ids.index("HR06000")], d.T / 1000.0, atol=1e-6)


def test_real_quality_findings(challenge500):
    found = {(q.record_id, q.lead, q.kind) for q in challenge500.quality}
    # JS20004: all-zero V2, V4, V6; HR06006 ends with 56 samples stuck at the minimum of II and aVF
    assert found == {
        ("JS20004", "V2", "flat"),
        ("JS20004", "V4", "flat"),
        ("JS20004", "V6", "flat"),
        ("HR06006", "II", "clipped"),
        ("HR06006", "aVF", "clipped"),
    }


def test_resample_500_to_100_hz(challenge500):
    ds = _load(CHALLENGE, fs=100, n=1000)
    assert ds.X.shape == (N_CHALLENGE, 12, 1000) and ds.fs == 100.0
    ref = resample_poly(challenge500.X.astype(np.float64), 1, 5, axis=2)
    ref_dec = decimate(challenge500.X.astype(np.float64), 5, ftype="fir", zero_phase=True, axis=2)
    for i in range(N_CHALLENGE):
        for j in range(12):
            if np.ptp(ref[i, j]) < 0.01:
                continue  # the flat leads of JS20004
            assert np.corrcoef(ds.X[i, j, 10:-10], ref[i, j, 10:-10])[0, 1] > 0.999
            assert np.corrcoef(ds.X[i, j, 10:-10], ref_dec[i, j, 10:-10])[0, 1] > 0.99


def test_ptb_1000_to_500_hz_lowercase_15_leads():
    ds = _load(PTB / "s0010_re.hea")
    assert ds.X.shape == (1, 12, 5000) and ds.leads == STANDARD_LEADS and ds.record_ids == ("s0010_re",)
    raw = wfdb.rdrecord(str(PTB / "s0010_re"), channels=list(range(12))).p_signal.T
    ref = decimate(raw, 2, ftype="fir", zero_phase=True, axis=1)[:, :5000]
    for j in range(12):
        assert np.corrcoef(ds.X[0, j], ref[j])[0, 1] > 0.99
    # R peaks of lead II agree within one sample at the new rate
    ii = STANDARD_LEADS.index("II")
    x = raw[ii, :10000]
    sign = 1.0 if x.max() - np.median(x) > np.median(x) - x.min() else -1.0  # the QRS's dominant polarity
    p_raw, _ = find_peaks(sign * x, distance=300, prominence=0.5 * np.ptp(x))
    p_new, _ = find_peaks(sign * ds.X[0, ii], distance=150, prominence=0.5 * np.ptp(ds.X[0, ii]))
    assert len(p_raw) == len(p_new) >= 10
    assert np.abs(p_raw / 2 - p_new).max() <= 1
    # at the native rate the first n samples come back unchanged (crop = first n_samples)
    native = _load(PTB / "s0010_re", fs=1000, n=10000)
    np.testing.assert_allclose(native.X[0], raw[:, :10000], atol=1e-6)
    # longer than the record: zero-padded at the end
    padded = _load(PTB / "s0010_re", fs=1000, n=40000)
    assert np.all(padded.X[0, :, 38400:] == 0)
    np.testing.assert_allclose(padded.X[0, :, :38400], raw, atol=1e-6)


def test_ptb_reads_without_the_frank_lead_file():
    # tests/data ships s0010_re without its .xyz file (the Frank leads vx, vy, vz): reading the 12 standard
    # leads never touches it, and asking for a Frank lead names the missing file.
    assert not (PTB / "s0010_re.xyz").exists()
    assert _load(PTB / "s0010_re").X.shape == (1, 12, 5000)
    with pytest.raises(DataError, match=r"signal file s0010_re\.xyz is missing"):
        _load(PTB / "s0010_re", leads=("II", "vx"))


def test_leads_are_mapped_by_name(tmp_path, challenge500):
    d, names = _digital("E07509")
    order = np.random.default_rng(0).permutation(12)
    shuffled = [names[k].lower() if k % 2 else names[k].upper() for k in order]  # e.g. "avr", "AVL"
    _write(tmp_path, "shuffled", d[:, order], shuffled)
    ds = _load(tmp_path / "shuffled.hea")
    assert ds.leads == STANDARD_LEADS
    np.testing.assert_array_equal(ds.X[0], challenge500.X[challenge500.record_ids.index("E07509")])
    # a model that wants fewer leads, in its own order
    sub = _load(tmp_path / "shuffled", leads=("V6", "ii"))
    assert sub.leads == ("V6", "II")
    np.testing.assert_array_equal(sub.X[0], ds.X[0][[11, 1]])


@pytest.mark.parametrize("unit, gain", [("uV", 1.0), ("µV", 1.0), ("V", 1e6), ("MV", 1000.0)])
def test_units_are_converted_to_mv(tmp_path, unit, gain):
    d, names = _digital("HR06001")
    _write(tmp_path, "units", d, names, units=unit, gain=gain)
    ds = _load(tmp_path / "units")
    np.testing.assert_allclose(ds.X[0], d.T / 1000.0, atol=1e-6)


def test_unknown_unit_is_rejected(tmp_path):
    d, names = _digital("HR06001")
    _write(tmp_path, "furl", d, names, units="mmHg")
    with pytest.raises(DataError, match=r"record furl, lead I has unit 'mmHg'.*mV"):
        _load(tmp_path / "furl")


def test_record_missing_a_lead_is_rejected(tmp_path):
    d, names = _digital("HR06002")
    _write(tmp_path, "eleven", d[:, :11], names[:11])
    with pytest.raises(DataError, match=r"record eleven lacks lead\(s\) V6 that the model needs"):
        _load(tmp_path / "eleven")


def test_missing_signal_file(tmp_path):
    shutil.copy(CHALLENGE / "E07510.hea", tmp_path)
    with pytest.raises(DataError, match=r"record E07510: signal file E07510\.mat is missing"):
        _load(tmp_path / "E07510.hea")


def test_truncated_signal_file(tmp_path):
    shutil.copy(CHALLENGE / "E07510.hea", tmp_path)
    (tmp_path / "E07510.mat").write_bytes((CHALLENGE / "E07510.mat").read_bytes()[:50000])
    with pytest.raises(DataError, match=r"record E07510: signal file E07510\.mat is truncated"):
        _load(tmp_path / "E07510")


def test_nan_samples_are_rejected(tmp_path):
    rec = wfdb.rdrecord(str(CHALLENGE / "HR06004"))
    p = rec.p_signal.copy()
    p[100:103, 1] = np.nan
    wfdb.wrsamp(
        "withnan",
        fs=500,
        units=["mV"] * 12,
        sig_name=rec.sig_name,
        p_signal=p,
        fmt=["16"] * 12,
        write_dir=str(tmp_path),
    )
    # wfdb writes NaN as the format's invalid sample value and reads it back as NaN
    assert np.isnan(wfdb.rdrecord(str(tmp_path / "withnan")).p_signal[100:103, 1]).all()
    with pytest.raises(DataError, match=r"record withnan, lead II holds 3 NaN sample"):
        _load(tmp_path / "withnan")


def test_absurd_sample_count_fails_fast(tmp_path):
    header = (CHALLENGE / "HR06004.hea").read_text().splitlines()
    header[0] = "HR06004 12 500 1000000000000"
    (tmp_path / "HR06004.hea").write_text("\n".join(header) + "\n")
    shutil.copy(CHALLENGE / "HR06004.mat", tmp_path)
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"record HR06004: header claims 12 x 1000000000000 samples"):
        _load(tmp_path / "HR06004")
    assert time.perf_counter() - start < 2


def test_malformed_header(tmp_path):
    (tmp_path / "junk.hea").write_text("this is not a header\n")
    (tmp_path / "junk.hea").write_text("junk 12 500\nthis is not a signal line\n")
    with pytest.raises(DataError, match=r"record junk: header junk\.hea cannot be parsed") as info:
        _load(tmp_path / "junk")
    assert info.value.__cause__ is not None


def test_nonexistent_paths(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        _load(tmp_path / "nothing_here")
    with pytest.raises(DataError, match=r"holds no WFDB header \(\.hea\), DICOM \(\.dcm\) or HL7 aECG \(\.xml\) files"):
        _load(tmp_path)


def test_manifest_and_duplicates(tmp_path, challenge500):
    again = _load(CHALLENGE)
    assert again.manifest == challenge500.manifest
    assert again.manifest_sha256 == challenge500.manifest_sha256
    # the same bytes elsewhere give the same record digest
    for suffix in (".hea", ".mat"):
        shutil.copy(CHALLENGE / f"E07509{suffix}", tmp_path)
    copy = _load(tmp_path / "E07509")
    assert copy.manifest == (("E07509", dict(challenge500.manifest)["E07509"]),)
    # E07509 and E07510: bit-identical .mat and samples, headers differ only in the record name,
    # so the signals are equal but the manifest digests (header + signal bytes) differ
    assert (CHALLENGE / "E07509.mat").read_bytes() == (CHALLENGE / "E07510.mat").read_bytes()
    i, j = challenge500.record_ids.index("E07509"), challenge500.record_ids.index("E07510")
    np.testing.assert_array_equal(challenge500.X[i], challenge500.X[j])
    assert challenge500.manifest[i][1] != challenge500.manifest[j][1]


def test_n_records_caps_and_quality_rules():
    ds = _load(CHALLENGE, n_records=3)
    assert ds.record_ids == ("E07509", "E07510", "HR06000")
    t = np.linspace(0, 10, 5000)
    sig = np.stack([np.sin(2 * np.pi * t), np.full(5000, 0.3), np.sin(2 * np.pi * t)])
    sig[2] = np.clip(sig[2], -0.9, 0.9)  # clipped at both ends, long runs
    rec = RawRecord("synthetic-q", sig, 500.0, ("I", "II", "III"), "0" * 64)
    X, quality = conform_records([rec], fs=500, n_samples=5000, leads=("I", "II", "III"))
    assert X.shape == (1, 3, 5000)
    assert [(q.lead, q.kind) for q in quality] == [("II", "flat"), ("III", "clipped")]
