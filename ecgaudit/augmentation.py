"""Adversarial data augmentation: the adversarial version of every record of a data set, for a vendor's own
adversarial training (the SCAR paper's "data augmentation strategy", §5; Hybrid-AT mixes these with PGD).

A universal attack's perturbation, crafted on the craft split, is added to every record; a per-record attack
(PGD, SPSA) is run on every record. The harness projects onto the attack's budget, and the share of records whose
decision changed is measured on the vendor's runtime, as everywhere else.

The file is ecgaudit's own `.npz` data format (`ecgaudit.data.npz`: `X` mV, `y` multi-hot, `fs`, `leads`,
`classes`, `record_ids`), so it loads with `np.load` in any training script and with `--data` in ecgaudit itself; its
provenance (model, attack, budget, seed, data manifest, label source) is a JSON document beside it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgaudit import __version__
from ecgaudit.attacks.harness import Reporter, measure_outcome, run_attack
from ecgaudit.attacks.interface import PerSampleAttack, UniversalAttack
from ecgaudit.data import EcgDataset
from ecgaudit.evaluation import evaluate_clean
from ecgaudit.io import atomic_write_bytes, json_bytes, npz_bytes
from ecgaudit.models import ModelAdapter

NPZ_NAME = "augmentation.npz"
PROVENANCE_NAME = "augmentation.json"


@dataclass(frozen=True)
class Augmentation:
    arrays: dict[str, np.ndarray]
    """The `.npz` arrays in ecgaudit's data format: `X` adversarial records `(N, L, T)` mV, `y` `(N, K)` multi-hot."""
    provenance: dict[str, Any]


def build_augmentation(
    attack: UniversalAttack | PerSampleAttack,
    model: ModelAdapter,
    dataset: EcgDataset,
    *,
    perturbation: np.ndarray | None,
    seed: int,
    data_spec: str,
    reporter: Reporter | None = None,
) -> Augmentation:
    """The adversarial version of every record of `dataset`: `perturbation` `(L, T)` mV added to each (universal
    attacks), or `attack` run on each record (per-record attacks, `perturbation` None)."""
    clean = evaluate_clean(model, dataset)
    if isinstance(attack, UniversalAttack):
        if perturbation is None:
            raise ValueError("a universal attack's augmentation needs the crafted perturbation")
        outcome = measure_outcome(attack, model, dataset, clean, perturbation, n_craft=0, craft_seconds=0.0,
                                  reporter=reporter)
        assert outcome.perturbation is not None
        x_adv = dataset.X + outcome.perturbation[None].astype(np.float32)
        how = "the universal perturbation crafted on the craft split, added to every record"
    else:
        outcome = run_attack(attack, model, None, dataset, seed=seed, reporter=reporter, clean_eval=clean)
        assert outcome.record_perturbations is not None
        x_adv = dataset.X + outcome.record_perturbations.astype(np.float32)
        how = "the attack run on every record, each with its own perturbation"
    if dataset.labels is not None:
        labels, label_source = dataset.labels.astype(np.uint8), f"the data's own labels ({dataset.source})"
    else:
        decisions = clean.decisions
        labels = (decisions if decisions.ndim == 2 else np.eye(len(model.card.classes))[decisions]).astype(np.uint8)
        label_source = "the model's decisions on the clean records (the data carries no labels)"
    classes = dataset.classes if dataset.labels is not None and dataset.classes else model.card.classes
    arrays = {
        "X": np.ascontiguousarray(x_adv, dtype=np.float32),
        "y": labels,
        "fs": np.float64(dataset.fs),
        "leads": np.array(dataset.leads, dtype=str),
        "classes": np.array(classes, dtype=str),
        "record_ids": np.array(dataset.record_ids, dtype=str),
    }
    fooling = outcome.metrics["fooling_rate"]
    provenance = {
        "tool": {"name": "ecgaudit", "version": __version__},
        "what": "adversarial versions of every record, for adversarial training; clean records are not included",
        "how": how,
        "model": {"file": model.path.name, "sha256": model.sha256, "format": model.format},
        "attack": {"name": attack.name, "params": attack.params(), "universal": isinstance(attack, UniversalAttack),
                   "eps_mv": list(attack.constraint.eps_mv), "unit": "mV"},
        "seed": seed,
        "data": {"spec": data_spec, "source": dataset.source, "n_records": dataset.n_records, "fs": dataset.fs,
                 "manifest_sha256": dataset.manifest_sha256},
        "labels": label_source,
        "fooling_rate_on_runtime": fooling,
    }
    return Augmentation(arrays=arrays, provenance=provenance)


def write_augmentation(augmentation: Augmentation, out_dir: Path) -> tuple[Path, Path]:
    """Write `augmentation.npz` and its provenance (with the npz's SHA-256), each atomically."""
    data = npz_bytes(augmentation.arrays)
    npz_path, json_path = out_dir / NPZ_NAME, out_dir / PROVENANCE_NAME
    atomic_write_bytes(npz_path, data)
    provenance = {**augmentation.provenance, "file": {"name": NPZ_NAME, "sha256": hashlib.sha256(data).hexdigest()}}
    atomic_write_bytes(json_path, json_bytes(provenance))
    return npz_path, json_path
