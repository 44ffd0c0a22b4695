"""Threat models: every attack runs under each attacker-knowledge setting that applies to the model, and the
gated figure is the worst case over them (AutoAttack's rule for per-record attacks: a record is robust only if
every attack failed on it; the highest fooling rate for universal ones).

- `white-box`: exact gradients of the differentiable copy of the model.
- `bpda`: the same copy with a straight-through (identity) gradient for operators whose gradient is zero or
  undefined (Athalye, Carlini, Wagner, ICML 2018); the forward pass stays the vendor's arithmetic.
- `transfer`: crafted on reference surrogate models, carried to the target's rate, length and leads, measured on
  the target's runtime.
- `black-box`: the target's runtime scores only (SCAR's update with estimated gradients for universal attacks,
  SPSA for per-record ones), within a query budget.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ecgaudit.attacks.harness import AttackOutcome, Reporter, measure_outcome, run_attack
from ecgaudit.attacks.interface import PerSampleAttack, UniversalAttack
from ecgaudit.attacks.measure import measure_records
from ecgaudit.attacks.transfer import conform_perturbation
from ecgaudit.data.interface import EcgDataset
from ecgaudit.defaults import builtin_model_path
from ecgaudit.evaluation import CleanEvaluation
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.report.model import QUERY_BUDGET_SENTENCE

THREAT_MODELS: tuple[str, ...] = ("white-box", "bpda", "transfer", "black-box")
GRADIENT_THREATS: tuple[str, ...] = ("white-box", "bpda")
PARITY_RECORDS = 16
"""Eval records the adversarial-parity indicator checks (runtime against surrogate on adversarial inputs)."""

KNOWLEDGE = {
    "white-box": "The attacker knows the model's architecture and weights and uses exact gradients of its "
                 "differentiable copy.",
    "bpda": "As white-box, but the model's non-differentiable steps ({ops}) pass gradients straight through "
            "(BPDA); the forward pass is the vendor's arithmetic.",
    "transfer": "The attacker has no access to the model: perturbations are crafted with gradients of reference "
                "surrogate models ({surrogates}) and then applied to the audited model.",
    "black-box": "The attacker can only query the model and read its output scores; it never sees a gradient."
                 "{budget}",
}


@dataclass(frozen=True)
class ThreatSettings:
    """The profile's `[threat_models]` table (every key optional)."""

    white_box: bool = True
    bpda: bool = True
    transfer: tuple[str, ...] = ("builtin:cnn",)
    """Reference surrogates: `builtin:<name>` (a bundled model) or a model file path."""
    black_box: bool = True
    queries_universal: int = 20000
    """Black-box query budget for each universal attack (records scored, all steps together)."""
    queries_per_record: int = 200
    """Black-box query budget per record for each per-record attack."""
    noise_floor_draws: int = 5

    @classmethod
    def from_profile(cls, table: dict[str, Any] | None) -> ThreatSettings:
        table = dict(table or {})
        if "transfer" in table:
            table["transfer"] = tuple(table["transfer"])
        return cls(**table)

    def to_dict(self) -> dict[str, Any]:
        return {"white_box": self.white_box, "bpda": self.bpda, "transfer": list(self.transfer),
                "black_box": self.black_box, "queries_universal": self.queries_universal,
                "queries_per_record": self.queries_per_record, "noise_floor_draws": self.noise_floor_draws}


@dataclass(frozen=True)
class Surrogate:
    """A reference model for the transfer threat, with the run's splits loaded at its own rate."""

    name: str
    model: ModelAdapter
    craft: EcgDataset
    evaluation: EcgDataset
    lead_index: tuple[int | None, ...]
    """For each of the target's leads, the surrogate's lead that feeds it (None: no such lead, zeros)."""


@dataclass
class ThreatRun:
    """One attack under one threat model: ran (with its outcome) or did not (with the reason, in words)."""

    threat_model: str
    status: str
    """`ran`, `not-possible` (the model does not allow it), `not-applicable` or `off` (the profile disabled it)."""
    reason: str | None = None
    outcome: AttackOutcome | None = None
    details: dict[str, Any] = field(default_factory=dict)


def gradient_modes(model: ModelAdapter) -> tuple[str, ...]:
    """The gradient threat models the model allows: () for a runtime-only model; bpda when it has operators
    whose gradient is zero or undefined."""
    return tuple(model.gradient_modes)


@contextlib.contextmanager
def gradients(model: ModelAdapter, mode: str) -> Iterator[None]:
    """Run the surrogate with `mode`'s backward pass (white-box or bpda)."""
    with model.gradient_mode(mode):
        yield


def knowledge(threat_model: str, model: ModelAdapter, settings: ThreatSettings,
              surrogates: Sequence[Surrogate], queries: int | None = None, unit: str | None = None) -> str:
    ops = ", ".join(model.bpda_ops) or "none"
    names = ", ".join(s.name for s in surrogates) or "none"
    budget = f"{QUERY_BUDGET_SENTENCE}{queries:,} queries {unit or ''}".rstrip() + "." if queries is not None else ""
    return KNOWLEDGE[threat_model].format(ops=ops, surrogates=names, budget=budget)


def run_threat_models(
    attack: UniversalAttack | PerSampleAttack,
    model: ModelAdapter,
    craft: EcgDataset,
    evaluation: EcgDataset,
    clean: CleanEvaluation,
    *,
    settings: ThreatSettings,
    surrogates: Sequence[Surrogate],
    surrogate_note: str | None,
    seed: int,
    reporter: Reporter,
    shared: dict[Any, tuple[str, AttackOutcome]] | None = None,
    attack_id: str = "",
) -> list[ThreatRun]:
    """The attack under every threat model, in `THREAT_MODELS` order, each measured on the target's runtime.

    A universal attack's gradient runs start from zero and again from every other threat model's perturbation
    (each transfer surrogate's, the black-box one): a hardened model's gradients can stall an attack from zero that
    a start nearer a weakness escapes. The start that fools most craft records wins (chosen on the craft split,
    never on the evaluation split) and is named in the run's `info`.

    `shared` carries black-box results between the attacks of one run: attacks with the same constraint have
    the same black-box counterpart, so it runs once and the later ones reuse its outcome (and say so)."""
    transfer, transfer_starts = _transfer_run(attack, model, evaluation, clean, settings, surrogates,
                                              surrogate_note, seed, reporter)
    black_box_run = _black_box_run(attack, model, craft, evaluation, clean, settings, seed, reporter, shared,
                                   attack_id)
    starts: list[tuple[str, np.ndarray]] = []
    if isinstance(attack, UniversalAttack):
        starts = transfer_starts + ([("black-box", black_box_run.outcome.perturbation)]
                                    if black_box_run.outcome is not None
                                    and black_box_run.outcome.perturbation is not None else [])
    modes = gradient_modes(model)
    no_gradients = model.surrogate_error or "the model has no differentiable copy"
    runs: list[ThreatRun] = []
    for threat in GRADIENT_THREATS:
        enabled = settings.white_box if threat == "white-box" else settings.bpda
        if not enabled:
            runs.append(ThreatRun(threat, "off", "the profile turns this threat model off"))
        elif threat in modes:
            with gradients(model, threat):
                outcome = _best_start(attack, model, craft, evaluation, clean, starts, seed, reporter)
            runs.append(ThreatRun(threat, "ran", outcome=outcome))
        elif not modes:
            runs.append(ThreatRun(threat, "not-possible",
                                  f"white-box gradients are not available: {no_gradients.rstrip('.')}"))
        else:
            runs.append(ThreatRun(threat, "not-applicable", "the model has no operator whose gradient is zero or "
                                  "undefined, so white-box gradients are exact"))
    return [*runs, transfer, black_box_run]


def _best_start(attack: UniversalAttack | PerSampleAttack, model: ModelAdapter, craft: EcgDataset,
                evaluation: EcgDataset, clean: CleanEvaluation, starts: Sequence[tuple[str, np.ndarray]], seed: int,
                reporter: Reporter) -> AttackOutcome:
    """The attack from zero and from each start; the outcome whose perturbation fools most craft records, with
    `info.start` naming its start and `info.starts_craft_fooling_rate` each start's craft fooling rate."""
    outcome = run_attack(attack, model, craft, evaluation, seed=seed, reporter=reporter, clean_eval=clean)
    if not starts or outcome.perturbation is None:
        return outcome
    from ecgaudit.metrics import decisions_changed, record_chunks

    def decisions(v: np.ndarray | float) -> np.ndarray:  # a chunk at a time, as everywhere a split is scored
        return np.concatenate([model.decide(model.predict(craft.X[rows] + v))
                               for rows in record_chunks(craft.n_records)])

    craft_clean = decisions(0.0)

    def craft_fooling(v: np.ndarray) -> float:
        return float(decisions_changed(craft_clean, decisions(v)).mean())

    scores = {"zero": craft_fooling(outcome.perturbation)}
    best, best_name = outcome, "zero"
    for name, init in starts:
        candidate = run_attack(attack, model, craft, evaluation, seed=seed, reporter=reporter, clean_eval=clean,
                               init=init)
        assert candidate.perturbation is not None
        scores[name] = craft_fooling(candidate.perturbation)
        if scores[name] > scores[best_name]:
            best, best_name = candidate, name
    best.info = {**best.info, "start": best_name, "starts_craft_fooling_rate": scores}
    return best


def _black_box_run(attack: UniversalAttack | PerSampleAttack, model: ModelAdapter, craft: EcgDataset,
                   evaluation: EcgDataset, clean: CleanEvaluation, settings: ThreatSettings, seed: int,
                   reporter: Reporter, shared: dict[Any, tuple[str, AttackOutcome]] | None,
                   attack_id: str) -> ThreatRun:
    if not settings.black_box:
        return ThreatRun("black-box", "off", "the profile turns this threat model off")
    black_box = _black_box_attack(attack, settings, model)
    key = (black_box.name, repr(black_box.constraint), repr(sorted(black_box.params().items())))
    budget = settings.queries_universal if attack.universal else settings.queries_per_record
    details: dict[str, Any] = {
        "method": black_box.name, "query_budget": budget,
        "query_budget_unit": "records scored in all" if attack.universal else "per record"}
    if shared is not None and key in shared:
        owner, outcome = shared[key]
        details["shared_with"] = owner
    else:
        outcome = run_attack(black_box, model, craft, evaluation, seed=seed, reporter=reporter, clean_eval=clean)
        if shared is not None:
            shared[key] = (attack_id, outcome)
    details["queries_used"] = outcome.info.get("queries")
    return ThreatRun("black-box", "ran", outcome=outcome, details=details)


def passband_floor_hz(model: ModelAdapter) -> float:
    """The lowest frequency the card's preprocessing lets through (its highest high-pass edge), else 0."""
    edges = [float(step.low_hz) for step in model.card.preprocessing if getattr(step, "low_hz", None)]
    return max(edges, default=0.0)


def _black_box_attack(attack: UniversalAttack | PerSampleAttack, settings: ThreatSettings, model: ModelAdapter
                      ) -> UniversalAttack | PerSampleAttack:
    """The score-based counterpart of `attack`, with the same constraint. The attacker may read the model's
    published card, so its search skips frequencies the vendor's own preprocessing removes."""
    fs, floor_hz = model.card.fs, passband_floor_hz(model)
    if isinstance(attack, UniversalAttack):
        from ecgaudit.attacks.blackbox_scar import BlackBoxSCAR

        return BlackBoxSCAR(constraint=attack.constraint, fs=fs, queries=settings.queries_universal,
                            floor_hz=floor_hz)
    from ecgaudit.attacks.spsa import SPSA

    eps = attack.constraint.eps_mv
    return SPSA(fs=fs, eps_mv=eps if len(eps) > 1 else eps[0], queries=settings.queries_per_record,
                floor_hz=floor_hz)


def _transfer_run(attack: UniversalAttack | PerSampleAttack, model: ModelAdapter, evaluation: EcgDataset,
                  clean: CleanEvaluation, settings: ThreatSettings, surrogates: Sequence[Surrogate],
                  surrogate_note: str | None, seed: int, reporter: Reporter
                  ) -> tuple[ThreatRun, list[tuple[str, np.ndarray]]]:
    """The transfer run (the surrogate whose perturbation fools most), and each universal perturbation carried to
    the target, named `transfer (<surrogate>)`, for the gradient runs to start from."""
    if not settings.transfer:
        return ThreatRun("transfer", "off", "the profile names no reference surrogate"), []
    if not surrogates:
        return ThreatRun("transfer", "not-applicable", surrogate_note or "no reference surrogate is usable"), []
    best: tuple[AttackOutcome, str] | None = None
    per_surrogate = []
    starts: list[tuple[str, np.ndarray]] = []
    for surrogate in surrogates:
        started = time.perf_counter()
        source_attack = _rebuild_for(attack, model.card.leads, surrogate.model)
        with gradients(surrogate.model, "bpda" if "bpda" in gradient_modes(surrogate.model) else "white-box"):
            source = run_attack(source_attack, surrogate.model, surrogate.craft, surrogate.evaluation, seed=seed,
                                reporter=reporter)
        crafted = source.perturbation if source.perturbation is not None else source.record_perturbations
        assert crafted is not None
        carried = carry(crafted, surrogate, model)
        if source.perturbation is not None:
            starts.append((f"transfer ({surrogate.name})", carried))
        outcome = measure_outcome(attack, model, evaluation, clean, carried, n_craft=source.n_craft,
                                  craft_seconds=time.perf_counter() - started, reporter=reporter)
        outcome.info = {"surrogate": surrogate.name, "surrogate_sha256": surrogate.model.sha256,
                        "surrogate_fooling_rate": source.metrics["fooling_rate"]["value"]}
        per_surrogate.append({"surrogate": surrogate.name, "sha256": surrogate.model.sha256,
                              "fooling_rate": outcome.metrics["fooling_rate"],
                              "fooling_rate_on_surrogate": source.metrics["fooling_rate"]})
        if best is None or outcome.metrics["fooling_rate"]["value"] > best[0].metrics["fooling_rate"]["value"]:
            best = (outcome, surrogate.name)
    assert best is not None
    return ThreatRun("transfer", "ran", outcome=best[0],
                     details={"surrogates": per_surrogate, "worst_surrogate": best[1]}), starts


def _rebuild_for(attack: UniversalAttack | PerSampleAttack, target_leads: Sequence[str], surrogate: ModelAdapter
                 ) -> UniversalAttack | PerSampleAttack:
    """The same attack with the same budget per lead, at the surrogate's rate and in its lead order (a lead the
    target lacks gets the largest budget the target has: the surrogate may use it freely, it is dropped when the
    perturbation is carried over)."""
    eps_by_lead = dict(zip(target_leads, attack.constraint.eps_mv))
    if len(attack.constraint.eps_mv) == 1:
        eps_by_lead = dict.fromkeys(target_leads, attack.constraint.eps_mv[0])
    widest = max(eps_by_lead.values())
    surrogate_eps = tuple(eps_by_lead.get(lead, widest) for lead in surrogate.card.leads)
    if isinstance(attack, UniversalAttack):
        constraint = replace(attack.constraint, eps_mv=surrogate_eps, leads=tuple(surrogate.card.leads))
        return replace(attack, constraint=constraint, fs=surrogate.card.fs)  # type: ignore[call-arg]
    if len(attack.constraint.eps_mv) == 1:
        return attack
    return replace(attack, eps_mv=surrogate_eps)  # type: ignore[call-arg]


def carry(delta: np.ndarray, surrogate: Surrogate, target: ModelAdapter) -> np.ndarray:
    """A perturbation crafted on the surrogate (`(L_s, T_s)` or `(N, L_s, T_s)`), carried to the target's leads,
    rate and length; a target lead the surrogate lacks gets zeros."""
    card = target.card
    rows = np.zeros(delta.shape[:-2] + (len(card.leads), delta.shape[-1]), dtype=np.float32)
    for i, j in enumerate(surrogate.lead_index):
        if j is not None:
            rows[..., i, :] = delta[..., j, :]
    flat = rows.reshape(-1, rows.shape[-1])
    carried = conform_perturbation(flat, surrogate.model.card.fs, card.fs, card.n_samples)
    return carried.reshape(rows.shape[:-1] + (card.n_samples,))


def worst_case(runs: Sequence[ThreatRun], attack: UniversalAttack | PerSampleAttack, model: ModelAdapter,
               evaluation: EcgDataset, clean: CleanEvaluation) -> tuple[AttackOutcome, str]:
    """The gated outcome: universal, the threat model with the highest fooling rate; per record, each record's
    first successful threat model (the record counts as robust only if every one failed)."""
    ran = [r for r in runs if r.outcome is not None]
    if not ran:
        raise RuntimeError(f"{attack.name}: no threat model ran")
    if attack.universal:
        best = max(ran, key=lambda r: r.outcome.metrics["fooling_rate"]["value"])  # type: ignore[union-attr]
        assert best.outcome is not None
        return best.outcome, best.threat_model
    first = ran[0].outcome
    assert first is not None and first.record_perturbations is not None
    if first.record_rows is not None:
        raise RuntimeError(f"{attack.name}: the {ran[0].threat_model} outcome was already merged into another "
                           "attack's worst case and no longer holds every record.")
    # The worst case is merged into the first threat model's array, and every outcome then keeps only what is
    # read later: the records it fooled (another attack sharing this black-box run merges those) and the first
    # PARITY_RECORDS (the adversarial-parity indicator). So one whole set stays in memory, not one per threat
    # model plus the merge. A lone threat model's outcome is the worst case itself and is left whole.
    delta = first.record_perturbations
    keep = np.arange(evaluation.n_records) < PARITY_RECORDS
    if len(ran) > 1:  # the first outcome keeps copies of its rows; its whole array becomes the merge
        first.keep_records(first.fooled | keep if first.fooled is not None else np.ones(evaluation.n_records, bool))
    chosen = np.full(evaluation.n_records, ran[0].threat_model, dtype=object)
    done = first.fooled.copy() if first.fooled is not None else np.zeros(evaluation.n_records, bool)
    for run in ran[1:]:
        outcome = run.outcome
        assert outcome is not None and outcome.fooled is not None and outcome.record_perturbations is not None
        take = outcome.fooled & ~done
        delta[take] = outcome.perturbations_of(np.flatnonzero(take))
        chosen[take] = run.threat_model
        done |= outcome.fooled
        if outcome.record_rows is None:
            outcome.keep_records(outcome.fooled | keep)
    metrics, fooled, adv = measure_records(model, evaluation, clean, delta, cutoff_hz=None)
    counts = {tm: int(((chosen == tm) & fooled).sum()) for tm in dict.fromkeys(chosen.tolist())}
    combined = AttackOutcome(first.attack, first.params, False, None, metrics, 0, evaluation.n_records,
                             {"craft": 0.0, "evaluate": 0.0}, {}, {"fooled_by": counts}, fooled, adv, delta)
    label = "+".join(tm for tm, n in counts.items() if n) or ran[0].threat_model
    return combined, f"per record ({label})"


def load_surrogates(specs: Sequence[str], target: ModelAdapter, data_spec: str, craft_ids: Sequence[str],
                    eval_ids: Sequence[str]) -> tuple[list[Surrogate], str | None]:
    """Load the reference surrogates and the run's split records at each one's rate (matched by record id).

    Returns the usable surrogates and, when none is, why in words. The audited model itself is never its own
    surrogate: transfer from it is white-box.
    """
    from ecgaudit.models import load_model
    from ecgaudit.scan import load_for

    surrogates, notes = [], []
    for spec in specs:
        path = builtin_model_path(spec)
        surrogate = load_model(path, device=target.device, threads=target.threads)
        if surrogate.sha256 == target.sha256:
            notes.append(f"{spec} is the audited model itself, so transfer from it would repeat the white-box "
                         "attack")
            continue
        if not gradient_modes(surrogate):
            notes.append(f"{spec} has no differentiable copy")
            continue
        dataset = load_for(surrogate, data_spec)
        index = {rid: i for i, rid in enumerate(dataset.record_ids)}
        missing = [rid for rid in (*craft_ids, *eval_ids) if rid not in index]
        if missing:
            notes.append(f"{spec} could not read record {missing[0]} at its own rate")
            continue
        lead_index = tuple(surrogate.card.leads.index(lead) if lead in surrogate.card.leads else None
                           for lead in target.card.leads)
        if all(i is None for i in lead_index):
            notes.append(f"{spec} shares no lead with the audited model")
            continue
        surrogates.append(Surrogate(spec, surrogate, dataset.subset(np.array([index[r] for r in craft_ids])),
                                    dataset.subset(np.array([index[r] for r in eval_ids])), lead_index))
    return surrogates, ("; ".join(notes) + ".") if notes else None


def noise_floor(attack: UniversalAttack | PerSampleAttack, model: ModelAdapter, evaluation: EcgDataset,
                clean: CleanEvaluation, *, draws: int, seed: int) -> dict[str, Any]:
    """Fooling rates of random perturbations with the attack's budget and spectrum, on the runtime.

    Universal attacks: random smooth, band-limited perturbations (noise tilted towards the low band edge, as the
    black-box search draws it, through the constraint's smoothing, each lead filling its ε). Per-record attacks:
    uniform noise in the ε box, drawn per record.
    """
    from ecgaudit.attacks.blackbox_scar import smooth_directions
    from ecgaudit.metrics import decisions_changed, record_chunks, wilson

    generator = torch.Generator().manual_seed(seed + 7919)
    x = torch.from_numpy(evaluation.X)
    eps = attack.constraint.eps_tensor(x)
    rates = []
    for _ in range(draws):
        universal_delta = None
        if isinstance(attack, UniversalAttack):
            fs = float(attack.params()["fs"])
            universal_delta = smooth_directions(attack.constraint, fs, tuple(x.shape[1:]), generator, slope=1.0,
                                                floor_hz=passband_floor_hz(model))
        decisions = []
        for rows in record_chunks(len(x)):  # a chunk at a time: memory grows with the chunk only
            chunk = x[rows]
            delta = universal_delta if universal_delta is not None else \
                (torch.rand(chunk.shape, generator=generator) * 2 - 1) * eps
            decisions.append(model.decide(model.predict((chunk + delta).numpy())))
        after, before = np.concatenate(decisions), clean.decisions
        fooled = decisions_changed(before, after)
        rates.append(wilson(int(fooled.sum()), len(fooled)).to_dict())
    values = [r["value"] for r in rates]
    kind = ("random smooth band-limited perturbations with the same ε, cutoff and smoothing"
            if attack.universal else "uniform noise in the same ε box, drawn per record")
    return {"kind": kind, "draws": draws, "per_draw": rates, "mean": float(np.mean(values)),
            "max": rates[int(np.argmax(values))]}
