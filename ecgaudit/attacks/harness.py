"""The harness: splits, targets, and one attack run. It projects what attacks return onto the constraint they
declare and measures every success figure on the vendor's runtime (`ModelAdapter.predict`), never on the
surrogate (`ecgaudit.attacks.measure`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ecgaudit.attacks.interface import PerSampleAttack, UniversalAttack
from ecgaudit.attacks.measure import measure, measure_records
from ecgaudit.data.interface import EcgDataset
from ecgaudit.data.splits import split_indices  # re-exported: the splitting code lives with the data
from ecgaudit.errors import AttackError
from ecgaudit.evaluation import CleanEvaluation, evaluate_clean
from ecgaudit.io import npy_bytes
from ecgaudit.metrics import record_chunks
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.progress import ProgressFn, no_progress


class Reporter(Protocol):
    """Progress sink: the CLI shows a bar per task; library callers pass nothing."""

    def task(self, description: str, total: int) -> ProgressFn: ...


class NullReporter:
    def task(self, description: str, total: int) -> ProgressFn:
        return no_progress


class Prefixed:
    """Progress tasks named after what runs the attack: `<prefix> (<attack>): <stage>`, for an attack run several
    times in one scan (under each threat model; at each amplitude of the sweep)."""

    def __init__(self, reporter: Reporter, prefix: str) -> None:
        self.reporter, self.prefix = reporter, prefix

    def task(self, description: str, total: int) -> ProgressFn:
        name = description.split(":", 1)[-1].strip() if ":" in description else description
        return self.reporter.task(f"{self.prefix} ({description.split(':', 1)[0]}): {name}", total)


def split_craft_eval(dataset: EcgDataset, *, n_craft: int, n_eval: int, seed: int) -> tuple[EcgDataset, EcgDataset]:
    """Disjoint craft and eval splits of `dataset` (see `split_indices`)."""
    craft_idx, eval_idx = split_indices(dataset.n_records, n_craft=n_craft, n_eval=n_eval, seed=seed)
    return dataset.subset(craft_idx), dataset.subset(eval_idx)


def attack_targets(model: ModelAdapter, dataset: EcgDataset, clean: CleanEvaluation) -> torch.Tensor:
    """Labels the attack moves away from: the true label where known, else the model's clean decision.

    Single-label records with several true labels use the one the model predicts, if any, else the first.
    """
    decisions = clean.decisions
    if model.card.multilabel:
        targets = decisions.astype(np.float32)
        if clean.labels is not None:  # an unlabelled record moves away from the model's own decision
            known = np.ones(len(targets), bool) if clean.labelled is None else clean.labelled
            targets = np.where(known[:, None], clean.labels, targets).astype(np.float32)
        return torch.from_numpy(targets)
    targets = decisions.astype(np.int64).copy()
    if clean.labels is not None:
        for i, row in enumerate(clean.labels):
            if row.any() and not row[targets[i]]:
                targets[i] = int(np.flatnonzero(row)[0])
    return torch.from_numpy(targets)


def perturbation_sha256(v: np.ndarray) -> str:
    """SHA-256 of the `.npy` file the perturbation is saved as (float32)."""
    return hashlib.sha256(npy_bytes(v)).hexdigest()


@dataclass
class AttackOutcome:
    """What one attack did on one model: parameters, the perturbation, metrics and timings."""

    attack: str
    params: dict[str, Any]
    universal: bool
    perturbation: np.ndarray | None
    metrics: dict[str, Any]
    n_craft: int
    n_eval: int
    seconds: dict[str, float]
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    fooled: np.ndarray | None = None
    """Per eval record: did the runtime's decision change? (not serialised)"""
    adversarial_decisions: np.ndarray | None = None
    record_perturbations: np.ndarray | None = None
    """Per-sample attacks only: the projected `(N, L, T)` perturbations (not serialised), or those of
    `record_rows` only once `keep_records` has dropped the rest."""
    record_rows: np.ndarray | None = None
    """The eval records `record_perturbations` holds, as sorted indices; None: every record, in order."""

    def perturbations_of(self, rows: np.ndarray) -> np.ndarray:
        """The per-record perturbations of eval records `rows` (indices), `(len(rows), L, T)` mV."""
        assert self.record_perturbations is not None
        if self.record_rows is None:
            return self.record_perturbations[rows]
        where = np.searchsorted(self.record_rows, rows).clip(max=max(len(self.record_rows) - 1, 0))
        if len(rows) and (not len(self.record_rows) or np.any(self.record_rows[where] != rows)):
            raise KeyError(f"{self.attack}: the perturbations of some requested records were not kept.")
        return self.record_perturbations[where]

    def keep_records(self, keep: np.ndarray) -> None:
        """Hold the per-record perturbations of the eval records where `keep` (a mask) is true, and free the rest:
        at PTB-XL's test fold each whole set is 0.26 GB, and a scan has one per per-record threat model."""
        assert self.record_perturbations is not None and self.record_rows is None
        rows = np.flatnonzero(keep)
        self.record_perturbations, self.record_rows = self.record_perturbations[rows], rows

    @property
    def perturbation_sha256(self) -> str | None:
        return None if self.perturbation is None else perturbation_sha256(self.perturbation)


def run_attack(
    attack: UniversalAttack | PerSampleAttack,
    model: ModelAdapter,
    craft: EcgDataset | None,
    evaluation: EcgDataset,
    *,
    seed: int,
    reporter: Reporter | None = None,
    clean_eval: CleanEvaluation | None = None,
    init: np.ndarray | None = None,
) -> AttackOutcome:
    """Craft (universal: on `craft`; per-sample: on each eval record), project, then measure on `evaluation`.
    `init`: a universal perturbation `(L, T)` mV for a gradient attack to start from (a warm start)."""
    reporter = reporter or NullReporter()
    generator = torch.Generator().manual_seed(seed)
    clean_eval = clean_eval or evaluate_clean(model, evaluation)
    started = time.perf_counter()
    if isinstance(attack, UniversalAttack):
        if craft is None:
            raise AttackError(f"{attack.name} is universal and needs a craft split.")
        targets = attack_targets(model, craft, evaluate_clean(model, craft)) if attack.needs_targets \
            else torch.empty(0, dtype=torch.long)
        start = {} if init is None else {"init": torch.from_numpy(np.asarray(init, dtype=np.float32))}
        result = attack.craft(model, torch.from_numpy(craft.X), targets, generator=generator,
                              progress=reporter.task(f"{attack.name}: crafting", 1), **start)
        delta, extras, info, n_craft = result.perturbation, result.extras, dict(result.info), craft.n_records
        if "excluded_gradient_records" in info:  # positions -> the craft records' ids, for the report
            info["excluded_gradient_records"] = [craft.record_ids[i] for i in info["excluded_gradient_records"]]
    else:
        targets = attack_targets(model, evaluation, clean_eval)
        delta = attack.perturb(model, torch.from_numpy(evaluation.X), targets, generator=generator,
                               progress=reporter.task(f"{attack.name}: perturbing", 1))
        extras, info, n_craft = {}, {}, 0
    # What the attack returned is the harness's own unless it is (a view of) the records it was given.
    owned = isinstance(delta, torch.Tensor) and delta.device.type == "cpu" \
        and not np.may_share_memory(delta.detach().numpy(), evaluation.X)
    return measure_outcome(attack, model, evaluation, clean_eval, delta, n_craft=n_craft,
                           craft_seconds=time.perf_counter() - started, extras=extras, info=info, reporter=reporter,
                           owned=owned)


def measure_outcome(
    attack: UniversalAttack | PerSampleAttack,
    model: ModelAdapter,
    evaluation: EcgDataset,
    clean_eval: CleanEvaluation,
    delta: torch.Tensor | np.ndarray,
    *,
    n_craft: int,
    craft_seconds: float,
    extras: dict[str, torch.Tensor] | None = None,
    info: dict[str, Any] | None = None,
    reporter: Reporter | None = None,
    owned: bool = False,
) -> AttackOutcome:
    """Project `delta` (universal `(L, T)` or per-record `(N, L, T)`, mV) onto the attack's constraint, then
    measure it, and each extra variant, on the runtime. `owned`: nobody else holds `delta`, so per-record
    perturbations are projected in place, a chunk of records at a time (at PTB-XL's test fold a projected copy
    is 0.26 GB more)."""
    reporter = reporter or NullReporter()
    # The harness enforces the budget whatever the attack returned (foolbox's rule: never trust the attack).
    clip = attack.constraint.project

    def projected(d: torch.Tensor | np.ndarray) -> np.ndarray:
        tensor = d.detach() if isinstance(d, torch.Tensor) else torch.from_numpy(np.asarray(d, dtype=np.float32))
        return clip(tensor.float()).numpy().astype(np.float32, copy=False)  # clip made a new array already

    started = time.perf_counter()
    cutoff_hz = getattr(attack.constraint, "cutoff_hz", None)
    if owned and not attack.universal and isinstance(delta, torch.Tensor) and delta.dtype == torch.float32:
        records = delta.detach()
        for rows in record_chunks(len(records)):  # each record is projected on its own, whatever the constraint
            records[rows] = clip(records[rows])
        v = records.numpy()
    else:
        v = projected(delta)
    metrics, fooled, adv = measure_records(model, evaluation, clean_eval, v, cutoff_hz=cutoff_hz,
                                           progress=reporter.task(f"{attack.name}: evaluating", evaluation.n_records))
    variants = {name: measure(model, evaluation, clean_eval, projected(extra), cutoff_hz=cutoff_hz)
                for name, extra in (extras or {}).items()}
    seconds = {"craft": craft_seconds, "evaluate": time.perf_counter() - started}
    return AttackOutcome(
        attack.name, attack.params(), attack.universal, v if attack.universal else None, metrics, n_craft,
        evaluation.n_records, seconds, variants, dict(info or {}), fooled, adv, None if attack.universal else v,
    )
