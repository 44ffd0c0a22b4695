"""`ecgaudit scan`: a profile's whole battery on one model, gated, as one report document."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ecgaudit import __version__
from ecgaudit.attack_job import data_summary, environment, load_for, outcome_document, resolve_data_spec
from ecgaudit.attacks import build_attack
from ecgaudit.attacks.harness import NullReporter, Reporter, run_attack, split_indices
from ecgaudit.attacks.scar import SCAR
from ecgaudit.attacks.transfer import transfer
from ecgaudit.data.interface import EcgDataset
from ecgaudit.evaluation import evaluate_clean
from ecgaudit.gate import evaluate_rules, regressions
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.profiles import Profile
from ecgaudit.sensitivity import amplitude_sweep

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class ScanConfig:
    model: ModelAdapter
    profile: Profile
    data: str = "builtin:synthetic"
    seed: int | None = None
    """Overrides the profile's seed when given."""
    transfer_models: Sequence[ModelAdapter] = ()
    baseline: dict[str, Any] | None = None


N_SAMPLES_KEPT = 3
"""Eval records kept (clean, with each attack's perturbation) for the PDF and `--export-wfdb`."""


@dataclass
class ScanResult:
    report: dict[str, Any]
    perturbations: dict[str, np.ndarray] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    """Arrays for `samples.npz`: `X` clean `(k, L, T)` mV, `record_ids`, `fs`, `leads`, `delta_<id>` per attack."""

    @property
    def passed(self) -> bool:
        return self.report["gate"]["verdict"] == "PASS"


@dataclass(frozen=True)
class Splits:
    """The scan's data: the resolved source, all records, and the disjoint craft and eval splits."""

    spec: str
    dataset: EcgDataset
    craft_idx: np.ndarray
    eval_idx: np.ndarray

    @property
    def craft(self) -> EcgDataset:
        return self.dataset.subset(self.craft_idx)

    @property
    def evaluation(self) -> EcgDataset:
        return self.dataset.subset(self.eval_idx)

    def summary(self, seed: int) -> dict[str, Any]:
        return {**data_summary(self.dataset), "splits": {
            "seed": seed, "n_craft": len(self.craft_idx), "n_eval": len(self.eval_idx),
            "craft_manifest_sha256": self.craft.manifest_sha256,
            "eval_manifest_sha256": self.evaluation.manifest_sha256}}


def prepare_splits(model: ModelAdapter, profile: Profile, data: str, seed: int) -> Splits:
    """Load the data at the model's rate and draw the profile's craft/eval split with `seed`."""
    settings = profile.data["data"]
    spec = resolve_data_spec(data, settings["n_craft"] + settings["n_eval"])
    dataset = load_for(model, spec)
    craft_idx, eval_idx = split_indices(dataset.n_records, n_craft=settings["n_craft"], n_eval=settings["n_eval"],
                                        seed=seed)
    return Splits(spec, dataset, craft_idx, eval_idx)


def run_scan(config: ScanConfig, reporter: Reporter | None = None) -> ScanResult:
    """Load data, evaluate clean, run every profile attack, transfer, sweep, then gate."""
    reporter = reporter or NullReporter()
    started = time.perf_counter()
    model, profile = config.model, config.profile
    seed = profile.data["data"]["seed"] if config.seed is None else config.seed
    card = model.card
    splits = prepare_splits(model, profile, config.data, seed)
    spec, eval_idx = splits.spec, splits.eval_idx
    craft, evaluation = splits.craft, splits.evaluation
    model.check_parity(evaluation.X[:16])
    stage = reporter.task("clean evaluation", evaluation.n_records)
    clean = evaluate_clean(model, evaluation)
    stage(evaluation.n_records, evaluation.n_records)
    timings: dict[str, float] = {"setup": time.perf_counter() - started}

    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "ecgaudit", "version": __version__},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": {"name": profile.name, "version": profile.data["profile"]["version"], "source": profile.source,
                    "sha256": profile.sha256, "resolved": profile.data},
        "model": model.describe(),
        "data": splits.summary(seed),
        "environment": environment(),
        "seed": seed,
        "clean": clean.to_dict(card.classes),
        "attacks": [],
        "transfer": [],
        "sweep": None,
    }
    result = ScanResult(report)
    transfer_ids = set(profile.data.get("transfer", {}).get("attacks", []))
    outcomes = {}
    targets = [(t, load_for(t, spec).subset(eval_idx)) for t in config.transfer_models]
    for entry in profile.attacks:
        t0 = time.perf_counter()
        attack = build_attack(entry["attack"], fs=card.fs, leads=card.leads, params=entry.get("params"))
        outcome = run_attack(attack, model, craft, evaluation, seed=seed, reporter=reporter, clean_eval=clean)
        doc = {"id": entry["id"], **outcome_document(outcome)}
        if outcome.perturbation is not None:
            doc["perturbation"]["path"] = f"perturbations/{entry['id']}.npy"
            result.perturbations[entry["id"]] = outcome.perturbation
            if entry["id"] in transfer_ids:
                for target, target_eval in targets:
                    metrics = transfer(outcome.perturbation, card.fs, target, target_eval,
                                       cutoff_hz=attack.constraint.cutoff_hz,  # type: ignore[union-attr]
                                       source_leads=card.leads)
                    report["transfer"].append({"attack": entry["id"], "model": str(target.path),
                                               "sha256": target.sha256, "format": target.format,
                                               "metrics": metrics})
        report["attacks"].append(doc)
        outcomes[entry["id"]] = outcome
        timings[entry["id"]] = time.perf_counter() - t0
    result.samples = keep_samples(evaluation, outcomes, clean.decisions, card.classes)
    sweep = profile.data.get("sweep")
    if sweep:
        t0 = time.perf_counter()
        attack = build_attack(sweep["attack"], fs=card.fs, leads=card.leads, params=sweep.get("params"))
        assert isinstance(attack, SCAR)
        points = amplitude_sweep(attack, model, craft, evaluation, chest_mv=sweep["chest_eps_mv"], seed=seed,
                                 reporter=reporter, clean_eval=clean)
        report["sweep"] = {"attack": sweep["attack"], "params": attack.params(), "points": points}
        timings["sweep"] = time.perf_counter() - t0

    rules = evaluate_rules(report, profile.rules)
    if config.baseline is not None:
        rules += regressions(report, config.baseline, profile.rules, profile.data["gate"]["regression_tolerance"])
        report["baseline"] = {"created": config.baseline.get("created"),
                              "model_sha256": config.baseline.get("model", {}).get("sha256")}
    report["gate"] = {"rules": rules, "verdict": "PASS" if all(r["passed"] for r in rules) else "FAIL"}
    timings["total"] = time.perf_counter() - started
    report["timing_seconds"] = timings
    return result


def keep_samples(evaluation: Any, outcomes: dict[str, Any], clean_decisions: np.ndarray,
                 classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The eval records most attacks fooled (ties: earliest), with each attack's perturbation of them."""
    fooled_count = np.zeros(evaluation.n_records, dtype=int)
    for outcome in outcomes.values():
        if outcome.fooled is not None:
            fooled_count += outcome.fooled.astype(int)
    chosen = np.argsort(-fooled_count, kind="stable")[:N_SAMPLES_KEPT]

    def names(decision: np.ndarray) -> str:
        if decision.ndim == 0:
            return classes[int(decision)]
        return "+".join(c for c, on in zip(classes, decision) if on) or "none"

    samples: dict[str, np.ndarray] = {
        "X": evaluation.X[chosen].astype(np.float32),
        "record_ids": np.array([evaluation.record_ids[i] for i in chosen]),
        "fs": np.array(evaluation.fs),
        "leads": np.array(evaluation.leads),
        "clean_decision": np.array([names(clean_decisions[i]) for i in chosen]),
    }
    for attack_id, outcome in outcomes.items():
        if outcome.perturbation is not None:
            delta = np.broadcast_to(outcome.perturbation, samples["X"].shape)
        else:
            delta = outcome.record_perturbations[chosen]
        samples[f"delta_{attack_id}"] = np.ascontiguousarray(delta, dtype=np.float32)
        samples[f"decision_{attack_id}"] = np.array([names(outcome.adversarial_decisions[i]) for i in chosen])
    return samples
