"""Attack-failure indicators: evidence that an attack failed for reasons other than the model's robustness.

After Croce and Hein's AutoAttack checks (`autoattack/checks.py`) and Pintor et al., "Indicators of Attack
Failure: Debugging and Improving Optimization of Adversarial Examples", NeurIPS 2022. Each indicator is
computed on every scan and reported with its evidence; one that fires (and is not mitigated) makes a verdict
that would otherwise be PASS INCONCLUSIVE: ecgaudit could not measure the model's robustness reliably.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ecgaudit.data.interface import EcgDataset
from ecgaudit.evaluation import CleanEvaluation
from ecgaudit.models.interface import PARITY_TOLERANCE, ModelAdapter
from ecgaudit.threats import GRADIENT_THREATS, PARITY_RECORDS, ThreatRun, gradient_modes, gradients

FIRED, PASSED, NOT_APPLICABLE = "fired", "passed", "not-applicable"
PROBE_RECORDS = 32
VANISHING_SHARE = 0.1
"""Share of probed records with vanishing gradients at which `masked-gradients` fires."""
VANISHING_CHANGE = 1e-6
"""A gradient vanishes when the first-order change of the margin over a 0.1 mV L∞ step is below this."""
UNCHANGED_SSIM = 1e-6
"""A sweep point whose SSIM is within this of 1 left the records as they were."""
SANITY_EPS_MV = 5.0
SANITY_MIN_FLIPPED = 0.9


@dataclass(frozen=True)
class Indicator:
    id: str
    title: str
    status: str
    summary: str
    """One sentence a reviewer understands."""
    evidence: dict[str, Any] = field(default_factory=dict)
    attack: str | None = None

    @property
    def fired(self) -> bool:
        return self.status == FIRED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _torch_margin(model: ModelAdapter, logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per record, how far past its decision boundary it is (> 0: changed); differentiable."""
    if model.card.multilabel:
        assert model.card.thresholds is not None
        thr = torch.tensor(model.card.thresholds, dtype=logits.dtype).clamp(1e-6, 1 - 1e-6)
        boundary = torch.log(thr) - torch.log1p(-thr)
        sign = torch.where(reference.bool(), 1.0, -1.0).to(logits.dtype)
        return -(sign * (logits - boundary)).min(dim=1).values
    rows = torch.arange(len(logits))
    reference = reference.long()
    masked = logits.clone()
    masked[rows, reference] = -torch.inf
    return masked.max(dim=1).values - logits[rows, reference]


def _reference(clean: CleanEvaluation, index: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(clean.decisions[index]))


def gradient_change(model: ModelAdapter, x_mv: np.ndarray, reference: torch.Tensor, mode: str) -> np.ndarray:
    """Per record, the first-order change of the margin under a 0.1 mV L∞ step: 0.1 · ‖∇ margin‖₁ (log units)."""
    x = torch.from_numpy(np.ascontiguousarray(x_mv)).requires_grad_(True)
    with gradients(model, mode):
        margin = _torch_margin(model, model.torch_forward(x), reference)
        (grad,) = torch.autograd.grad(margin.sum(), x)
    change = 0.1 * grad.abs().flatten(1).sum(dim=1).double().numpy()
    return np.where(np.isfinite(change), change, 0.0)


def excluded_gradient_records(runs_by_attack: dict[str, Sequence[ThreatRun]]) -> list[str]:
    """The craft records whose gradient was not finite or absurd in some universal attack (SCAR leaves them out
    of its steps), in first-seen order."""
    found: dict[str, None] = {}
    for runs in runs_by_attack.values():
        for run in runs:
            if run.outcome is not None:
                found.update(dict.fromkeys((run.outcome.info or {}).get("excluded_gradient_records", [])))
    return list(found)


def masked_gradients(model: ModelAdapter, evaluation: EcgDataset, clean: CleanEvaluation,
                     excluded: Sequence[str] = ()) -> Indicator:
    """Gradients that vanish on the probed eval records; `excluded` names craft records whose gradients were not
    finite or absurd (reported here, with the records, though they no longer steer any perturbation)."""
    indicator = _masked_gradients(model, evaluation, clean)
    if not excluded:
        return indicator
    names = ", ".join(excluded[:10]) + (f" and {len(excluded) - 10} more" if len(excluded) > 10 else "")
    return Indicator(indicator.id, indicator.title, indicator.status,
                     f"{indicator.summary} {len(excluded)} craft record(s) gave gradients that were not finite or "
                     f"absurdly large ({names}), as a flat lead under a z-score does; they were left out of every "
                     "universal attack's steps instead of stalling them.",
                     {**indicator.evidence, "excluded_gradient_records": list(excluded)}, indicator.attack)


def _masked_gradients(model: ModelAdapter, evaluation: EcgDataset, clean: CleanEvaluation) -> Indicator:
    title = "Masked or vanishing gradients"
    modes = gradient_modes(model)
    if "white-box" not in modes:
        return Indicator("masked-gradients", title, NOT_APPLICABLE,
                         "The model has no differentiable copy, so no gradient-based attack ran; transfer and "
                         "black-box attacks stand in for them.")
    index = np.arange(min(PROBE_RECORDS, evaluation.n_records))
    x, reference = evaluation.X[index], _reference(clean, index)
    change = gradient_change(model, x, reference, "white-box")
    vanishing = float((change < VANISHING_CHANGE).mean())
    evidence: dict[str, Any] = {"records_probed": len(index), "share_vanishing": vanishing,
                                "median_margin_change_per_0.1mV": float(np.median(change))}
    if vanishing < VANISHING_SHARE:
        return Indicator("masked-gradients", title, PASSED,
                         f"White-box gradients are informative on {1 - vanishing:.0%} of the probed records.",
                         evidence)
    ops = ", ".join(model.bpda_ops) or "an operator whose gradient is zero"
    summary = (f"Gradients through this model are masked: they vanish on {vanishing:.0%} of the probed records "
               f"({ops}), so a low fooling rate may be masking rather than robustness.")
    if "bpda" in modes:
        # BPDA is the standard countermeasure and its attacks ran; the masking is still reported, since no
        # approximation of a zero gradient is known to find every weakness it hides.
        bpda = gradient_change(model, x, reference, "bpda")
        evidence["share_vanishing_bpda"] = float((bpda < VANISHING_CHANGE).mean())
        summary += (f" Straight-through (BPDA) gradients, informative on {1 - evidence['share_vanishing_bpda']:.0%}"
                    " of them, drove the bpda attacks.")
    return Indicator("masked-gradients", title, FIRED, summary, evidence)


def stronger_without_gradients(attack_id: str, runs: Sequence[ThreatRun],
                               peers: dict[str, Sequence[ThreatRun]] | None = None) -> Indicator:
    """A transfer or black-box attack beating, beyond both intervals, the best gradient attack with the same
    budget and spectrum (`peers`: every attack of the run with the same constraint, this one included)."""
    title = "An attack without gradients beat the gradient attack"
    peers = peers or {attack_id: runs}
    gradient = [(peer, r) for peer, peer_runs in peers.items() for r in peer_runs
                if r.threat_model in GRADIENT_THREATS and r.outcome is not None]
    others = [r for r in runs if r.threat_model not in GRADIENT_THREATS and r.outcome is not None]
    if not gradient or not others:
        return Indicator("stronger-without-gradients", title, NOT_APPLICABLE,
                         "Gradient-based and gradient-free attacks did not both run.", attack=attack_id)
    best_peer, best = max(gradient, key=lambda pr: pr[1].outcome.metrics["fooling_rate"]["value"])  # type: ignore[union-attr]
    best_rate = best.outcome.metrics["fooling_rate"]  # type: ignore[union-attr]
    best_name = best.threat_model if best_peer == attack_id else f"{best.threat_model} {best_peer}"
    evidence: dict[str, Any] = {"reference": {"attack": best_peer, "threat_model": best.threat_model,
                                              "fooling_rate": best_rate}}
    for run in others:
        rate = run.outcome.metrics["fooling_rate"]  # type: ignore[union-attr]
        evidence[run.threat_model] = rate
        if rate["ci95"][0] > best_rate["ci95"][1]:
            return Indicator(
                "stronger-without-gradients", title, FIRED,
                f"{attack_id}: a {run.threat_model} perturbation fooled {rate['value']:.0%} of records against "
                f"{best_rate['value']:.0%} for the best gradient attack with the same budget ({best_name}), beyond "
                "both 95% intervals: the gradient attacks failed, so their figures understate what an attacker "
                "achieves.", evidence, attack_id)
    return Indicator("stronger-without-gradients", title, PASSED,
                     f"{attack_id}: no transfer or black-box attack beat the best gradient attack with the same budget "
                     f"({best_name}, {best_rate['value']:.0%}) beyond its interval.", evidence, attack_id)


def below_noise_floor(attack_id: str, runs: Sequence[ThreatRun], floor: dict[str, Any] | None) -> Indicator:
    """A gradient attack fooling fewer records than random perturbations of the same budget and spectrum, beyond
    both intervals: optimisation that loses to chance did not work (a zero or NaN gradient, a stalled step)."""
    title = "A gradient attack scored below its noise floor"
    ran = [r for r in runs if r.threat_model in GRADIENT_THREATS and r.outcome is not None]
    if not ran or not floor or not floor.get("max"):
        return Indicator("below-noise-floor", title, NOT_APPLICABLE,
                         f"{attack_id}: no gradient attack and noise floor to compare.", attack=attack_id)
    random_best = floor["max"]
    evidence: dict[str, Any] = {"noise_floor_max": random_best, "noise_floor_mean": floor.get("mean")}
    for run in ran:
        rate = run.outcome.metrics["fooling_rate"]  # type: ignore[union-attr]
        evidence[run.threat_model] = rate
        if rate["ci95"][1] < random_best["ci95"][0]:
            return Indicator(
                "below-noise-floor", title, FIRED,
                f"{attack_id}: the {run.threat_model} attack fooled {rate['value']:.1%} of records, fewer than a "
                f"random perturbation of the same budget and spectrum ({random_best['value']:.1%}), beyond both 95% "
                "intervals: the optimisation failed, so its figure says nothing about the model.", evidence,
                attack_id)
    return Indicator("below-noise-floor", title, PASSED,
                     f"{attack_id}: every gradient attack fooled at least as many records as chance allows.",
                     evidence, attack_id)


def sweep_without_perturbation(points: Sequence[dict[str, Any]] | None) -> Indicator:
    """Every point of the amplitude sweep left the records unchanged (SSIM 1 at every budget): the sweep crafted
    nothing, so 'no rise with budget' cannot be judged from it."""
    title = "The amplitude sweep perturbed nothing"
    if not points:
        return Indicator("sweep-without-perturbation", title, NOT_APPLICABLE, "No amplitude sweep ran.")
    unchanged = [p for p in points if p.get("ssim") is not None and p["ssim"] >= 1 - UNCHANGED_SSIM]
    if len(unchanged) == len(points):
        return Indicator("sweep-without-perturbation", title, FIRED,
                         f"At every one of the sweep's {len(points)} budgets the perturbation left the records "
                         "unchanged (SSIM 1.000): the attack crafted a zero perturbation, so the sweep measured "
                         "nothing.", {"points": len(points)})
    return Indicator("sweep-without-perturbation", title, PASSED,
                     "The sweep's perturbations changed the records at "
                     f"{len(points) - len(unchanged)} of {len(points)} budgets.", {"points": len(points)})


def no_rise_with_budget(points: Sequence[dict[str, Any]] | None) -> Indicator:
    title = "Fooling rate does not rise with the budget"
    if not points or len(points) < 2:
        return Indicator("no-rise-with-budget", title, NOT_APPLICABLE, "No amplitude sweep ran.")
    ordered = sorted(points, key=lambda p: p["chest_eps_mv"])
    for i, small in enumerate(ordered):
        for large in ordered[i + 1:]:
            if large["fooling_rate"]["ci95"][1] < small["fooling_rate"]["ci95"][0]:
                return Indicator(
                    "no-rise-with-budget", title, FIRED,
                    f"The sweep fooled {small['fooling_rate']['value']:.0%} of records at {small['chest_eps_mv']:g} "
                    f"mV but only {large['fooling_rate']['value']:.0%} at {large['chest_eps_mv']:g} mV: a larger "
                    "budget can only help an attacker, so the attack did not converge.",
                    {"smaller": small, "larger": large})
    return Indicator("no-rise-with-budget", title, PASSED,
                     "The sweep's fooling rate never fell significantly as the budget grew.",
                     {"points": len(ordered)})


def unbounded_sanity(model: ModelAdapter, evaluation: EcgDataset, clean: CleanEvaluation, *, seed: int,
                     queries_per_record: int) -> Indicator:
    """An attack with a budget of several mV must flip nearly every record; if not, the attack is broken."""
    from ecgaudit.attacks.harness import run_attack

    title = f"Unbounded sanity attack ({SANITY_EPS_MV:g} mV)"
    index = np.arange(min(PROBE_RECORDS, evaluation.n_records))
    subset = evaluation.subset(index)
    sub_clean = CleanEvaluation(clean.probabilities[index], clean.decisions[index],
                                None if clean.labels is None else clean.labels[index],
                                None if clean.correct is None else clean.correct[index], None, None,
                                None if clean.labelled is None else clean.labelled[index])
    modes = gradient_modes(model)
    if modes:
        from ecgaudit.attacks.pgd import PGD

        mode = "bpda" if "bpda" in modes else "white-box"
        attack: Any = PGD(eps_mv=SANITY_EPS_MV, steps=20)
        with gradients(model, mode):
            outcome = run_attack(attack, model, None, subset, seed=seed, clean_eval=sub_clean)
    else:
        from ecgaudit.attacks.spsa import SPSA

        mode = "black-box"
        attack = SPSA(fs=model.card.fs, eps_mv=SANITY_EPS_MV, queries=max(queries_per_record, 50))
        outcome = run_attack(attack, model, None, subset, seed=seed, clean_eval=sub_clean)
    rate = outcome.metrics["fooling_rate"]
    evidence = {"attack": attack.name, "threat_model": mode, "eps_mv": SANITY_EPS_MV, "fooling_rate": rate}
    if rate["value"] >= SANITY_MIN_FLIPPED:
        return Indicator("unbounded-sanity", title, PASSED,
                         f"A {mode} {attack.name} attack of {SANITY_EPS_MV:g} mV changed {rate['value']:.0%} of the "
                         "probed decisions, as an attack that works must.", evidence)
    return Indicator("unbounded-sanity", title, FIRED,
                     f"A {mode} {attack.name} attack of {SANITY_EPS_MV:g} mV, far beyond any clinical budget, changed "
                     f"only {rate['value']:.0%} of the probed decisions: the attacks are not working on this model, "
                     "so their low fooling rates say nothing about robustness.", evidence)


def adversarial_parity(attack_id: str, model: ModelAdapter, evaluation: EcgDataset,
                       runs: Sequence[ThreatRun]) -> Indicator:
    """Runtime and surrogate must agree on the adversarial records the surrogate's gradients crafted."""
    title = "Runtime and surrogate disagree on adversarial records"
    worst = 0.0
    checked = []
    n = min(PARITY_RECORDS, evaluation.n_records)
    for run in runs:
        outcome = run.outcome
        if run.threat_model not in GRADIENT_THREATS or outcome is None:
            continue
        delta = outcome.perturbation if outcome.perturbation is not None else outcome.perturbations_of(np.arange(n))
        x_adv = (evaluation.X[:n] + delta).astype(np.float32)
        runtime = model.predict(x_adv)
        with torch.no_grad():
            surrogate = model.surrogate_probabilities(torch.from_numpy(x_adv)).numpy()
        worst = max(worst, float(np.max(np.abs(runtime - surrogate))))
        checked.append(run.threat_model)
    if not checked:
        return Indicator("adversarial-parity", title, NOT_APPLICABLE, "No gradient attack ran.", attack=attack_id)
    evidence = {"max_abs_diff": worst, "tolerance": PARITY_TOLERANCE, "threat_models": checked, "records": n}
    if worst <= PARITY_TOLERANCE:
        return Indicator("adversarial-parity", title, PASSED,
                         f"{attack_id}: on adversarial records the runtime and its differentiable copy agree to "
                         f"{worst:.1g}.", evidence, attack_id)
    return Indicator("adversarial-parity", title, FIRED,
                     f"{attack_id}: on adversarial records the runtime and the differentiable copy the gradients "
                     f"came from disagree by {worst:.3g} (tolerance {PARITY_TOLERANCE:g}), so the attack optimised a "
                     "different model from the one judged.", evidence, attack_id)


def nondeterministic_runtime(model: ModelAdapter, evaluation: EcgDataset) -> Indicator:
    title = "Runtime gives different outputs for the same input"
    x = evaluation.X[: min(16, evaluation.n_records)]
    first, second = model.predict(x), model.predict(x)
    diff = float(np.max(np.abs(first - second)))
    same_decisions = bool(np.array_equal(model.decide(first), model.decide(second)))
    evidence = {"max_abs_diff": diff, "records": len(x), "same_decisions": same_decisions}
    if diff <= 1e-6 and same_decisions:
        return Indicator("nondeterministic-runtime", title, PASSED,
                         "The runtime returned the same outputs for the same input twice.", evidence)
    return Indicator("nondeterministic-runtime", title, FIRED,
                     f"The runtime returned outputs that differ by {diff:.3g} for the same input: fooling rates "
                     "measured on it mix attack and chance.", evidence)
