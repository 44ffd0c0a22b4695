"""`ecgaudit attack`'s folder: exactly the files attack.json names, each the bytes it records, nothing stale beside
them, and a folder it cannot use refused before any model work."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .conftest import MODELS

MODEL = MODELS / "cnn-ml100.onnx"
SMALL = ("--data", "builtin:synthetic:n=16,seed=1", "--n-craft", "8", "--n-eval", "8", "--quiet")


def _named_files(doc: dict) -> dict[str, str]:
    """Path -> sha256 of every perturbation attack.json names (the gated one and each threat model's)."""
    named = {doc["perturbation"]["path"]: doc["perturbation"]["sha256"]} if "perturbation" in doc else {}
    for entry in doc["threat_models"]:
        if "perturbation" in entry:
            named[entry["perturbation"]["path"]] = entry["perturbation"]["sha256"]
    return named


def test_each_threat_models_perturbation_is_the_file_attack_json_names(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli("attack", MODEL, "--attack", "scar", "--param", "epochs=1", "--threat-model", "white-box",
                           "--threat-model", "black-box", "--queries", "40", "--out", out, *SMALL)
    assert code == 0, err
    doc = json.loads((out / "attack.json").read_text())
    named = _named_files(doc)
    assert len(named) == 2 and doc["perturbation"]["path"] == "perturbation.npy"  # worst case + the other one
    assert len(set(named.values())) == 2  # two different perturbations, so a mix-up would show
    for path, sha in named.items():
        assert hashlib.sha256((out / path).read_bytes()).hexdigest() == sha, path
    assert sorted(p.name for p in out.iterdir()) == sorted(["attack.json", *named])


def test_a_second_attack_in_the_same_folder_leaves_nothing_of_the_first(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli("attack", MODEL, "--attack", "scar", "--param", "epochs=1", "--threat-model", "white-box",
                           "--threat-model", "black-box", "--queries", "40", "--out", out, *SMALL)
    assert code == 0, err
    assert (out / "perturbation.black-box.npy").exists()
    code, _, err = run_cli("attack", MODEL, "--attack", "pgd", "--param", "steps=1", "--out", out, *SMALL)
    assert code == 0, err
    doc = json.loads((out / "attack.json").read_text())
    assert doc["attack"] == "pgd"
    assert sorted(p.name for p in out.iterdir()) == sorted(["attack.json", *_named_files(doc)])
    assert not list(tmp_path.glob(".run*"))  # no staging folder or lock left beside it


def test_a_folder_attack_cannot_use_is_refused_before_the_model_or_data_are_read(run_cli, tmp_path: Path) -> None:
    unreadable_data = ("--data", str(tmp_path / "missing.npz"))  # read after the checks, so it must not be named
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    code, _, err = run_cli("attack", MODEL, "--attack", "pgd", "--out", taken, *unreadable_data)
    assert code == 2 and "--out" in err and "existing file" in err and "missing.npz" not in err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, _, err = run_cli("attack", MODEL, "--attack", "pgd", "--out", foreign, *unreadable_data)
    assert code == 2 and "notes.txt" in err and (foreign / "notes.txt").read_text() == "mine"
    code, _, err = run_cli("attack", MODEL, "--attack", "pgd", "--out", tmp_path / "ok",
                           "--export-augmentation", taken / "sub", *unreadable_data)
    assert code == 2 and "--export-augmentation" in err and "missing.npz" not in err
    assert not (tmp_path / "ok").exists()
