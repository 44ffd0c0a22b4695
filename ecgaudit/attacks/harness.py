"""The harness: splits, targets, and measurement. It projects what attacks return and measures every
success figure on the vendor's runtime (`ModelAdapter.predict`), never on the surrogate.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from scipy.signal import resample_poly

from ecgaudit.attacks.interface import PerSampleAttack, ProgressFn, UniversalAttack, no_progress
from ecgaudit.constraints import PhysioConstraint
from ecgaudit.data.interface import EcgDataset
from ecgaudit.errors import AttackError
from ecgaudit.evaluation import CleanEvaluation, evaluate_clean, is_correct
from ecgaudit.io import npy_bytes
from ecgaudit.metrics import misdiagnosis, per_lead_norms, power_fraction_below, snr_db, ssim_1d, wilson
from ecgaudit.models.interface import ModelAdapter


class Reporter(Protocol):
    """Progress sink: the CLI shows a bar per task; library callers pass nothing."""

    def task(self, description: str, total: int) -> ProgressFn: ...


class NullReporter:
    def task(self, description: str, total: int) -> ProgressFn:
        return no_progress


def split_indices(n_records: int, *, n_craft: int, n_eval: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint craft and eval record indices drawn with `seed`; when both do not fit, eval keeps half."""
    if n_craft < 1 or n_eval < 1:
        raise AttackError("craft and eval splits need at least one record each.")
    if n_records < 2:
        raise AttackError(f"the dataset has {n_records} record(s); an attack needs at least 2 (craft + eval).")
    order = np.random.default_rng(seed).permutation(n_records)
    if n_craft + n_eval > n_records:
        n_eval = min(n_eval, n_records // 2)
    n_craft = min(n_craft, n_records - n_eval)
    return order[n_eval : n_eval + n_craft], order[:n_eval]


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
        if clean.labels is not None:
            targets = clean.labels.astype(np.float32)
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


def measure(
    model: ModelAdapter,
    dataset: EcgDataset,
    clean: CleanEvaluation,
    delta: np.ndarray,
    *,
    cutoff_hz: float | None,
    progress: ProgressFn = no_progress,
) -> dict[str, Any]:
    """Every metric of one perturbation (universal `(L, T)` or per-record `(N, L, T)`), on the runtime."""
    return measure_records(model, dataset, clean, delta, cutoff_hz=cutoff_hz, progress=progress)[0]


def measure_records(
    model: ModelAdapter,
    dataset: EcgDataset,
    clean: CleanEvaluation,
    delta: np.ndarray,
    *,
    cutoff_hz: float | None,
    progress: ProgressFn = no_progress,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """`measure`, plus per record whether the decision changed `(N,)` and the adversarial decisions."""
    x_adv = dataset.X + delta
    probabilities = []
    batch = 64
    for start in range(0, dataset.n_records, batch):
        probabilities.append(model.predict(x_adv[start : start + batch]))
        progress(min(start + batch, dataset.n_records), dataset.n_records)
    adv_decisions = model.decide(np.concatenate(probabilities))
    multilabel = model.card.multilabel
    fooled = np.any(adv_decisions != clean.decisions, axis=1) if multilabel else adv_decisions != clean.decisions
    n = dataset.n_records
    metrics: dict[str, Any] = {"n_records": n, "fooling_rate": wilson(int(fooled.sum()), n).to_dict()}
    if clean.labels is not None and clean.correct is not None:
        labelled = np.ones(n, bool) if multilabel else clean.labels.sum(axis=1) > 0
        correct_adv = is_correct(adv_decisions, clean.labels, multilabel)
        was_correct = clean.correct & labelled
        metrics["attack_success_rate"] = wilson(
            int((was_correct & ~correct_adv).sum()), int(was_correct.sum())
        ).to_dict()
        metrics["robust_accuracy"] = wilson(int((correct_adv & labelled).sum()), int(labelled.sum())).to_dict()
        metrics["clean_accuracy"] = wilson(int(was_correct.sum()), int(labelled.sum())).to_dict()
    full = np.broadcast_to(delta, dataset.X.shape)
    metrics["snr_db"] = snr_db(dataset.X, full)
    metrics["ssim"] = ssim_1d(dataset.X, x_adv, dataset.fs)
    metrics["linf_mv"] = float(np.abs(delta).max())
    metrics["per_lead"] = per_lead_norms(delta, dataset.leads)
    if cutoff_hz is not None:
        metrics["power_below_cutoff"] = power_fraction_below(delta, dataset.fs, cutoff_hz)
        metrics["cutoff_hz"] = cutoff_hz
    metrics["misdiagnosis"] = misdiagnosis(clean.decisions, adv_decisions, model.card.classes)
    return metrics, fooled, adv_decisions


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
    """Per-sample attacks only: the projected `(N, L, T)` perturbations (not serialised)."""

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
) -> AttackOutcome:
    """Craft (universal: on `craft`; per-sample: on each eval record), project, then measure on `evaluation`."""
    reporter = reporter or NullReporter()
    generator = torch.Generator().manual_seed(seed)
    clean_eval = clean_eval or evaluate_clean(model, evaluation)
    started = time.perf_counter()
    if isinstance(attack, UniversalAttack):
        if craft is None:
            raise AttackError(f"{attack.name} is universal and needs a craft split.")
        clean_craft = evaluate_clean(model, craft)
        targets = attack_targets(model, craft, clean_craft)
        result = attack.craft(
            model,
            torch.from_numpy(craft.X),
            targets,
            generator=generator,
            progress=reporter.task(f"{attack.name}: crafting", 1),
        )
        constraint: PhysioConstraint = attack.constraint  # type: ignore[attr-defined]
        # The harness enforces the budget whatever the attack returned.
        v = constraint.project(result.perturbation.detach()).numpy().astype(np.float32)
        crafted = time.perf_counter()
        metrics, fooled, adv = measure_records(
            model,
            evaluation,
            clean_eval,
            v,
            cutoff_hz=constraint.cutoff_hz,
            progress=reporter.task(f"{attack.name}: evaluating", evaluation.n_records),
        )
        variants = {
            name: measure(
                model,
                evaluation,
                clean_eval,
                constraint.project(extra.detach()).numpy(),
                cutoff_hz=constraint.cutoff_hz,
            )
            for name, extra in result.extras.items()
        }
        done = time.perf_counter()
        return AttackOutcome(
            attack.name,
            attack.params(),
            True,
            v,
            metrics,
            craft.n_records,
            evaluation.n_records,
            {"craft": crafted - started, "evaluate": done - crafted},
            variants,
            result.info,
            fooled,
            adv,
        )
    targets = attack_targets(model, evaluation, clean_eval)
    delta = attack.perturb(
        model,
        torch.from_numpy(evaluation.X),
        targets,
        generator=generator,
        progress=reporter.task(f"{attack.name}: perturbing", 1),
    )
    eps = attack.eps_tensor(evaluation.X.shape[1])  # type: ignore[attr-defined]
    delta_np = torch.maximum(torch.minimum(delta.detach(), eps), -eps).numpy().astype(np.float32)
    crafted = time.perf_counter()
    metrics, fooled, adv = measure_records(
        model,
        evaluation,
        clean_eval,
        delta_np,
        cutoff_hz=None,
        progress=reporter.task(f"{attack.name}: evaluating", evaluation.n_records),
    )
    done = time.perf_counter()
    return AttackOutcome(
        attack.name,
        attack.params(),
        False,
        None,
        metrics,
        0,
        evaluation.n_records,
        {"craft": crafted - started, "evaluate": done - crafted},
        fooled=fooled,
        adversarial_decisions=adv,
        record_perturbations=delta_np,
    )


def conform_perturbation(v: np.ndarray, source_fs: float, target_fs: float, n_samples: int) -> np.ndarray:
    """Carry a perturbation to another model's rate and length (resample, then crop or zero-pad)."""
    from fractions import Fraction

    if source_fs != target_fs:
        ratio = Fraction(target_fs / source_fs).limit_denominator(1000)
        v = resample_poly(v, ratio.numerator, ratio.denominator, axis=-1)
    if v.shape[-1] >= n_samples:
        return np.ascontiguousarray(v[..., :n_samples], dtype=np.float32)
    return np.pad(v, ((0, 0), (0, n_samples - v.shape[-1]))).astype(np.float32)


def transfer(
    v: np.ndarray,
    source_fs: float,
    target: ModelAdapter,
    evaluation: EcgDataset,
    *,
    cutoff_hz: float | None,
    source_leads: Sequence[str],
) -> dict[str, Any]:
    """Measure a crafted universal perturbation on another model (and/or dataset), on its runtime."""
    lead_index = [list(source_leads).index(lead) for lead in target.card.leads]
    carried = conform_perturbation(v[lead_index], source_fs, target.card.fs, target.card.n_samples)
    clean = evaluate_clean(target, evaluation)
    return measure(target, evaluation, clean, carried, cutoff_hz=cutoff_hz)
