"""Label vocabularies: the Challenge records' SNOMED CT codes become labels (built-in map or a code,class file),
unmapped codes are counted and named, a record with no mapped code is unlabelled, and clean accuracy is then
measured on real records that used to read 'not measured'."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ecgaudit.data import load_dataset
from ecgaudit.data.labels import read_label_map, snomed_challenge2021
from ecgaudit.evaluation import evaluate_clean
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.models import load_model
from tests.conftest import CHALLENGE_IDS, MODELS, REPO, data_path

TABLE = REPO / "ecgaudit" / "data" / "vocabularies" / "challenge2021_dx_mapping_scored.csv"


def _header_codes() -> dict[str, list[str]]:
    """Each record's `# Dx:` codes, read straight from the headers."""
    out = {}
    for record in CHALLENGE_IDS:
        line = next(ln for ln in data_path("physionet-challenge-2021", f"{record}.hea").read_text().splitlines()
                    if ln.startswith("# Dx:"))
        out[record] = [code.strip() for code in line.split(":", 1)[1].split(",")]
    return out


def _load(label_map=None):  # type: ignore[no-untyped-def]
    return load_dataset(str(data_path("physionet-challenge-2021")), fs=500, n_samples=5000, leads=STANDARD_LEADS,
                        label_map=label_map)


def _card(tmp_path: Path, classes: list[str]) -> Path:
    card = json.loads((MODELS / "cnn.card.json").read_text())
    card.update(classes=classes, task="multilabel", output="logits", thresholds=0.5)
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card))
    return path


def test_the_builtin_map_is_the_challenge_table_with_its_pairs_scored_as_one() -> None:
    rows = list(csv.DictReader(TABLE.open()))
    snomed = snomed_challenge2021()
    assert set(snomed.codes) == {row["SNOMEDCTCode"] for row in rows} and len(snomed.codes) == 30
    assert snomed.codes["426783006"] == ("NSR",)
    for pair in (("59118001", "713427006"), ("164909002", "733534002"), ("284470004", "63593006"),
                 ("427172004", "17338001")):
        assert set(snomed.codes[pair[0]]) == set(snomed.codes[pair[1]]) and len(snomed.codes[pair[0]]) == 2


def test_challenge_records_get_labels_from_their_dx_codes_and_the_unmapped_codes_are_counted() -> None:
    dataset = _load()
    snomed = snomed_challenge2021()
    headers = _header_codes()
    assert dataset.vocabulary is not None and dataset.vocabulary["name"] == "snomed-challenge2021"
    expected = Counter(code for codes in headers.values() for code in codes if code not in snomed.codes)
    assert dataset.vocabulary["unmapped_codes"] == dict(expected) and expected  # named, with their counts
    assert dataset.classes is not None and dataset.labels is not None
    for i, record in enumerate(dataset.record_ids):
        names = {dataset.classes[k] for k in np.flatnonzero(dataset.labels[i])}
        assert names == {name for code in headers[record] for name in snomed.codes.get(code, ())}, record


def test_a_code_class_file_gives_the_models_classes_and_a_record_with_no_mapped_code_is_unlabelled(
        tmp_path: Path) -> None:
    path = tmp_path / "map.csv"
    path.write_text("code,class\n426783006,NORM\n59118001,CD\n713426002,CD\n164934002,STTC\n")
    dataset = _load(read_label_map(path))
    assert dataset.vocabulary is not None and dataset.vocabulary["unlabelled_records"] == ["JS20004"]
    assert dataset.labelled is not None and not dataset.labelled[dataset.record_ids.index("JS20004")]
    model = load_model(MODELS / "cnn.onnx", card_path=_card(tmp_path, ["NORM", "MI", "STTC", "CD", "HYP"]))
    clean = evaluate_clean(model, dataset)
    assert clean.accuracy is not None and clean.accuracy.total == len(CHALLENGE_IDS) - 1  # JS20004 is not judged
    js = dataset.record_ids.index("JS20004")
    assert not clean.correct[js] and clean.labels is not None and not clean.labels[js].any()


def test_inspect_measures_clean_accuracy_on_the_challenge_records_with_the_builtin_map(run_cli,
                                                                                     tmp_path: Path) -> None:
    card = _card(tmp_path, ["NSR", "SB", "STach", "RBBB", "TAb"])
    code, out, err = run_cli("inspect", MODELS / "cnn.onnx", "--card", card, "--data",
                             data_path("physionet-challenge-2021"), "--json")
    assert code == 0, err
    data = json.loads(out)["data"]
    assert data["clean"]["accuracy"]["total"] == len(CHALLENGE_IDS)  # was "not measured (no labels)"
    assert data["labels"]["unmapped_codes"] == {"55930002": 1, "55827005": 1}
    assert data["clean"]["true_counts"]["NSR"] == 5 and data["clean"]["true_counts"]["RBBB"] == 2


def test_a_scan_reports_its_label_map_and_measures_accuracy(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "map.csv"
    path.write_text("code,class\n426783006,NSR\n426177001,SB\n")
    card = _card(tmp_path, ["NSR", "SB", "STach", "RBBB", "TAb"])
    code, _, err = run_cli("scan", MODELS / "cnn.onnx", "--card", card, "--profile",
                           REPO / "tests" / "profiles" / "scan-tiny.toml", "--data",
                           data_path("physionet-challenge-2021"), "--label-map", path, "--out", tmp_path / "out",
                           "--quiet")
    assert code in (0, 1, 4), err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    labels = report["data"]["labels"]
    assert labels["name"] == str(path) and labels["unlabelled_records"] == ["JS20004"]
    assert "164934002" in labels["unmapped_codes"] and report["clean"]["accuracy"]["total"] >= 1


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"),
    ("426783006,NORM\n", "must start with the header line 'code,class'"),
    ("code,class\n426783006\n", "line 2: expected 'code,class'"),
])
def test_a_bad_label_map_is_one_sentence_and_exit_2(run_cli, tmp_path: Path, content: str | None,
                                                    message: str) -> None:
    path = tmp_path / "map.csv"
    if content is not None:
        path.write_text(content)
    code, _, err = run_cli("scan", MODELS / "cnn.onnx", "--label-map", path, "--out", tmp_path / "out")
    assert code == 2 and message in " ".join(err.split()), err
