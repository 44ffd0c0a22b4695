"""`attack --export-augmentation`: the adversarial version of every record, in ecgaudit's npz format, that a
vendor's training script can consume (the SCAR paper's data-augmentation strategy)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ecgaudit.data import load_dataset
from ecgaudit.models import load_model
from tests.conftest import MODELS

DATA = "builtin:synthetic:n=24,seed=5"


def original(model_path: Path):  # noqa: ANN201 - EcgDataset
    card = load_model(model_path).card
    return load_dataset(DATA, fs=card.fs, n_samples=card.n_samples, leads=card.leads)


def fine_tune_a_few_steps(x: np.ndarray, y: np.ndarray) -> list[float]:
    """A vendor's training loop, reduced to its bones: a small 1-D CNN, BCE on the multi-hot labels."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(x.shape[1], 8, 7, stride=4), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                        nn.Linear(8, y.shape[1]))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(4):
        loss = nn.functional.binary_cross_entropy_with_logits(net(torch.from_numpy(x)), torch.from_numpy(y).float())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return losses


def test_universal_augmentation_round_trips_within_the_budget_with_the_labels(run_cli, tmp_path: Path) -> None:
    model = MODELS / "cnn.onnx"
    code, out, err = run_cli("attack", model, "--attack", "scar", "--data", DATA, "--n-craft", 12, "--n-eval", 12,
                             "--param", "epochs=2", "--out", tmp_path / "run", "--export-augmentation",
                             tmp_path / "aug", "--quiet")
    assert code == 0, err
    assert "augmentation:" in out
    before = original(model)
    after = load_dataset(str(tmp_path / "aug" / "augmentation.npz"), fs=before.fs, n_samples=before.X.shape[2],
                         leads=before.leads)
    assert after.record_ids == before.record_ids
    assert np.array_equal(after.labels, before.labels)
    provenance = json.loads((tmp_path / "aug" / "augmentation.json").read_text())
    eps = np.array(provenance["attack"]["eps_mv"], dtype=np.float32).reshape(-1, 1)
    delta = after.X - before.X
    assert np.all(np.abs(delta) <= eps + 1e-5)  # every record within the attack's per-lead budget
    assert np.abs(delta).max() > 0.5 * eps.min()  # and actually perturbed
    # universal: one perturbation, the same on every record
    assert np.allclose(delta, delta[:1], atol=1e-5)
    digest = hashlib.sha256((tmp_path / "aug" / "augmentation.npz").read_bytes()).hexdigest()
    assert provenance["file"]["sha256"] == digest
    assert provenance["model"]["sha256"] == load_model(model).sha256
    assert provenance["data"]["n_records"] == 24
    with np.load(tmp_path / "aug" / "augmentation.npz", allow_pickle=False) as npz:
        losses = fine_tune_a_few_steps(npz["X"], npz["y"])
    assert all(np.isfinite(losses))


def test_per_record_augmentation_perturbs_each_record_on_its_own(run_cli, tmp_path: Path) -> None:
    model = MODELS / "cnn.onnx"
    code, _, err = run_cli("attack", model, "--attack", "pgd", "--data", DATA, "--n-craft", 12, "--n-eval", 12,
                           "--param", "steps=3", "--out", tmp_path / "run", "--export-augmentation", tmp_path / "aug",
                           "--quiet")
    assert code == 0, err
    before = original(model)
    with np.load(tmp_path / "aug" / "augmentation.npz", allow_pickle=False) as npz:
        x_adv, eps = npz["X"], json.loads((tmp_path / "aug" / "augmentation.json").read_text())["attack"]["eps_mv"]
    delta = x_adv - before.X
    assert np.all(np.abs(delta) <= np.max(eps) + 1e-5)
    assert not np.allclose(delta, delta[:1], atol=1e-6)  # each record its own perturbation


def test_augmentation_into_a_file_is_refused_before_any_work(run_cli, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("x")
    code, _, err = run_cli("attack", MODELS / "cnn.onnx", "--attack", "scar", "--export-augmentation", target)
    assert code == 2
    assert "is a file" in err
