"""One attack's result block in section 4: every threat model's figures beside the noise floor, then the
perturbation per lead (budget, L∞, RMS, ST change at J and J + 60 ms) and the clinical measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, Paragraph, Spacer

from ecgaudit.leads import canonical_lead
from ecgaudit.render import facts
from ecgaudit.render.pdf.context import Context
from ecgaudit.render.pdf.text import STYLES, Bookmark, bullets, fmt, get, pct, rate, table

STATUS_WORDS = {"ran": "ran", "not-possible": "not possible", "not-applicable": "not applicable",
                "off": "off (profile)"}


def attack_block(ctx: Context, attack: Mapping[str, Any]) -> Flowable:
    """The attack's heading, threat-model table, per-lead table and clinical findings, kept on one page."""
    aid = str(attack.get("id", "?"))
    leads = facts.leads_of(ctx.report)
    worst = get(attack, "worst_case", "threat_model", default="—")
    head = [Bookmark(f"Attack {aid}", level=1),
            Paragraph(f"Attack {escape(aid)} ({escape(str(attack.get('attack', '?')))}, "
                      f"{'universal' if attack.get('universal') else 'per record'})", STYLES["h3"]),
            Paragraph(f"Budget: {escape(facts.budget_text(attack, leads))}. Gated figure: the worst case, from "
                      f"<b>{escape(str(worst))}</b> ({escape(str(get(attack, 'worst_case', 'rule', default='—')))}"
                      ").", STYLES["body"])]
    body: list[Flowable] = [_threat_table(attack), Spacer(1, 1.5 * mm)]
    per_lead = _per_lead_table(attack, leads)
    if per_lead is not None:
        body += [per_lead, Spacer(1, 1.5 * mm)]
    body += bullets(_clinical_items(attack))
    return KeepTogether([*head, *body, Spacer(1, 3 * mm)])


def _threat_table(attack: Mapping[str, Any]) -> Flowable:
    rows: list[list[Any]] = [["Threat model", "Status", "Fooling rate [95 % CI]", "Robust accuracy [95 % CI]",
                              "SNR (dB)", "SSIM", "L∞ (mV)", "Method and notes"]]
    for run in facts.threat_runs(attack):
        m = run.get("metrics") or {}
        rows.append([str(run.get("threat_model", "?")), STATUS_WORDS.get(str(run.get("status")), run.get("status")),
                     rate(m.get("fooling_rate")), rate(m.get("robust_accuracy")), fmt(m.get("snr_db"), ".1f"),
                     fmt(m.get("ssim"), ".3f"), fmt(m.get("linf_mv"), ".3g"), _notes(run)])
    for name, vm in (attack.get("variants") or {}).items():
        if isinstance(vm, Mapping):
            rows.append([f"{name} variant", "ran", rate(vm.get("fooling_rate")), rate(vm.get("robust_accuracy")),
                         fmt(vm.get("snr_db"), ".1f"), fmt(vm.get("ssim"), ".3f"), fmt(vm.get("linf_mv"), ".3g"),
                         "before the physiological filter Φ" if name == "unfiltered" else "—"])
    floor = attack.get("noise_floor") or {}
    if floor:
        rows.append(["noise floor", f"{fmt(floor.get('draws'), 'd')} draws",
                     f"max {rate(floor.get('max'))}", "—", "—", "—", "—",
                     f"mean {pct(floor.get('mean'))}; {floor.get('kind') or 'random perturbations, same budget'}"])
    m = attack.get("metrics") or {}
    rows.append(["worst case (gated)", str(get(attack, "worst_case", "threat_model", default="—")),
                 rate(m.get("fooling_rate")), rate(m.get("robust_accuracy")), fmt(m.get("snr_db"), ".1f"),
                 fmt(m.get("ssim"), ".3f"), fmt(m.get("linf_mv"), ".3g"), "the figure the acceptance criteria judge"])
    return table(rows, [w * mm for w in (28, 24, 36, 36, 14, 13, 14, 102)], bold_rows=(len(rows) - 1,))


def _notes(run: Mapping[str, Any]) -> str:
    if run.get("status") != "ran":
        return str(run.get("reason") or "—")
    parts = [f"method {run.get('method', '?')}"]
    if run.get("query_budget") is not None:
        used = run.get("queries_used")
        parts.append(f"query budget {fmt(run.get('query_budget'), ',.0f')} {run.get('query_budget_unit', '')}"
                     + (f", {fmt(used, ',.0f')} used" if used is not None else ""))
    for s in run.get("surrogates") or []:
        if isinstance(s, Mapping):
            parts.append(f"surrogate {s.get('surrogate', '?')}: {pct(get(s, 'fooling_rate', 'value'))} here, "
                         f"{pct(get(s, 'fooling_rate_on_surrogate', 'value'))} on the surrogate itself")
    start = facts.start_text(run)
    if start:
        parts.append(start)
    return "; ".join(parts)


def _per_lead_table(attack: Mapping[str, Any], card_leads: list[str]) -> Flowable | None:
    per_lead = get(attack, "metrics", "per_lead", default={}) or {}
    st = get(attack, "clinical", "st", "per_lead", default={}) or {}
    names = list(per_lead) or list(st)
    if not names:
        return None
    eps = get(attack, "params", "eps_mv")
    eps_by_lead: dict[str, Any] = {}
    if isinstance(eps, list) and len(eps) == len(card_leads):
        eps_by_lead = {canonical_lead(c) or c: e for c, e in zip(card_leads, eps, strict=True)}
    elif isinstance(eps, int | float):
        eps_by_lead = {canonical_lead(n) or n: eps for n in names}

    def lead_value(source: Mapping[str, Any], key: str, spec: str, scale: float = 1.0) -> list[str]:
        values = [get(source, n, key) for n in names]
        return [fmt(v * scale if isinstance(v, int | float) else v, spec) for v in values]

    rows = [["lead", *names],
            ["ε, budget (mV)", *[fmt(eps_by_lead.get(canonical_lead(n) or n), "g") for n in names]],
            ["L∞ (mV)", *lead_value(per_lead, "linf_mv", ".3f")],
            ["RMS (mV)", *lead_value(per_lead, "rms_mv", ".3f")]]
    if st:  # ST in µV: a change of tens of µV is what matters, and whole numbers fit the columns
        rows += [["ST at J, clean (µV, median)", *lead_value(st, "clean_j_mv", "+.0f", 1000)],
                 ["ST at J, attacked (µV, median)", *lead_value(st, "adversarial_j_mv", "+.0f", 1000)],
                 ["ΔST at J (µV, median)", *lead_value(st, "change_j_mv", "+.0f", 1000)],
                 ["ΔST at J (µV, IQR)", *[_iqr(get(st, n, "change_j_iqr_mv")) for n in names]],
                 ["ΔST at J + 60 ms (µV, median)", *lead_value(st, "change_j60_mv", "+.0f", 1000)]]
    width = min(17.0, 216.0 / max(1, len(names)))
    return table(rows, [48 * mm, *[width * mm] * len(names)])


def _iqr(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return f"{1000 * value[0]:+.0f}…{1000 * value[1]:+.0f}"
    return "—"


def _clinical_items(attack: Mapping[str, Any]) -> list[str]:
    c = attack.get("clinical") or {}
    items: list[str] = []
    harm = facts.harm_text(attack.get("metrics") or {})
    if harm is not None:
        items.append(f"Harm behind the gated fooling rate, on the labelled evaluation records: {harm} (a change on a "
                     "record the model already got wrong harms no patient).")
    if c.get("einthoven_residual_mv") is not None:
        items.append(f"Einthoven/Goldberger residual of the perturbation: {fmt(c['einthoven_residual_mv'], '.3g')} mV "
                     "RMS (0 when real electrodes could produce it).")
    if c.get("power_below_0p5_hz") is not None:
        items.append(f"Share of the perturbation's power below 0.5 Hz (baseline wander band): "
                     f"{pct(c['power_below_0p5_hz'])}.")
    front = c.get("front_end") or {}
    if front:
        cuts = "; ".join(f"after a {fmt(h.get('cutoff_hz'), 'g')} Hz high-pass {rate(h.get('fooling_rate'))}"
                         for h in front.get("highpass") or [] if isinstance(h, Mapping))
        items.append(f"Fooling rate through an ECG front end: unfiltered {rate(front.get('unfiltered'))}; {cuts}.")
    mi = get(c, "st", "mi_criteria", default={}) or {}
    if mi:
        newly = mi.get("newly_met") or {}
        items.append(f"Records newly meeting the ST-elevation criteria of MI (Fourth Universal Definition): "
                     f"{fmt(newly.get('successes'), 'd')} of {fmt(newly.get('total'), 'd')}, {rate(newly)}; "
                     f"clean {fmt(mi.get('clean_met'), 'd')}, attacked {fmt(mi.get('adversarial_met'), 'd')}; "
                     f"threshold used: {mi.get('rule') or '—'}.")
    st = get(c, "st", default={}) or {}
    if st.get("n_records") is not None:
        items.append(f"ST measured on {fmt(st.get('n_measured'), 'd')} of {fmt(st.get('n_records'), 'd')} records "
                     "(median beat; J point and PR baseline from the clean record, read at the same points attacked).")
    mis = get(attack, "metrics", "misdiagnosis", default={}) or {}
    targets = mis.get("top_targets") or ([mis["top_target"]] if mis.get("top_target") else [])
    if mis.get("n_changed"):
        tie = " (tied)" if len(targets) > 1 else ""
        items.append(f"{fmt(mis.get('n_changed'), 'd')} decisions changed; the most frequent new decision"
                     f"{'s' if len(targets) > 1 else ''}: {', '.join(map(str, targets)) or '—'}{tie}, "
                     f"{pct(mis.get('top_target_share'))} of the changes.")
    return [escape(i) for i in items] or ["No clinical measurements recorded for this attack."]
