"""`ecgaudit attack`: one attack on one model, with transfer and the amplitude sweep, as a JSON document."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecgaudit import __version__
from ecgaudit.attacks import build_attack
from ecgaudit.attacks.harness import AttackOutcome, Reporter, run_attack, split_indices
from ecgaudit.attacks.scar import SCAR
from ecgaudit.attacks.transfer import transfer
from ecgaudit.data import load_dataset
from ecgaudit.data.interface import EcgDataset
from ecgaudit.evaluation import evaluate_clean
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.sensitivity import amplitude_sweep

DEFAULT_DATA = "builtin:synthetic"


def resolve_data_spec(spec: str, n_records: int) -> str:
    """`builtin:synthetic` without options generates exactly the records the splits need."""
    return f"{DEFAULT_DATA}:n={n_records}" if spec == DEFAULT_DATA else spec


def load_for(model: ModelAdapter, spec: str) -> EcgDataset:
    card = model.card
    return load_dataset(spec, fs=card.fs, n_samples=card.n_samples, leads=card.leads)


@dataclass(frozen=True)
class AttackJob:
    model: ModelAdapter
    attack: str
    params: dict[str, Any] = field(default_factory=dict)
    data: str = DEFAULT_DATA
    n_craft: int = 200
    n_eval: int = 200
    seed: int = 0
    transfer_models: Sequence[ModelAdapter] = ()
    transfer_data: Sequence[str] = ()
    sweep_chest_mv: Sequence[float] = ()


def data_summary(dataset: EcgDataset) -> dict[str, Any]:
    return {
        "source": dataset.source, "fs": dataset.fs, "n_records": dataset.n_records,
        "manifest_sha256": dataset.manifest_sha256,
        "quality_issues": [{"record": q.record_id, "lead": q.lead, "kind": q.kind} for q in dataset.quality],
    }


def environment() -> dict[str, Any]:
    import onnxruntime
    import torch

    return {
        "python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "threads": torch.get_num_threads(),
        "device": "cpu",
    }


def outcome_document(outcome: AttackOutcome) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "attack": outcome.attack, "params": outcome.params, "universal": outcome.universal,
        "n_craft": outcome.n_craft, "n_eval": outcome.n_eval, "metrics": outcome.metrics,
        "seconds": outcome.seconds, "info": outcome.info,
    }
    if outcome.variants:
        doc["variants"] = outcome.variants
    if outcome.perturbation is not None:
        doc["perturbation"] = {"shape": list(outcome.perturbation.shape), "unit": "mV",
                               "sha256": outcome.perturbation_sha256}
    return doc


def run_attack_job(job: AttackJob, reporter: Reporter | None = None) -> tuple[dict[str, Any], np.ndarray | None]:
    """Run the job; return the `attack.json` document and the universal perturbation (or None)."""
    model = job.model
    card = model.card
    spec = resolve_data_spec(job.data, job.n_craft + job.n_eval)
    dataset = load_for(model, spec)
    craft_idx, eval_idx = split_indices(dataset.n_records, n_craft=job.n_craft, n_eval=job.n_eval, seed=job.seed)
    craft, evaluation = dataset.subset(craft_idx), dataset.subset(eval_idx)
    model.check_parity(evaluation.X[:16])
    attack = build_attack(job.attack, fs=card.fs, leads=card.leads, params=job.params)
    clean = evaluate_clean(model, evaluation)
    outcome = run_attack(attack, model, craft, evaluation, seed=job.seed, reporter=reporter, clean_eval=clean)
    doc: dict[str, Any] = {
        "tool": {"name": "ecgaudit", "version": __version__},
        "model": model.describe(),
        "data": data_summary(dataset),
        "splits": {"seed": job.seed, "n_craft": len(craft_idx), "n_eval": len(eval_idx),
                   "craft_manifest_sha256": craft.manifest_sha256, "eval_manifest_sha256": evaluation.manifest_sha256},
        "clean": clean.to_dict(card.classes),
        "environment": environment(),
        **outcome_document(outcome),
        "transfer": [],
        "transfer_data": [],
    }
    v = outcome.perturbation
    if v is not None:
        cutoff = attack.constraint.cutoff_hz
        for target in job.transfer_models:
            target_eval = load_for(target, spec).subset(eval_idx)
            metrics = transfer(v, card.fs, target, target_eval, cutoff_hz=cutoff, source_leads=card.leads)
            doc["transfer"].append({"model": str(target.path), "sha256": target.sha256, "format": target.format,
                                    "metrics": metrics})
        for other in job.transfer_data:
            other_set = load_for(model, other)
            metrics = transfer(v, card.fs, model, other_set, cutoff_hz=cutoff, source_leads=card.leads)
            doc["transfer_data"].append({"data": data_summary(other_set), "metrics": metrics})
    if job.sweep_chest_mv and isinstance(attack, SCAR):
        doc["sweep"] = amplitude_sweep(attack, model, craft, evaluation, chest_mv=job.sweep_chest_mv,
                                       seed=job.seed, reporter=reporter, clean_eval=clean)
    return doc, v
