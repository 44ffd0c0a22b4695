from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_flush_denormal(True)
torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "examples" / "models"
TEST_DATA = REPO / "tests" / "data"
"""Real records shipped with the tests (see tests/data/README.md for sources and licences)."""
CHALLENGE = TEST_DATA / "physionet-challenge-2021"
PTB = TEST_DATA / "ptb-diagnostic"


def data_path(*parts: str) -> Path:
    """A file or folder under tests/data; fails the test loudly (never skips) when the checkout lacks it."""
    path = TEST_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"test data {path} is missing: this checkout of the repository is incomplete "
                    "(tests/data is tracked in git; restore it with `git checkout -- tests/data`).")
    return path


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run `ecgaudit ARGS...` in-process; return (exit code, stdout, stderr)."""
    from ecgaudit._cli import main

    def _run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return int(exit_info.value.code or 0), out, err

    return _run


@pytest.fixture(scope="session")
def examples_on_path() -> None:
    sys.path.insert(0, str(REPO / "examples"))


CHALLENGE_IDS = ("E07509", "E07510", "HR06000", "HR06001", "HR06002", "HR06004", "HR06006", "JS20004")
"""The Challenge-2021 records in tests/data, in the order a folder lists them."""


def pydicom_ecg() -> Path:
    """pydicom's bundled 12-lead ECG (10 s at 1000 Hz, 1.25 µV per unit), shipped in its wheel."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("waveform_ecg.dcm")
    if path is None:
        pytest.fail("pydicom's bundled waveform_ecg.dcm is missing; reinstall pydicom (a dependency of ecgaudit).")
    return Path(path)


def write_dicom(path: Path, digital: np.ndarray, fs: float, *, sensitivity_uv: float = 1.0,
                patient_id: str | None = None) -> Path:
    """A 12-lead DICOM ECG holding `digital` `(12, T)` int16 in standard lead order, on pydicom's file."""
    import pydicom

    ds = pydicom.dcmread(pydicom_ecg())
    del ds.WaveformSequence[1:]  # keep the rhythm group, drop the median beat
    group = ds.WaveformSequence[0]
    group.NumberOfWaveformSamples = digital.shape[1]
    group.SamplingFrequency = fs
    group.WaveformData = np.ascontiguousarray(digital.T, dtype="<i2").tobytes()
    for channel in group.ChannelDefinitionSequence:
        channel.ChannelSensitivity = sensitivity_uv
    if patient_id is not None:
        ds.PatientID = patient_id
    ds.save_as(path)
    return path


@pytest.fixture(scope="session")
def formats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Challenge records as WFDB (as shipped), as DICOM (each record its own patient) and as HL7 aECG
    (no patient) folders, all from the same digital samples."""
    import wfdb

    from ecgaudit.data.aecg import write_aecg
    from ecgaudit.leads import STANDARD_LEADS

    base = tmp_path_factory.mktemp("formats")
    (base / "aecg").mkdir()
    (base / "dicom").mkdir()
    for rid in CHALLENGE_IDS:
        rec = wfdb.rdrecord(str(CHALLENGE / rid), physical=False)
        assert list(rec.sig_name) == list(STANDARD_LEADS) and set(rec.adc_gain) == {1000.0}
        assert set(rec.baseline) == {0}
        write_aecg(base / "aecg" / f"{rid}.xml", rec.d_signal.T / 1000.0, rec.fs, rec.sig_name)
        write_dicom(base / "dicom" / f"{rid}.dcm", rec.d_signal.T, rec.fs, patient_id=rid)
    return {"wfdb": CHALLENGE, "aecg": base / "aecg", "dicom": base / "dicom"}


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory):
    """ecgaudit built into a wheel (through its sdist) and installed in a fresh environment outside the checkout."""
    from tests.installed import build_and_install

    return build_and_install(tmp_path_factory.mktemp("installed"))
