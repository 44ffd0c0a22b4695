"""The one pipeline behind `ecgaudit scan` and `ecgaudit attack`: `plan()` (`ecgaudit.plan`) then `execute()`.

`execute` loads the data, evaluates clean records, runs the planned attacks, transfers, sweeps and gates, and
returns one report document. `attack` is a plan with one attack and no gate.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgaudit import __version__
from ecgaudit.errors import AttackError
from ecgaudit.plan import Plan, PlannedAttack, ScanConfig, plan_scan, resolve_data_spec
from ecgaudit.profiles import Profile
from ecgaudit.threats import PARITY_RECORDS

if TYPE_CHECKING:
    from ecgaudit.attacks.harness import AttackOutcome, Reporter
    from ecgaudit.data.interface import EcgDataset
    from ecgaudit.data.labels import LabelMap
    from ecgaudit.data.splits import Splits
    from ecgaudit.models.interface import ModelAdapter
    from ecgaudit.report.model import Report

SCHEMA_VERSION = "1"
N_SAMPLES_KEPT = 3
"""Eval records kept (clean, with each attack's perturbation) for the PDF and `--export-wfdb`."""


@dataclass
class ScanResult:
    report: Report
    perturbations: dict[str, np.ndarray] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    """Arrays for `samples.npz`: `X` clean `(k, L, T)` mV, `record_ids`, `fs`, `leads`, `delta_<id>` per attack."""

    @property
    def passed(self) -> bool:
        return self.report["gate"]["verdict"] == "PASS"

    @property
    def verdict(self) -> str:
        return str(self.report["gate"]["verdict"])


# ---- execution --------------------------------------------------------------------------------------------------

def load_for(model: ModelAdapter, spec: str, label_map: LabelMap | None = None) -> EcgDataset:
    from ecgaudit.data import load_dataset

    card = model.card
    return load_dataset(spec, fs=card.fs, n_samples=card.n_samples, leads=card.leads, label_map=label_map)


def prepare_splits(model: ModelAdapter, profile: Profile, data: str, seed: int) -> Splits:
    """Load the data at the model's rate and draw the profile's craft/eval split with `seed`."""
    settings = profile.data["data"]
    return _splits(model, resolve_data_spec(data, settings["n_craft"] + settings["n_eval"]), settings["n_craft"],
                   settings["n_eval"], seed, settings.get("min_n_eval"))


def _splits(model: ModelAdapter, spec: str, n_craft: int, n_eval: int, seed: int,
            min_n_eval: int | None = None, label_map: LabelMap | None = None) -> Splits:
    from ecgaudit.data.splits import draw_splits

    return draw_splits(load_for(model, spec, label_map), spec, n_craft=n_craft, n_eval=n_eval, seed=seed,
                       min_n_eval=min_n_eval)


def _finite_on_runtime(model: ModelAdapter, craft: EcgDataset) -> tuple[EcgDataset, list[str]]:
    """The craft records the runtime answers with finite outputs, and the ids of the others. Craft records may
    have a flat lead (they are never evaluated), and a model that z-scores each lead can answer one with NaN: that
    record is left out of crafting and named in the report, instead of ending the audit."""
    from ecgaudit.errors import NonFiniteOutput
    from ecgaudit.metrics import record_chunks

    bad: list[int] = []
    for rows in record_chunks(craft.n_records):
        try:
            with np.errstate(all="ignore"):
                model.raw_predict(craft.X[rows])
        except NonFiniteOutput as exc:
            bad += [rows.start + row for row in exc.rows]
    if not bad:
        return craft, []
    if len(bad) == craft.n_records:
        raise AttackError(f"the model answers every craft record with NaN or infinite outputs "
                          f"({craft.n_records} records); nothing can be crafted on them.")
    keep = np.array(sorted(set(range(craft.n_records)) - set(bad)), dtype=np.int64)
    return craft.subset(keep), [craft.record_ids[i] for i in bad]


def _with_nonfinite(summary: dict[str, Any], nonfinite: list[str]) -> dict[str, Any]:
    if nonfinite:
        summary.setdefault("hygiene", {})["nonfinite_craft_records"] = nonfinite
    return summary


def environment(model: ModelAdapter) -> dict[str, Any]:
    """The machine and where the audited model ran: requested device, the surrogate's, the runtime's placement."""
    import onnxruntime
    import torch

    from ecgaudit.distributed import describe
    from ecgaudit.models.device import cpu_description

    return {
        "python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "threads": torch.get_num_threads(),
        **model.placement(), "distributed": describe(), "cpu": cpu_description(),
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


def execute(plan: Plan, reporter: Reporter | None = None) -> ScanResult:
    """Load data, evaluate clean, run every planned attack under every threat model, transfer, sweep, check the
    attack-failure indicators, then gate (scans only)."""
    from ecgaudit.attacks.harness import NullReporter
    from ecgaudit.evaluation import evaluate_clean
    from ecgaudit.threats import load_surrogates

    reporter = reporter or NullReporter()
    started = time.perf_counter()
    model, profile, seed = plan.model, plan.profile, plan.seed
    card = model.card
    splits = _splits(model, plan.data_spec, plan.n_craft, plan.n_eval, seed,
                     None if profile is None else profile.data["data"].get("min_n_eval"), plan.label_map)
    craft, evaluation = splits.craft, splits.evaluation
    craft, nonfinite = _finite_on_runtime(model, craft)
    model.check_parity(evaluation.X[:16], refuse=False)  # a gap drops white-box and BPDA, not the audit
    stage = reporter.task("clean evaluation", evaluation.n_records)
    clean = evaluate_clean(model, evaluation)
    stage(evaluation.n_records, evaluation.n_records)
    surrogates, surrogate_note = load_surrogates(plan.threats.transfer, model, splits.spec, craft.record_ids,
                                                 evaluation.record_ids)
    timings: dict[str, float] = {"setup": time.perf_counter() - started}

    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "ecgaudit", "version": __version__},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model.describe(),
        "data": _with_nonfinite(splits.summary(seed), nonfinite),
        "environment": environment(model),
        "seed": seed,
        "clean": clean.to_dict(card.classes),
        "threat_models": {**plan.threats.to_dict(),
                          "surrogates": [{"name": s.name, "sha256": s.model.sha256, "fs": s.model.card.fs}
                                         for s in surrogates],
                          "gradient_modes": list(_gradient_modes(model)),
                          "surrogate_note": surrogate_note},
        "attacks": [],
        "transfer": [],
        "transfer_data": [],
        "sweep": None,
    }
    if profile is not None:
        report["profile"] = {"name": profile.name, "version": profile.data["profile"]["version"],
                             "source": profile.source, "sha256": profile.sha256, "resolved": profile.data}
    result = ScanResult(report)
    outcomes, runs_by_attack, shared_black_box = {}, {}, {}
    targets = [(t, load_for(t.model, splits.spec, plan.label_map).subset(splits.eval_idx))
               for t in plan.transfer_targets]
    other_data = [load_for(model, spec, plan.label_map) for spec in plan.transfer_data]
    for planned in plan.attacks:
        t0 = time.perf_counter()
        doc, outcome, runs = _run_planned(planned, plan, model, craft, evaluation, clean, surrogates, surrogate_note,
                                          reporter, result, shared_black_box)
        _transfer_out(planned, outcome, model, targets, other_data, report)
        report["attacks"].append(doc)
        outcomes[planned.id] = outcome
        runs_by_attack[planned.id] = runs
        timings[planned.id] = time.perf_counter() - t0
    result.samples = keep_samples(evaluation, outcomes, clean.decisions, card.classes)
    _release_record_perturbations(outcomes, runs_by_attack)
    if plan.sweep is not None:
        t0 = time.perf_counter()
        report["sweep"] = _sweep(plan, model, craft, evaluation, clean, reporter)
        timings["sweep"] = time.perf_counter() - t0
    if plan.indicators:
        t0 = time.perf_counter()
        floors = {a["id"]: a.get("noise_floor") for a in report["attacks"]}
        report["indicators"] = [i.to_dict() for i in _indicators(plan, model, evaluation, clean, runs_by_attack,
                                                                 report["sweep"], floors)]
        timings["indicators"] = time.perf_counter() - t0
    if profile is not None:
        _gate(report, profile, plan.baseline)
    timings["total"] = time.perf_counter() - started
    report["timing_seconds"] = timings
    return result


def _gradient_modes(model: ModelAdapter) -> tuple[str, ...]:
    from ecgaudit.threats import gradient_modes

    return gradient_modes(model)


def _release_record_perturbations(outcomes: dict[str, AttackOutcome], runs_by_attack: dict[str, list[Any]]) -> None:
    """Once the samples are kept, per-record perturbations are read only by the adversarial-parity indicator, and
    only its first records: the rest is freed (PTB-XL's test fold: 0.26 GB per per-record attack)."""
    held = [*outcomes.values(), *(run.outcome for runs in runs_by_attack.values() for run in runs)]
    for outcome in held:
        if outcome is not None and outcome.record_perturbations is not None and outcome.record_rows is None:
            outcome.keep_records(np.arange(outcome.n_eval) < PARITY_RECORDS)
    outcomes.clear()


def _run_planned(planned: PlannedAttack, plan: Plan, model: ModelAdapter, craft: EcgDataset,
                 evaluation: EcgDataset, clean: Any, surrogates: Any, surrogate_note: str | None, reporter: Reporter,
                 result: ScanResult, cache: dict[Any, Any]) -> tuple[dict[str, Any], AttackOutcome, list[Any]]:
    """One attack under every threat model; its document (worst case gated), outcome and runs."""
    from ecgaudit.attacks.harness import Prefixed
    from ecgaudit.data import splits as data_splits
    from ecgaudit.threats import knowledge, noise_floor, run_threat_models, worst_case

    runs = run_threat_models(planned.attack, model, craft, evaluation, clean, settings=plan.threats,
                             surrogates=surrogates, surrogate_note=surrogate_note, seed=plan.seed,
                             reporter=Prefixed(reporter, planned.id), shared=cache, attack_id=planned.id)
    if not any(r.outcome is not None for r in runs):
        raise AttackError(f"{planned.id}: no threat model could run ({'; '.join(r.reason or '' for r in runs)}); "
                          "enable transfer or black-box in the profile's [threat_models].")
    outcome, worst = worst_case(runs, planned.attack, model, evaluation, clean)
    # The attack as the profile names it; the method each threat model used is recorded under threat_models.
    doc = {"id": planned.id, **outcome_document(outcome), "attack": planned.attack.name,
           "params": planned.attack.params()}
    doc["worst_case"] = {"threat_model": worst, "rule": (
        "the highest fooling rate over the threat models that ran" if planned.attack.universal else
        "per record: robust only if every threat model's attack failed on it")}
    gradient_run = next((r.outcome for r in runs if r.outcome is not None and r.outcome.variants), None)
    if gradient_run is not None:
        doc["variants"] = gradient_run.variants
    doc["threat_models"] = []
    for run in runs:
        entry: dict[str, Any] = {"threat_model": run.threat_model, "status": run.status,
                                 "knowledge": knowledge(run.threat_model, model, plan.threats, surrogates,
                                                        run.details.get("query_budget"),
                                                        run.details.get("query_budget_unit"))}
        if run.reason:
            entry["reason"] = run.reason
        entry.update(run.details)
        if run.outcome is not None:
            entry.update({"method": run.details.get("method", run.outcome.attack), "metrics": run.outcome.metrics,
                          "seconds": run.outcome.seconds, "info": run.outcome.info})
            v = run.outcome.perturbation
            if v is not None:
                key = planned.id if run.outcome is outcome else f"{planned.id}.{run.threat_model}"
                result.perturbations[key] = v
                entry["perturbation"] = {"path": f"perturbations/{key}.npy", "shape": list(v.shape), "unit": "mV",
                                         "sha256": run.outcome.perturbation_sha256}
        doc["threat_models"].append(entry)
    if outcome.perturbation is not None:
        doc["perturbation"]["path"] = f"perturbations/{planned.id}.npy"
        result.perturbations[planned.id] = outcome.perturbation
    doc["noise_floor"] = noise_floor(planned.attack, model, evaluation, clean, draws=plan.threats.noise_floor_draws,
                                     seed=plan.seed)
    doc["clinical"] = _clinical(outcome, model, evaluation, clean)
    delta = outcome.record_perturbations
    if delta is not None and outcome.record_rows is None and delta.nbytes >= data_splits.SAMPLES_ON_DISK_BYTES:
        from ecgaudit.data.interface import samples_on_disk

        # From here on only the example records read it, and only after every attack has run.
        outcome.record_perturbations = samples_on_disk(delta, np.arange(len(delta)))
    doc["relative_budget"] = _relative_budget(planned.attack, model, evaluation, cache)
    return doc, outcome, runs


def _relative_budget(attack: Any, model: ModelAdapter, evaluation: EcgDataset, cache: dict[Any, Any]
                     ) -> dict[str, Any] | None:
    """ε/σ per lead when the card or the model normalises each lead (`models.budget.relative_budget`); one
    computation per budget."""
    from ecgaudit.models.budget import relative_budget

    eps = tuple(attack.constraint.eps_mv)
    if ("relative_budget", eps) not in cache:
        cache[("relative_budget", eps)] = relative_budget(model, evaluation.X, eps)
    return cache[("relative_budget", eps)]


def _clinical(outcome: AttackOutcome, model: ModelAdapter, evaluation: EcgDataset, clean: Any) -> dict[str, Any]:
    """What a clinician or an ECG front end makes of the gated perturbation (`ecgaudit.clinical.measure`)."""
    from ecgaudit.clinical.measure import clinical_metrics

    delta = outcome.perturbation if outcome.perturbation is not None else outcome.record_perturbations
    assert delta is not None
    return clinical_metrics(evaluation.X, delta, evaluation.fs, evaluation.leads, predict=model.predict,
                            decide=model.decide, clean_decisions=clean.decisions)


def _transfer_out(planned: PlannedAttack, outcome: AttackOutcome, model: ModelAdapter,
                  targets: list[Any], other_data: list[Any], report: dict[str, Any]) -> None:
    """The gated universal perturbation, measured on the `--transfer-to` models and `--transfer-data` sets."""
    from ecgaudit.attacks.transfer import transfer
    from ecgaudit.data.splits import data_summary

    v = outcome.perturbation
    if v is None or not planned.transfer:
        return
    card = model.card
    cutoff_hz = planned.attack.constraint.cutoff_hz  # type: ignore[union-attr]
    for target, target_eval in targets:
        metrics = transfer(v, card.fs, target.model, target_eval, cutoff_hz=cutoff_hz, lead_index=target.lead_index)
        report["transfer"].append({"attack": planned.id, "model": str(target.model.path),
                                   "sha256": target.model.sha256, "format": target.model.format, "metrics": metrics})
    for other in other_data:
        metrics = transfer(v, card.fs, model, other, cutoff_hz=cutoff_hz, lead_index=tuple(range(len(card.leads))))
        report["transfer_data"].append({"attack": planned.id, "data": data_summary(other), "metrics": metrics})


def _sweep(plan: Plan, model: ModelAdapter, craft: EcgDataset, evaluation: EcgDataset, clean: Any,
           reporter: Reporter) -> dict[str, Any]:
    """The amplitude sweep with the strongest gradients the model allows (bpda over white-box)."""
    from ecgaudit.sensitivity import amplitude_sweep
    from ecgaudit.threats import gradients

    assert plan.sweep is not None
    sweep_attack, chest_mv = plan.sweep
    modes = _gradient_modes(model)
    entry: dict[str, Any] = {"attack": sweep_attack.name, "params": sweep_attack.params(), "points": []}
    if not modes:
        entry["threat_model"] = None
        entry["skipped"] = ("the sweep re-crafts SCAR with gradients at each amplitude, and this model has no "
                            "differentiable copy")
        return entry
    mode = "bpda" if "bpda" in modes else "white-box"
    with gradients(model, mode):
        entry["points"] = amplitude_sweep(sweep_attack, model, craft, evaluation, chest_mv=chest_mv, seed=plan.seed,
                                          reporter=reporter, clean_eval=clean)
    entry["threat_model"] = mode
    return entry


def _indicators(plan: Plan, model: ModelAdapter, evaluation: EcgDataset, clean: Any,
                runs_by_attack: dict[str, list[Any]], sweep: dict[str, Any] | None,
                floors: dict[str, Any]) -> list[Any]:
    from ecgaudit import indicators as ind

    found = [ind.masked_gradients(model, evaluation, clean, ind.excluded_gradient_records(runs_by_attack)),
             ind.unbounded_sanity(model, evaluation, clean, seed=plan.seed,
                                  queries_per_record=plan.threats.queries_per_record),
             ind.nondeterministic_runtime(model, evaluation),
             ind.no_rise_with_budget(sweep["points"] if sweep else None),
             ind.sweep_without_perturbation(sweep["points"] if sweep else None)]
    constraint_of = {p.id: repr(p.attack.constraint) for p in plan.attacks}
    for attack_id, runs in runs_by_attack.items():
        # Gradient attacks under the same budget are the reference: a black-box SCAR beating the white-box
        # DeepFool baseline says DeepFool is the weaker algorithm, not that gradients failed.
        peers = {other: other_runs for other, other_runs in runs_by_attack.items()
                 if constraint_of[other] == constraint_of[attack_id]}
        found.append(ind.stronger_without_gradients(attack_id, runs, peers))
        found.append(ind.adversarial_parity(attack_id, model, evaluation, runs))
        found.append(ind.below_noise_floor(attack_id, runs, floors.get(attack_id)))
    return found


def _gate(report: dict[str, Any], profile: Profile, baseline: dict[str, Any] | None) -> None:
    from ecgaudit.report.gate import evaluate_rules, regressions

    rules = evaluate_rules(report, profile.rules)
    if baseline is not None:
        rules += regressions(report, baseline, profile.rules, profile.data["gate"]["regression_tolerance"])
        report["baseline"] = {"created": baseline.get("created"),
                              "model_sha256": baseline.get("model", {}).get("sha256")}
    fired = [i for i in report.get("indicators", []) if i["status"] == "fired"]
    if not all(r["passed"] for r in rules):
        verdict = "FAIL"
    elif fired:
        verdict = "INCONCLUSIVE"
    else:
        verdict = "PASS"
    report["gate"] = {"rules": rules, "verdict": verdict, "inconclusive": [i["summary"] for i in fired]}


def run_scan(config: ScanConfig, reporter: Reporter | None = None) -> ScanResult:
    """Plan, then execute, a profile's whole battery."""
    return execute(plan_scan(config), reporter)


def attack_files(result: ScanResult) -> dict[str, np.ndarray]:
    """File name -> perturbation, for every perturbation `attack.json` names (`evidence.attack_file`)."""
    from ecgaudit.evidence import attack_file

    (attack,) = result.report["attacks"]
    return {attack_file(attack["id"], key): v for key, v in result.perturbations.items()}


def attack_document(result: ScanResult) -> dict[str, Any]:
    """The `attack.json` document of a one-attack run: the attack's fields at the top level."""
    report = result.report
    (attack,) = report["attacks"]
    doc = {key: report[key] for key in ("tool", "model", "data", "clean", "environment")}
    doc["data"] = {k: v for k, v in doc["data"].items() if k != "splits"}
    doc["splits"] = report["data"]["splits"]
    doc.update({k: v for k, v in attack.items() if k != "id"})
    from ecgaudit.evidence import attack_file

    if "perturbation" in doc:
        doc["perturbation"] = {**doc["perturbation"], "path": attack_file(attack["id"], attack["id"])}
    def renamed(entry: dict[str, Any]) -> dict[str, Any]:  # the scan's perturbations/<key>.npy, as written here
        key = entry["perturbation"]["path"].removeprefix("perturbations/").removesuffix(".npy")
        return {**entry, "perturbation": {**entry["perturbation"], "path": attack_file(attack["id"], key)}}

    doc["threat_models"] = [renamed(e) if "perturbation" in e else e for e in attack.get("threat_models", [])]
    doc["transfer"] = [{k: v for k, v in t.items() if k != "attack"} for t in report["transfer"]]
    doc["transfer_data"] = [{k: v for k, v in t.items() if k != "attack"} for t in report["transfer_data"]]
    if report["sweep"] is not None:
        doc["sweep"] = report["sweep"]["points"]
    return doc


def keep_samples(evaluation: Any, outcomes: dict[str, Any], clean_decisions: np.ndarray,
                 classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Up to `N_SAMPLES_KEPT` example records for the PDF, with each attack's perturbation of them.

    The records most attacks fooled (ties: earliest), among those that say something: no quality flag (a flat or
    clipped lead makes any attack look strong) and no two with the same signal (a duplicate shows nothing new).
    Flagged records are used only when too few clean ones remain.
    """
    import hashlib

    fooled_count = np.zeros(evaluation.n_records, dtype=int)
    for outcome in outcomes.values():
        if outcome.fooled is not None:
            fooled_count += outcome.fooled.astype(int)
    flagged = {q.record_id for q in getattr(evaluation, "quality", ())}
    order = np.argsort(-fooled_count, kind="stable")
    ranked = [i for i in order if evaluation.record_ids[i] not in flagged] + \
        [i for i in order if evaluation.record_ids[i] in flagged]
    chosen_list: list[int] = []
    seen: set[str] = set()
    for i in ranked:
        digest = hashlib.sha256(np.ascontiguousarray(evaluation.X[i]).tobytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            chosen_list.append(int(i))
        if len(chosen_list) == N_SAMPLES_KEPT:
            break
    chosen = np.array(chosen_list, dtype=np.int64)

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
            delta = outcome.perturbations_of(chosen)
        samples[f"delta_{attack_id}"] = np.ascontiguousarray(delta, dtype=np.float32)
        samples[f"decision_{attack_id}"] = np.array([names(outcome.adversarial_decisions[i]) for i in chosen])
    return samples
