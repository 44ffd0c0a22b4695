"""Hostile data: malformed or malicious DICOM, HL7 aECG and WFDB inputs are one-sentence DataErrors (exit 2),
and nothing outside the data folder is opened while reading them."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
import pytest

import ecgaudit
from ecgaudit.data import load_dataset
from ecgaudit.data.aecg import write_aecg
from ecgaudit.errors import DataError
from ecgaudit.leads import STANDARD_LEADS

from .conftest import MODELS, data_path, pydicom_ecg

CHALLENGE = data_path("physionet-challenge-2021")
_OPENED: list[str] | None = None


def _record_opens(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
        _OPENED.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_record_opens)  # audit hooks cannot be removed; this one records only inside `opened()`


@contextmanager
def opened() -> Iterator[list[str]]:
    """Every file path opened (resolved) while the block runs, from Python's `open` audit events."""
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def _refused(spec: Path, match: str, *, fs: float = 500, n: int = 5000) -> list[str]:
    """Load `spec`, expect a one-sentence DataError matching `match`; return the files opened meanwhile."""
    with opened() as files, pytest.raises(DataError, match=match) as info:
        load_dataset(str(spec), fs=fs, n_samples=n, leads=STANDARD_LEADS)
    message = str(info.value)
    assert not re.search(r"\.\s+[A-Z]", message) and message.endswith("."), f"not one sentence: {message}"
    return files


def _outside(files: list[str], folder: Path) -> list[str]:
    """Opened files that are neither in `folder` nor part of the Python installation (lazy imports)."""
    inside = (str(folder.resolve()), os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix),
              str(Path(ecgaudit.__file__).resolve().parent))
    return [f for f in files if not f.startswith(inside)]


def _cli_refused(run_cli, spec: Path, out: Path, *fragments: str) -> None:
    code, stdout, stderr = run_cli("scan", MODELS / "cnn.onnx", "--profile", "ci", "--data", spec, "--out", out,
                                   "--quiet")
    text = " ".join((stdout + stderr).split())
    assert code == 2 and "Traceback" not in text, text
    for fragment in fragments:
        assert fragment in text, text
    assert not (out / "report.json").exists()


# ---- DICOM


def _dicom(tmp_path: Path, **changes: object) -> Path:
    ds = pydicom.dcmread(pydicom_ecg())
    group = ds.WaveformSequence[0]
    for keyword, value in changes.items():
        setattr(group, keyword, value)
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    ds.save_as(folder / "hostile.dcm")
    return folder / "hostile.dcm"


def test_dicom_waveform_shorter_than_declared_exits_2(run_cli, tmp_path: Path) -> None:
    data = pydicom.dcmread(pydicom_ecg()).WaveformSequence[0].WaveformData
    path = _dicom(tmp_path, WaveformData=data[:-24])
    files = _refused(path, r"waveform data holds 239976 bytes but 12 channels x 10000 samples of 16 bits need "
                           r"240000; the file is truncated")
    assert not _outside(files, path.parent)
    _cli_refused(run_cli, path, tmp_path / "out", "hostile.dcm", "truncated or its header is wrong")


def test_dicom_declaring_more_samples_than_it_holds(tmp_path: Path) -> None:
    _refused(_dicom(tmp_path, NumberOfWaveformSamples=10001), r"holds 240000 bytes but 12 channels x 10001 samples")


def test_dicom_declaring_a_huge_sample_count_fails_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    _refused(_dicom(tmp_path, NumberOfWaveformSamples=2**32 - 1),
             r"declares 12 channels x 4294967295 samples, more than ecgaudit's cap of 100000000")
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("changes, match", [
    ({"WaveformSampleInterpretation": "MB"}, r"encodes samples as 16-bit 'MB'"),
    ({"SamplingFrequency": 0}, r"gives sampling frequency 0; it must be positive"),
    ({"NumberOfWaveformChannels": 11}, r"holds 240000 bytes but 11 channels"),
])
def test_dicom_with_bad_fields(tmp_path: Path, changes: dict, match: str) -> None:
    _refused(_dicom(tmp_path, **changes), match)


def test_dicom_that_is_not_dicom_or_not_a_waveform(tmp_path: Path) -> None:
    (tmp_path / "junk.dcm").write_bytes(b"hello")
    _refused(tmp_path / "junk.dcm", r"file junk\.dcm is not a DICOM file \(it lacks the 'DICM' marker")
    (tmp_path / "cut.dcm").write_bytes(pydicom_ecg().read_bytes()[:5000])
    _refused(tmp_path / "cut.dcm", r"DICOM file cut\.dcm cannot be read \(OSError: No tag to read")
    ds = pydicom.dcmread(pydicom_ecg())
    del ds.WaveformSequence
    ds.save_as(tmp_path / "image.dcm")
    _refused(tmp_path / "image.dcm", r"holds no waveform \(Waveform Sequence\)")


def test_dicom_symlinked_out_of_the_data_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ecg.dcm").symlink_to(pydicom_ecg())
    files = _refused(tmp_path / "data", r"DICOM file ecg\.dcm is a symlink or not a regular file")
    assert str(pydicom_ecg().resolve()) not in files


# ---- HL7 aECG


def _aecg(tmp_path: Path, doctype: str) -> Path:
    """A valid aECG file with `doctype` inserted after the XML declaration."""
    folder = tmp_path / "data"
    folder.mkdir()
    write_aecg(folder / "ecg.xml", np.zeros((12, 10)), 500.0, STANDARD_LEADS)
    text = (folder / "ecg.xml").read_text()
    declaration, body = text.split("\n", 1)
    (folder / "ecg.xml").write_text(f"{declaration}\n{doctype}\n{body.replace('<digits>0', '<digits>&e; 0', 1)}")
    return folder / "ecg.xml"


def test_aecg_with_an_external_entity_reads_nothing_outside(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("41 42 43")
    path = _aecg(tmp_path, f'<!DOCTYPE AnnotatedECG [<!ENTITY e SYSTEM "file://{secret}">]>')
    files = _refused(path, r"aECG file ecg\.xml declares a DTD or entities \(DTDForbidden\)")
    assert str(secret.resolve()) not in files and not _outside(files, path.parent)


def test_aecg_billion_laughs_fails_fast(run_cli, tmp_path: Path) -> None:
    lols = "".join(f'<!ENTITY l{k} "{f"&l{k - 1};" * 10}">' for k in range(1, 10))
    path = _aecg(tmp_path, f'<!DOCTYPE AnnotatedECG [<!ENTITY l0 "1 ">{lols}<!ENTITY e "&l9;">]>')
    start = time.perf_counter()
    _refused(path, r"declares a DTD or entities")
    assert time.perf_counter() - start < 2
    _cli_refused(run_cli, path, tmp_path / "out", "ecg.xml declares a DTD or entities")


def test_aecg_too_large_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.xml"
    with path.open("wb") as fh:
        fh.truncate(200 * 2**20)  # sparse: a 200 MiB file that costs no disk
    with opened() as files:
        _refused(path, r"aECG file huge\.xml is 209715200 bytes, more than ecgaudit's cap of 134217728")
    assert str(path.resolve()) not in files


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace("AnnotatedECG", "ClinicalDocument"), r"root element 'ClinicalDocument', not AnnotatedECG"),
    (lambda t: t[:-40], r"is not well-formed XML"),
    (lambda t: t.replace('unit="s"', 'unit="beats"'), r"the time increment is 0\.002 'beats'"),
    (lambda t: t.replace('<scale value="1.0" unit="uV"', '<scale value="1.0" unit="furlong"', 1),
     r"lead I: scale has unit 'furlong'"),
    (lambda t: t.replace("<digits>0 ", "<digits>0 0 ", 1), r"its leads hold different numbers of samples \(10, 11\)"),
    (lambda t: t.replace("<digits>0 ", "<digits>zero ", 1), r"lead I: its digits are not all numbers"),
])
def test_aecg_malformed(tmp_path: Path, edit, match: str) -> None:
    write_aecg(tmp_path / "bad.xml", np.zeros((12, 10)), 500.0, STANDARD_LEADS)
    (tmp_path / "bad.xml").write_text(edit((tmp_path / "bad.xml").read_text()))
    _refused(tmp_path / "bad.xml", match)


# ---- WFDB (issue 13's data items)


def _wfdb_copy(tmp_path: Path, record: str = "HR06000") -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(CHALLENGE / f"{record}.hea", folder)
    shutil.copy(CHALLENGE / f"{record}.mat", folder)
    return folder / f"{record}.hea"


@pytest.mark.parametrize("fs, shown", [("-500", "'-500'"), ("abc", "'abc'"), ("", "no sampling rate"),
                                       ("0", "sampling rate '0'")])
def test_wfdb_header_without_a_valid_rate_is_refused(tmp_path: Path, fs: str, shown: str) -> None:
    head = _wfdb_copy(tmp_path)
    lines = head.read_text().splitlines()
    lines[0] = f"HR06000 12 {fs}".rstrip()  # wfdb alone would read each of these as 250 Hz
    head.write_text("\n".join(lines) + "\n")
    _refused(head, re.escape(f"header HR06000.hea gives {shown}"))


def test_wfdb_signal_file_symlinked_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    head = _wfdb_copy(tmp_path)
    outside = tmp_path / "outside.mat"
    (head.parent / "HR06000.mat").rename(outside)
    (head.parent / "HR06000.mat").symlink_to(outside)
    files = _refused(head.parent, r"signal file HR06000\.mat is a symlink or not a regular file")
    assert str(outside) not in files and not _outside(files, head.parent)


def test_wfdb_signal_file_outside_the_folder_by_name_is_refused(tmp_path: Path) -> None:
    head = _wfdb_copy(tmp_path)
    shutil.copy(head.parent / "HR06000.mat", tmp_path / "elsewhere.mat")
    head.write_text(head.read_text().replace("HR06000.mat", "../elsewhere.mat"))
    # wfdb's header syntax already refuses a path here; ecgaudit checks the name again before opening it
    files = _refused(head, r"record HR06000: header HR06000\.hea cannot be parsed")
    assert not _outside(files, head.parent)


def test_wfdb_header_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "HR06000.hea").symlink_to(CHALLENGE / "HR06000.hea")
    _refused(tmp_path / "data", r"record HR06000: header HR06000\.hea is a symlink")
