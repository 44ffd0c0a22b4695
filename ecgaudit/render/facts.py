"""What every renderer says the same way, derived from the report alone: the document fields, intended use,
the data warnings, the deviations, what was tested (budgets in mV, Hz and ms), and the threat-model mapping.

The PDF's first page, its deviations section and the console summary all read these, so the PDF and the
console never disagree. Every report field is optional here: a missing one reads as "not stated" or is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NOT_STATED = "not stated"
SYNTHETIC_SOURCE = "builtin:synthetic"
DOCUMENT_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "Document id"), ("revision", "Revision"), ("intended_use", "Intended use"),
    ("model_version", "Model version"), ("prepared_by", "Prepared by"), ("reviewed_by", "Reviewed by"),
)
"""The optional `document` fields (the profile's `[document]` table, overridden by the scan's flags)."""
SIGNATURE_MEANING = (
    "A hand or electronic signature in these fields means: prepared by — the signer ran the scan named here and "
    "confirms this report renders its report.json unchanged; reviewed by — the signer has checked the report's "
    "signature and digests (ecgaudit verify), the acceptance criteria and the deviations, and accepts the results "
    "as the bench-test record. The Ed25519 signature covers report.json, not these fields' meaning."
)
THREAT_MODELS: tuple[str, ...] = ("white-box", "bpda", "transfer", "black-box")


@dataclass(frozen=True)
class ThreatMapping:
    """How one threat model is named by the regulators' and MITRE's frameworks."""

    threat_model: str
    atlas: str
    fda: str
    eu_ai_act: str


_FDA = "model evasion (crafting input samples to deceive models)"
_EU = "Art. 15(5): adversarial examples or model evasion"
THREAT_MAPPING: tuple[ThreatMapping, ...] = (
    ThreatMapping("white-box", "AML.T0015 Evade AI Model; AML.T0043.000 Craft Adversarial Data: White-Box "
                  "Optimization", _FDA, _EU),
    ThreatMapping("bpda", "AML.T0015 Evade AI Model; AML.T0043.000 Craft Adversarial Data: White-Box Optimization "
                  "(with straight-through gradients)", _FDA, _EU),
    ThreatMapping("transfer", "AML.T0015 Evade AI Model; AML.T0043.002 Craft Adversarial Data: Transfer",
                  _FDA, _EU),
    ThreatMapping("black-box", "AML.T0015 Evade AI Model; AML.T0043.001 Craft Adversarial Data: Black-Box "
                  "Optimization", _FDA, _EU),
)


def get(d: Any, *keys: str, default: Any = None) -> Any:
    """`d[k1][k2]…`, or `default` where any level is missing or not a mapping (every report field is optional)."""
    for key in keys:
        if not isinstance(d, Mapping) or d.get(key) is None:
            return default
        d = d[key]
    return d


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def document(report: Mapping[str, Any]) -> dict[str, str]:
    """The document fields, each a string ("not stated" when absent): the report's `document` (the scan's
    flags over the profile's `[document]`), then the profile's table, then the model card (intended use and
    version only)."""
    own = get(report, "document", default={}) or {}
    table = get(report, "profile", "resolved", "document", default={}) or {}
    card = get(report, "model", "card", default={}) or {}
    from_card = {"intended_use": card.get("intended_use"), "model_version": card.get("version")}
    out: dict[str, str] = {}
    for key, _ in DOCUMENT_FIELDS:
        value = next((v for v in (_text(own.get(key)), _text(table.get(key)), _text(from_card.get(key)))
                      if v), None)
        out[key] = value or NOT_STATED
    return out


def model_task(report: Mapping[str, Any]) -> str:
    card = get(report, "model", "card", default={}) or {}
    task = _text(card.get("task"))
    if task:
        return task
    return "multilabel" if card.get("thresholds") or card.get("output") == "sigmoid" else NOT_STATED


def synthetic_warning(report: Mapping[str, Any]) -> str | None:
    """A warning when the records are ecgaudit's synthetic ECGs (they say nothing clinical)."""
    source = str(get(report, "data", "source", default=""))
    if not source.startswith(SYNTHETIC_SOURCE):
        return None
    return ("The records are ecgaudit's built-in synthetic ECGs (builtin:synthetic). They test the pipeline, not "
            "the model: every rate in this report says nothing about clinical robustness. Run the scan on real, "
            "labelled records of the intended population for evidence.")


def shortfall(report: Mapping[str, Any]) -> str | None:
    """A sentence when the splits got fewer records than the profile asked for."""
    short = get(report, "data", "hygiene", "shortfall", default={}) or {}
    if not short.get("short"):
        return None
    parts = []
    for split, label in (("craft", "craft"), ("eval", "evaluation")):
        asked, got = short.get(f"n_{split}_asked"), short.get(f"n_{split}")
        if asked is not None and got is not None and got < asked:
            parts.append(f"{label} split {got} of {asked}")
    detail = "; ".join(parts) or "fewer records than asked"
    return (f"Fewer usable records than the profile asked for ({detail}) after data hygiene: the confidence "
            "intervals are wider than the profile intended.")


def excluded_records(report: Mapping[str, Any]) -> list[str]:
    """Records data hygiene left out of the evaluation split, with the reason."""
    hygiene = get(report, "data", "hygiene", default={}) or {}
    out = []
    for entry in hygiene.get("excluded") or hygiene.get("flagged") or []:
        if isinstance(entry, Mapping):
            reasons = entry.get("reasons") or entry.get("reason") or []
            reasons = [reasons] if isinstance(reasons, str) else list(reasons)
            out.append(f"{entry.get('record', '?')}: {', '.join(map(str, reasons)) or 'flagged'}")
    return out


def threat_runs(attack: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t for t in attack.get("threat_models") or [] if isinstance(t, Mapping)]


def ran(attack: Mapping[str, Any]) -> list[str]:
    return [str(t.get("threat_model")) for t in threat_runs(attack) if t.get("status") == "ran"]


def labels_line(report: Mapping[str, Any]) -> str | None:
    """Where the labels came from and what the label map could not read, or None when no map was used."""
    labels = get(report, "data", "labels")
    if not labels:
        return None
    text = (f"{labels.get('description', labels.get('name'))}: {labels.get('n_labelled')} of "
            f"{get(report, 'data', 'n_records')} records labelled")
    unlabelled = labels.get("unlabelled_records") or []
    if unlabelled:
        text += f"; {len(unlabelled)} with no code in the map, unlabelled and left out of every accuracy"
    unmapped = labels.get("unmapped_codes") or {}
    if unmapped:
        shown = [f"{code} ({n})" for code, n in list(unmapped.items())[:8]]
        more = f" and {len(unmapped) - 8} more" if len(unmapped) > 8 else ""
        text += f"; codes not in the map (records): {', '.join(shown)}{more}"
    return text + "."


def white_box_not_possible(report: Mapping[str, Any]) -> str | None:
    """"white-box was not possible" and why, when any attack could not use the model's gradients."""
    for attack in report.get("attacks") or []:
        for run in threat_runs(attack):
            if run.get("threat_model") == "white-box" and run.get("status") == "not-possible":
                return f"white-box was not possible: {run.get('reason') or 'the model has no differentiable copy'}"
    return None


def deviations(report: Mapping[str, Any]) -> list[str]:
    """What the profile asked for and the scan did not do, one sentence each (record shortfall first)."""
    out: list[str] = []
    if (text := shortfall(report)) is not None:
        out.append(text)
    gone: dict[tuple[str, str, str], list[str]] = {}
    for attack in report.get("attacks") or []:
        for run in threat_runs(attack):
            status = str(run.get("status"))
            if status in ("not-possible", "off"):
                key = (str(run.get("threat_model")), status, str(run.get("reason") or ""))
                gone.setdefault(key, []).append(str(attack.get("id", "?")))
    for (threat, status, reason), ids in gone.items():
        verb = "was not possible" if status == "not-possible" else "was turned off by the profile"
        why = f": {reason}" if reason and status == "not-possible" else ""
        out.append(f"The {threat} threat model {verb} for {_ids(ids)}{why}.")
    nonfinite = get(report, "data", "hygiene", "nonfinite_craft_records") or []
    if nonfinite:
        out.append(f"{len(nonfinite)} craft record(s) ({_ids([str(r) for r in nonfinite])}) got NaN or infinite "
                   "outputs from the model's runtime (a flat lead under a per-lead normalisation does this) and were "
                   "left out of crafting.")
    note = get(report, "threat_models", "surrogate_note")
    if note:
        out.append(f"Transfer surrogates: {note}")
    sweep = report.get("sweep")
    asked_sweep = get(report, "profile", "resolved", "sweep")
    if isinstance(sweep, Mapping) and sweep.get("skipped"):
        out.append(f"The amplitude sweep was skipped: {sweep['skipped']}.")
    elif asked_sweep and not sweep:
        out.append("The profile asks for an amplitude sweep; the report holds none.")
    asked_transfer = get(report, "profile", "resolved", "transfer", "attacks", default=[]) or []
    if asked_transfer and not report.get("transfer"):
        out.append(f"The profile lists {_ids([str(a) for a in asked_transfer])} for transfer to other vendors' "
                   "models, but no --transfer-to model was given, so none was measured.")
    return out


def _ids(ids: Sequence[str]) -> str:
    return ", ".join(ids[:-1]) + f" and {ids[-1]}" if len(ids) > 1 else (ids[0] if ids else "no attack")


def eps_text(attack: Mapping[str, Any], leads: Sequence[str]) -> str:
    """ε grouped by value: 'ε = 0.1 mV (I, II, …); 0.2 mV (V2, …)'."""
    eps = get(attack, "params", "eps_mv")
    if isinstance(eps, int | float):
        return f"ε = {eps:g} mV on every lead"
    if not isinstance(eps, list) or not eps:
        return "ε not recorded"
    names = [str(c) for c in leads] if len(leads) == len(eps) else [f"#{i + 1}" for i in range(len(eps))]
    groups: dict[float, list[str]] = {}
    for lead, e in zip(names, eps, strict=True):
        groups.setdefault(float(e), []).append(lead)
    if len(groups) == 1:
        return f"ε = {next(iter(groups)):g} mV on every lead"
    return "ε = " + "; ".join(f"{value:g} mV ({', '.join(lead)})" for value, lead in groups.items())


def harm_text(metrics: Mapping[str, Any]) -> str | None:
    """What the changed decisions did to the labelled records: correct ones made wrong, wrong ones changed."""
    harm = metrics.get("harm")
    if not isinstance(harm, Mapping):
        return None
    return (f"{harm.get('correct_made_wrong')} of {harm.get('n_correct')} correct decisions made wrong; "
            f"{harm.get('wrong_changed')} of {harm.get('n_wrong')} wrong ones changed")


def start_text(run: Mapping[str, Any]) -> str | None:
    """Which start a universal gradient run kept (zero, or another threat model's perturbation) and what each
    start fooled on the craft split, or None when it had no other start."""
    info = run.get("info") or {}
    scores = info.get("starts_craft_fooling_rate")
    if not isinstance(scores, Mapping) or not scores:
        return None
    tried = ", ".join(f"{name} {float(value):.0%}" for name, value in scores.items())
    return f"kept the start from {info.get('start', '?')} (craft fooling: {tried})"


def relative_budgets(report: Mapping[str, Any]) -> list[str]:
    """Where the card or the model normalises each lead: each attack budget relative to the lead's spread (ε/σ),
    one sentence per distinct finding, naming the attacks it holds for."""
    found: dict[str, list[str]] = {}
    for attack in report.get("attacks") or []:
        summary = get(attack, "relative_budget", "summary")
        if summary:
            found.setdefault(str(summary), []).append(str(attack.get("id", "?")))
    return [f"{_ids(ids)}: {summary}" for summary, ids in found.items()]


def budget_text(attack: Mapping[str, Any], leads: Sequence[str]) -> str:
    """The attack's budget in physical units: ε in mV per lead, the low-pass (and band) in Hz, smoothing in ms."""
    params = get(attack, "params", default={}) or {}
    parts = [eps_text(attack, leads)]
    if params.get("cutoff_hz") is not None:
        band = (f"{params['low_hz']:g}–{params['cutoff_hz']:g} Hz band" if params.get("low_hz")
                else f"low-pass {params['cutoff_hz']:g} Hz")
        parts.append(band)
    if params.get("window_ms") is not None:
        parts.append(f"smoothing {params['window_ms']:g} ms")
    if str(params.get("lead_space", "12")) == "8":
        parts.append("8 independent leads (Einthoven/Goldberger hold)")
    return "; ".join(parts)


def leads_of(report: Mapping[str, Any]) -> list[str]:
    return [str(c) for c in get(report, "model", "card", "leads", default=[]) or []]


def failing_rules(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in get(report, "gate", "rules", default=[]) or [] if isinstance(r, Mapping)
            and not r.get("passed")]


def fired_indicators(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [i for i in report.get("indicators") or [] if isinstance(i, Mapping) and i.get("status") == "fired"]


def rule_text(rule: Mapping[str, Any]) -> str:
    """'scar-fooling: fooling_rate of scar 0.61 [0.48, 0.72]; upper bound 0.72 > 0.2'."""
    ci = rule.get("ci95")
    value = _num(rule.get("value"))
    if isinstance(ci, list | tuple) and len(ci) == 2 and None not in ci:
        value += f" [{_num(ci[0])}, {_num(ci[1])}]"
    subject = f" of {rule['attack']}" if rule.get("attack") else ""
    if rule.get("kind") == "regression":
        return (f"{rule.get('id', '?')}: {rule.get('metric', '?')}{subject} {value}, worse than the baseline by "
                f"{_num(rule.get('bound'))} (tolerance {_num(rule.get('threshold'))})")
    side = "upper" if rule.get("op") == "<=" else "lower"
    op = {"<=": "≤", ">=": "≥"}.get(str(rule.get("op")), str(rule.get("op", "?")))
    return (f"{rule.get('id', '?')}: {rule.get('metric', '?')}{subject} {value}; required {side} 95% bound "
            f"{op} {_num(rule.get('threshold'))}, got {_num(rule.get('bound'))}")


def _num(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "not measured" if value is None else str(value)
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError):
        return str(value)
