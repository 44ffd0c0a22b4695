"""Memory that grows with the batch, not with the records: sources are conformed one record at a time, and
measurement and the runtime's preprocessing work a batch at a time with the same results as all at once."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ecgaudit.attacks.measure import measure_records
from ecgaudit.data import load_dataset
from ecgaudit.data.conform import RawRecord, build_dataset
from ecgaudit.data.interface import SUPERCLASSES
from ecgaudit.evaluation import evaluate_clean
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.metrics import RECORDS_AT_ONCE, snr_db, ssim_1d
from ecgaudit.models import load_model

from .conftest import MODELS, REPO


def test_a_streamed_source_is_conformed_one_record_at_a_time() -> None:
    alive: list[weakref.ref] = []
    most_alive = 0

    def records() -> Iterator[RawRecord]:
        nonlocal most_alive
        rng = np.random.default_rng(0)
        for i in range(12):
            gc.collect()
            most_alive = max(most_alive, sum(ref() is not None for ref in alive))
            signal = rng.normal(scale=0.3, size=(12, 2500))
            alive.append(weakref.ref(signal))
            yield RawRecord(f"r{i}", signal, 250.0, STANDARD_LEADS, f"{i:064x}")

    dataset = build_dataset(records(), count=12, fs=500.0, n_samples=5000, leads=STANDARD_LEADS, classes=None,
                            source="stream")
    assert dataset.n_records == 12 and dataset.X.shape == (12, 12, 5000)
    # While record i is read, record i-1 may still be referenced by the generator frame; none before it may.
    assert most_alive <= 1, f"{most_alive} earlier records' samples were still held while a new one was read"


def test_a_source_that_yields_other_than_it_announced_is_a_bug_not_a_dataset() -> None:
    record = RawRecord("r", np.zeros((12, 5000)), 500.0, STANDARD_LEADS, "0" * 64)
    with pytest.raises(ValueError, match="announced"):
        build_dataset(iter([record]), count=2, fs=500.0, n_samples=5000, leads=STANDARD_LEADS, classes=None,
                      source="s")


def test_batched_measurement_gives_the_whole_set_means() -> None:
    model = load_model(MODELS / "cnn.onnx")
    n = 2 * RECORDS_AT_ONCE + 7  # two full batches and a short one
    dataset = load_dataset(f"builtin:synthetic:n={n},seed=5", fs=500.0, n_samples=5000, leads=STANDARD_LEADS)
    clean = evaluate_clean(model, dataset)
    rng = np.random.default_rng(1)
    for delta in (rng.uniform(-0.05, 0.05, size=(12, 5000)).astype(np.float32),
                  rng.uniform(-0.05, 0.05, size=dataset.X.shape).astype(np.float32)):
        metrics, fooled, adv = measure_records(model, dataset, clean, delta, cutoff_hz=None)
        x_adv = dataset.X + delta
        assert metrics["snr_db"] == pytest.approx(snr_db(dataset.X, np.broadcast_to(delta, dataset.X.shape)),
                                                  rel=1e-9)
        assert metrics["ssim"] == pytest.approx(ssim_1d(dataset.X, x_adv, dataset.fs), rel=1e-9)
        whole = model.decide(model.predict(x_adv, batch_size=n))
        assert np.array_equal(adv, whole) and fooled.sum() == (whole != clean.decisions).sum()


def test_the_runtime_prepares_each_chunk_as_it_would_prepare_all_records(tmp_path: Path) -> None:
    # A card with a band-pass and a z-score in front: chunked preparation must not change a single output.
    card = (MODELS / "cnn.card.json").read_text().replace(
        '"preprocessing": []', '"preprocessing": [{"kind": "filtfilt", "low_hz": 0.5, "high_hz": 40.0, "order": 4}]')
    (tmp_path / "cnn.onnx").write_bytes((MODELS / "cnn.onnx").read_bytes())
    (tmp_path / "cnn.card.json").write_text(card)
    model = load_model(tmp_path / "cnn.onnx")
    assert model.card.preprocessing, "the card's band-pass was not read"
    x = load_dataset("builtin:synthetic:n=20,seed=3", fs=500.0, n_samples=5000, leads=STANDARD_LEADS).X
    np.testing.assert_allclose(model.raw_predict(x, batch_size=3), model.raw_predict(x, batch_size=20),
                               rtol=1e-5, atol=1e-5)


def test_the_ptbxl_shaped_benchmark_root_reads_as_ptbxl(tmp_path: Path) -> None:
    root = tmp_path / "ptbxl"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_ptbxl_fold.py"), str(root), "--n-records", "6"],
                   check=True, capture_output=True, cwd=REPO)
    for fs, n_samples in ((500.0, 5000), (100.0, 1000)):
        dataset = load_dataset(str(root), fs=fs, n_samples=n_samples, leads=STANDARD_LEADS)
        assert dataset.n_records == 6 and dataset.classes == SUPERCLASSES
        assert dataset.labels is not None and (dataset.labels.sum(axis=1) == 1).all()
        assert dataset.patient_ids is not None and len(set(dataset.patient_ids)) == 4  # two records per patient
        # 16-bit samples at 1000 per mV: a synthetic ECG keeps its millivolt scale to the µV
        assert 0.3 < np.abs(dataset.X).max() < 5.0


def test_the_clinical_block_measured_a_batch_at_a_time_equals_the_whole_set() -> None:
    from ecgaudit.clinical.leads import einthoven_residual_mv, einthoven_residuals
    from ecgaudit.clinical.measure import fooling_after_highpass, front_end_highpass, st_change
    from ecgaudit.clinical.st import detect_r_peaks, st_deviations

    model = load_model(MODELS / "cnn.onnx")
    x = load_dataset("builtin:synthetic:n=70,seed=8", fs=500.0, n_samples=5000, leads=STANDARD_LEADS).X
    delta = np.random.default_rng(2).uniform(-0.1, 0.1, size=x.shape).astype(np.float32)
    assert einthoven_residual_mv(delta, STANDARD_LEADS) == pytest.approx(
        float(np.sqrt(np.mean(einthoven_residuals(delta, STANDARD_LEADS) ** 2))), rel=1e-12)
    r_peaks = [detect_r_peaks(record, 500.0, STANDARD_LEADS) for record in x]
    clean = st_deviations(x, 500.0, r_peaks)
    whole = st_deviations(x + delta, 500.0, r_peaks, clean.fiducials)
    both = clean.measured & whole.measured
    st = st_change(x, delta, 500.0, STANDARD_LEADS)
    assert st["n_measured"] == int(both.sum()) > 0
    assert st["per_lead"]["V2"]["adversarial_j_mv"] == pytest.approx(float(np.median(whole.st_j_mv[both, 6 + 1])))
    decisions = model.decide(model.predict(x))
    front_end = fooling_after_highpass(x, delta, 500.0, model.predict, model.decide, clean_decisions=decisions)
    for entry in front_end["highpass"]:
        adv = model.decide(model.predict(x + front_end_highpass(delta, 500.0, entry["cutoff_hz"])))
        assert entry["fooling_rate"]["successes"] == int((adv != decisions).sum())


def test_samples_on_disk_are_the_records_writable_privately_and_leave_no_file(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    from ecgaudit.data.interface import samples_on_disk

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    X = np.random.default_rng(0).normal(size=(70, 12, 500)).astype(np.float32)  # more than one write chunk
    index = np.array([69, 3, 3, 40, 0])
    mapped = samples_on_disk(X, index)
    assert type(mapped) is np.ndarray and mapped.dtype == np.float32
    assert np.array_equal(mapped, X[index])
    assert list(tmp_path.iterdir()) == []  # unlinked as soon as it is mapped
    mapped[0] += 1.0  # copy-on-write: the process's own change, nobody else's
    assert np.array_equal(mapped[1:], X[index[1:]]) and not np.array_equal(mapped[0], X[69])


def test_a_scan_with_its_splits_on_disk_gives_the_same_report_numbers(monkeypatch) -> None:
    import ecgaudit.data.splits as data_splits
    import ecgaudit.scan as scan
    from ecgaudit.plan import ScanConfig
    from ecgaudit.profiles import load_profile
    from ecgaudit.scan import run_scan

    from .test_threats import reduced

    model = load_model(MODELS / "cnn-ml100.onnx")
    profile = reduced(load_profile("ci"), n=8)

    def scan_once() -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
        result = run_scan(ScanConfig(model=model, profile=profile))
        rates = {a["id"]: {t["threat_model"]: t["metrics"]["fooling_rate"]["value"]
                           for t in a["threat_models"] if t.get("metrics")} for a in result.report["attacks"]}
        return rates, result.samples

    rates, samples = scan_once()
    monkeypatch.setattr(data_splits, "SAMPLES_ON_DISK_BYTES", 0)  # splits and the per-record worst case on disk
    splits = scan._splits(model, "builtin:synthetic:n=16,seed=0", 8, 8, 0)
    assert not splits.craft.X.flags.owndata and not splits.evaluation.X.flags.owndata  # mapped, not copied
    rates_on_disk, samples_on_disk = scan_once()
    assert rates_on_disk == rates
    assert samples_on_disk.keys() == samples.keys() and any(k.startswith("delta_pgd") for k in samples)
    for key, value in samples.items():  # the example records' perturbations come back from the file unchanged
        assert np.array_equal(samples_on_disk[key], value), key


def test_samples_on_disk_without_room_is_a_data_error_naming_the_folder(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    from ecgaudit.data.interface import samples_on_disk
    from ecgaudit.errors import DataError

    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="temporary file in .*missing.*TMPDIR"):
        samples_on_disk(np.zeros((3, 12, 100), np.float32), np.arange(3))


def test_an_unusable_tmpdir_is_a_data_error_not_a_silent_fallback_to_tmp(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    from ecgaudit.data.interface import samples_on_disk
    from ecgaudit.errors import DataError

    monkeypatch.setenv("TMPDIR", str(tmp_path / "missing"))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads TMPDIR again, and falls back from it
    with pytest.raises(DataError, match=r"TMPDIR=.*missing is not a writable folder"):
        samples_on_disk(np.zeros((3, 12, 100), np.float32), np.arange(3))
    (tmp_path / "missing").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    held = samples_on_disk(np.ones((3, 12, 100), np.float32), np.arange(3))
    assert held.shape == (3, 12, 100) and float(held.sum()) == 3 * 12 * 100
