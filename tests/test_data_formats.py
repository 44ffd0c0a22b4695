"""DICOM ECG waveforms and HL7 aECG: read from real files, and the same signal gives the same decisions
as from WFDB on a bundled model."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import wfdb

from ecgaudit.data import load_dataset
from ecgaudit.data.aecg import write_aecg
from ecgaudit.data.splits import split_dataset
from ecgaudit.errors import DataError
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.models import load_model

from .conftest import CHALLENGE_IDS, MODELS, data_path, pydicom_ecg

CHALLENGE = data_path("physionet-challenge-2021")
def _load(spec: Path, fs: float = 500, n: int = 5000, leads=STANDARD_LEADS):
    return load_dataset(str(spec), fs=fs, n_samples=n, leads=leads)


def test_pydicom_ecg_reads_in_mv_with_its_leads_and_patient() -> None:
    ds = _load(pydicom_ecg(), fs=1000, n=10000)
    assert ds.record_ids == ("waveform_ecg",) and ds.X.shape == (1, 12, 10000) and ds.leads == STANDARD_LEADS
    # pydicom's own converter gives µV in the file's channel order (I, II, III, aVR, ... V6)
    reference = pydicom.dcmread(pydicom_ecg()).waveform_array(0).T / 1000.0
    np.testing.assert_allclose(ds.X[0], reference, atol=1e-7)
    assert ds.patient_field == "DICOM PatientID" and ds.patient_ids == ("642341",)
    assert ds.source.startswith("dicom:")


def test_dicom_leads_by_code_units_and_baseline(tmp_path: Path) -> None:
    """Channels shuffled and coded in MDC (2:N) with odd meanings, sensitivity in mV, a baseline: same mV."""
    ds = pydicom.dcmread(pydicom_ecg())
    group = ds.WaveformSequence[0]
    stored = np.frombuffer(group.WaveformData, dtype="<i2").reshape(-1, 12)
    order = np.random.default_rng(3).permutation(12)
    group.WaveformData = np.ascontiguousarray(stored[:, order] - 7).tobytes()  # stored - 7, baseline + 7
    channels = [group.ChannelDefinitionSequence[int(k)] for k in order]
    group.ChannelDefinitionSequence = channels
    for channel in channels:
        source = channel.ChannelSourceSequence[0]
        source.CodeValue = "2:" + source.CodeValue.rsplit("-", 1)[1]
        source.CodingSchemeDesignator, source.CodeMeaning = "MDC", "something vendor-specific"
        channel.ChannelSensitivity = 0.00125
        channel.ChannelSensitivityUnitsSequence[0].CodeValue = "mV"
        channel.ChannelBaseline = 7
    ds.save_as(tmp_path / "shuffled.dcm")
    np.testing.assert_allclose(_load(tmp_path / "shuffled.dcm", fs=1000, n=10000).X,
                               _load(pydicom_ecg(), fs=1000, n=10000).X, atol=1e-6)


def test_public_aecg_example() -> None:
    """FDA's minimal aECG (CC0): lead II, 13 samples at 500 Hz, 2.5 µV per digit, subject SBJ-123."""
    path = data_path("aecg", "minimum_aecg.xml")
    digits = [int(t) for t in re.search(r"<digits>(.*?)</digits>", path.read_text()).group(1).split()]
    ds = _load(path, fs=500, n=13, leads=("II",))
    np.testing.assert_allclose(ds.X[0, 0], np.array(digits) * 2.5 / 1000, atol=1e-9)
    assert ds.patient_ids == ("SBJ-123",) and ds.patient_field == "aECG trialSubject id"
    with pytest.raises(DataError, match=r"record minimum_aecg lacks lead\(s\) I, III, aVR"):
        _load(path)


def test_the_same_records_read_alike_from_wfdb_aecg_and_dicom(formats) -> None:
    loaded = {kind: _load(path) for kind, path in formats.items()}
    assert loaded["dicom"].patient_ids == CHALLENGE_IDS and loaded["aecg"].patient_ids is None
    for kind in ("aecg", "dicom"):
        assert loaded[kind].record_ids == loaded["wfdb"].record_ids
        # integer µV samples: every format gives exactly WFDB's digital / 1000
        assert loaded[kind].X.tobytes() == loaded["wfdb"].X.tobytes()
        assert loaded[kind].quality == loaded["wfdb"].quality
        # hygiene is the same whatever the format: E07510 repeats E07509, JS20004 and HR06006 are flagged
        hygiene = split_dataset(loaded[kind], n_craft=3, n_eval=3, seed=0).hygiene
        assert hygiene["duplicates"] == [{"record": "E07510", "duplicate_of": "E07509"}]
        assert {e["record"] for e in hygiene["excluded"]} == {"HR06006", "JS20004"}


def test_same_decisions_from_every_format_on_the_bundled_cnn(formats, tmp_path: Path) -> None:
    model = load_model(MODELS / "cnn.onnx")
    card = model.card
    # pydicom's real 1000 Hz ECG, also written as WFDB (800 adu/mV) and as aECG (1.25 µV digits)
    stored = pydicom.dcmread(pydicom_ecg()).waveform_array(0).T  # µV: 1.25 x the stored integers
    digital = np.rint(stored / 1.25).astype(np.int64)
    wfdb.wrsamp("ecg", fs=1000, units=["mV"] * 12, sig_name=list(STANDARD_LEADS), d_signal=digital.T,
                fmt=["16"] * 12, adc_gain=[800.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    write_aecg(tmp_path / "ecg.xml", stored / 1000.0, 1000.0, STANDARD_LEADS, scale_uv=1.25)
    sources = {**formats, "dicom file": pydicom_ecg(), "wfdb file": tmp_path / "ecg.hea",
               "aecg file": tmp_path / "ecg.xml"}
    data = {k: load_dataset(str(v), fs=card.fs, n_samples=card.n_samples, leads=card.leads)
            for k, v in sources.items()}
    decisions = {k: model.decide(model.predict(ds.X)) for k, ds in data.items()}
    for kind in ("aecg", "dicom"):
        np.testing.assert_array_equal(decisions[kind], decisions["wfdb"])
    for kind in ("dicom file", "aecg file"):
        np.testing.assert_allclose(data[kind].X, data["wfdb file"].X, atol=1e-6)
        np.testing.assert_array_equal(decisions[kind], decisions["wfdb file"])
    assert len(set(decisions["wfdb"].tolist())) > 1  # the records are not all one class: decisions can differ


def test_inspect_reads_a_dicom_file_and_an_aecg_folder(run_cli, formats) -> None:
    for spec, n in ((pydicom_ecg(), 1), (formats["aecg"], len(CHALLENGE_IDS))):
        code, out, err = run_cli("inspect", MODELS / "cnn.onnx", "--data", spec, "--json")
        assert code == 0, err
        assert json.loads(out)["data"]["n_records"] == n


def test_a_folder_mixing_formats_is_refused(tmp_path: Path, formats) -> None:
    shutil.copy(formats["dicom"] / "E07509.dcm", tmp_path)
    shutil.copy(formats["aecg"] / "E07510.xml", tmp_path)
    with pytest.raises(DataError, match=r"holds HL7 aECG \(\.xml\) and DICOM \(\.dcm\) files; put each format"):
        _load(tmp_path)
    (tmp_path / "E07510.xml").unlink()
    shutil.copy(formats["dicom"] / "E07509.dcm", tmp_path / "no-extension")
    assert _load(tmp_path / "no-extension").record_ids == ("no-extension",)  # found by its DICM marker
