"""Sections 1–3 of the PDF report, in FDA's bench-test order: objectives, methods (test article, data and
sample sizes, threat models with their ATLAS / FDA / EU AI Act names, attacks, measurements, standards) and the
pre-specified acceptance criteria.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph

from ecgaudit.render import facts
from ecgaudit.render.pdf.context import Context
from ecgaudit.render.pdf.text import STYLES, bullets, fmt, get, id_width, kv_table, mono, section, table
from ecgaudit.report.model import QUERY_BUDGET_SENTENCE

ATTACK_METHODS = {
    "pgd": (
        "<b>pgd: per-record L∞ projected gradient descent</b> (Madry et al., ICLR 2018). For each record separately, "
        "from a uniformly random start inside the ε box (<i>random_start</i>), it takes <i>steps</i> signed-gradient "
        "ascent steps of size <i>step_mv</i> on the classifier's loss and projects back onto |δ(t)| ≤ ε of each lead "
        "after every step. A worst-case reference: the perturbation is tailored to each record and not "
        "physiologically constrained; at ε = 10 µV it is the SCAR paper's “invisible noise” reference."),
    "uap-deepfool": (
        "<b>uap-deepfool: universal perturbation with post-hoc filtering</b> (Moosavi-Dezfooli et al., CVPR 2017, "
        "Alg. 1). One perturbation v for all records: passing over the craft set, for each record v does not yet "
        "fool it adds the minimal DeepFool step (Moosavi-Dezfooli et al., CVPR 2016; up to <i>deepfool_max_iter</i> "
        "iterations with <i>overshoot</i>) and projects onto the ε box, until the craft fooling rate reaches "
        "<i>target_fooling_rate</i> or after <i>max_passes</i>. Then the physiological filter "
        "Φ(v) = clip<sub>ε</sub>(low-pass(smooth(v))) of the SCAR paper (eq. 2): a zero-phase Butterworth low-pass "
        "at <i>cutoff_hz</i>, Gaussian smoothing over <i>window_ms</i>, clipping to the ε box. The reported metrics "
        "are those of the filtered v; the unfiltered v is reported as a variant."),
    "scar": (
        "<b>scar: SCAR</b> (Jia and Liao; eq. 3–5). One universal v crafted by normalised SGD with the smoothing "
        "inside the loop: per minibatch of craft records, g = ∇<sub>v</sub> L(f(x + v), y), the smoothed gradient "
        "g′ = K<sub>temp</sub> ∗ F<sub>low</sub>(g) (zero-phase low-pass at <i>cutoff_hz</i>, then Gaussian "
        "smoothing over <i>window_ms</i>), and v ← Π<sub>ε</sub>(v + α g′ / ‖g′‖<sub>2</sub>), with α a fraction of "
        "the ε box's L2 radius, for <i>epochs</i> over the craft set. The perturbation is smooth and low-frequency "
        "by construction: it looks like physiology (baseline and ST–T changes), not noise."),
    "scar-stealth": (
        "<b>scar-stealth</b>: SCAR with a 5 Hz cutoff (paper §4.3), meant to be invisible to a reader of the "
        "tracing."),
}
THREAT_METHODS = (
    "<b>Black-box methods.</b> Universal attacks: SCAR's update (eq. 5) with the gradient estimated by antithetic "
    "finite differences along random directions drawn from the constraint's own smooth, band-limited subspace "
    "(scar-blackbox). Per-record attacks: SPSA (Uesato et al., ICML 2018). Both read only the runtime's output "
    "scores, within the query budget stated per attack. <b>Transfer</b>: the same attack crafted with the gradients "
    "of reference surrogate models, carried to the audited model's rate, length and leads, and measured on its "
    "runtime. <b>BPDA</b> (Athalye, Carlini and Wagner, ICML 2018): a straight-through backward pass for operators "
    "whose gradient is zero or undefined; the forward pass stays the vendor's arithmetic. <b>Noise floor</b>: "
    "random perturbations of the same budget and spectrum (uniform in the ε box for per-record attacks; random "
    "smooth band-limited ones for universal attacks), several draws, measured on the runtime: an attack's figure "
    "means something only above it."
)
STANDARDS = (
    "FDA, <i>Recommended Content and Format of Non-Clinical Bench Performance Testing Information in Premarket "
    "Submissions</i> (guidance, 2019): the structure of this report.",
    "FDA, <i>Artificial Intelligence-Enabled Device Software Functions: Lifecycle Management and Marketing "
    "Submission Recommendations</i> (draft guidance, 2025): “model evasion (crafting input samples to deceive "
    "models)” as an AI threat.",
    "IMDRF, <i>Good Machine Learning Practice for Medical Device Development: Guiding Principles</i>: principles 8 "
    "(testing under clinically relevant conditions, subgroups) and 9 (known limitations).",
    "MITRE ATLAS: AML.T0015 Evade AI Model; AML.T0043 Craft Adversarial Data (.000 white-box, .001 black-box, "
    ".002 transfer).",
    "Regulation (EU) 2024/1689 (AI Act), Art. 15(5): resilience against “adversarial examples or model evasion”.",
    "IEC 60601-2-25 (electrocardiographs) and IEC 60601-2-27 (ECG monitoring): paper speed 25 mm/s, gain 10 mm/mV, "
    "the 0.05 Hz diagnostic and 0.5 Hz monitoring low-frequency edges used for the front-end check.",
    "Fourth Universal Definition of Myocardial Infarction (Thygesen et al., 2018): the ST-elevation criteria.",
    "Wilson (1927) score intervals for every rate.",
)


def methods_pages(ctx: Context) -> list[Flowable]:
    return [*_objectives(ctx), *_methods(ctx), *_criteria(ctx)]


def _objectives(ctx: Context) -> list[Flowable]:
    r = ctx.report
    profile = r.get("profile") or {}
    story = section("1 Objectives")
    story.append(Paragraph(
        f"To determine whether <b>{escape(ctx.model_name)}</b> keeps its decisions when an adversary perturbs its "
        "input ECGs within stated, physiologically bounded budgets, judged by the acceptance criteria pre-specified "
        f"in profile <b>{escape(str(profile.get('name', '—')))} {escape(str(profile.get('version', '')))}</b> "
        f"(SHA-256 {mono(profile.get('sha256'))}). The test addresses the threat that FDA's AI-enabled device "
        "guidance calls model evasion (crafting input samples to deceive models), MITRE ATLAS AML.T0015 (Evade AI "
        "Model) and the EU AI Act Art. 15(5) (adversarial examples or model evasion). It is a non-clinical bench "
        "test: it measures how the model's decisions change under attack, not its clinical accuracy.",
        STYLES["body"]))
    if profile.get("resolved") and get(profile, "resolved", "profile", "description"):
        story.append(Paragraph(f"Profile: {escape(str(get(profile, 'resolved', 'profile', 'description')))}",
                               STYLES["body"]))
    story.append(Paragraph("Tests performed", STYLES["h2"]))
    items = []
    for attack in r.get("attacks") or []:
        threats = ", ".join(facts.ran(attack)) or "no threat model recorded"
        items.append(f"<b>{escape(str(attack.get('id', '?')))}</b>: {escape(str(attack.get('attack', '?')))} "
                     f"({'universal' if attack.get('universal') else 'per record'}), "
                     f"{escape(facts.budget_text(attack, facts.leads_of(r)))}; threat models: {escape(threats)}")
    sweep = r.get("sweep")
    if isinstance(sweep, Mapping) and sweep.get("points"):
        items.append(f"<b>amplitude sweep</b> of {escape(str(sweep.get('attack', '?')))} over "
                     f"{len(sweep['points'])} chest-lead budgets")
    if r.get("transfer"):
        items.append(f"<b>transfer</b> of universal perturbations to {len(r['transfer'])} other model run(s)")
    items.append("<b>attack-failure indicators</b> (masked gradients, unbounded sanity attack, runtime determinism, "
                 "rise with budget, gradient-free attacks beating white-box, adversarial parity)")
    return story + bullets(items or ["none recorded"])


def _methods(ctx: Context) -> list[Flowable]:
    r = ctx.report
    model = r.get("model") or {}
    card = model.get("card") or {}
    runtime = model.get("runtime") or {}
    doc = facts.document(r)
    story = section("2 Methods", new_page=False)
    story += section("2.1 Test article", new_page=False, level=1)
    story.append(kv_table([
        ("Model file", escape(str(model.get("path", "—")))),
        ("Format and runtime", escape(f"{model.get('format', '—')}; {runtime.get('runtime', '—')} "
                                      f"{runtime.get('version', '')}; differentiable copy "
                                      f"{runtime.get('surrogate', '—')}")),
        ("Compute", escape(f"{get(r, 'environment', 'runtime', default='runtime placement not recorded')}; "
                           f"gradients on {get(r, 'environment', 'surrogate_device', default=None) or 'no device'}; "
                           f"CPU threads {fmt(get(r, 'environment', 'threads'), 'd')}")),
        ("SHA-256", mono(model.get("sha256"))),
        ("Model version / intended use", escape(f"{doc['model_version']} / {doc['intended_use']}")),
        ("Input", escape(f"{fmt(card.get('fs'), 'g')} Hz, {fmt(card.get('n_samples'), 'd')} samples, leads "
                         f"{', '.join(map(str, card.get('leads') or [])) or '—'}")),
        ("Output", escape(f"{card.get('output', '—')}; task {facts.model_task(r)}; classes "
                          f"{', '.join(map(str, card.get('classes') or [])) or '—'}")),
        ("Parity (runtime vs differentiable copy)", f"max |Δp| {fmt(model.get('parity_max_abs_diff'), '.3g')}"),
    ], (60 * mm, 200 * mm)))
    story += section("2.2 Data and sample sizes", new_page=False, level=1)
    story += _data(ctx)
    story += section("2.3 Threat models", new_page=False, level=1)
    story += _threat_models(ctx)
    story += section("2.4 Attacks", new_page=False, level=1)
    seen: list[str] = []
    for attack in r.get("attacks") or []:
        name = str(attack.get("attack", "?"))
        if name not in seen:
            seen.append(name)
            story.append(Paragraph(ATTACK_METHODS.get(name, f"<b>{escape(name)}</b>: no description on file."),
                                   STYLES["body"]))
    story.append(Paragraph(THREAT_METHODS, STYLES["body"]))
    rows: list[list[Any]] = [["Attack id", "Attack", "Budget (mV, Hz, ms)", "Other parameters", "Craft / eval"]]
    for attack in r.get("attacks") or []:
        params = {k: v for k, v in (attack.get("params") or {}).items()
                  if k not in ("eps_mv", "cutoff_hz", "window_ms", "low_hz", "lead_space")}
        rows.append([attack.get("id", "?"), attack.get("attack", "?"), facts.budget_text(attack, facts.leads_of(r)),
                     ", ".join(f"{k} = {v}" for k, v in params.items()) or "—",
                     f"{fmt(attack.get('n_craft'), 'd')} / {fmt(attack.get('n_eval'), 'd')}"])
    story.append(table(rows, [w * mm for w in (32, 24, 95, 90, 22)]))
    story += section("2.5 Measurements and statistics", new_page=False, level=1)
    story.append(Paragraph(_statistics(ctx), STYLES["body"]))
    story += section("2.6 Standards and references", new_page=False, level=1)
    story.append(Paragraph("This scan does not claim conformity with these documents; it follows their structure "
                           "and conventions where stated.", STYLES["body"]))
    return story + bullets(list(STANDARDS))


def _data(ctx: Context) -> list[Flowable]:
    r = ctx.report
    data = r.get("data") or {}
    splits = data.get("splits") or {}
    hygiene = data.get("hygiene") or {}
    n_eval = splits.get("n_eval")
    half = f"{100 * 1.96 * math.sqrt(0.25 / n_eval):.1f}" if isinstance(n_eval, int) and n_eval > 0 else "—"
    story: list[Flowable] = [Paragraph(
        f"Source <b>{escape(str(data.get('source', '—')))}</b> at {fmt(data.get('fs'), 'g')} Hz: "
        f"{fmt(data.get('n_records'), 'd')} records loaded, {fmt(hygiene.get('n_usable'), 'd')} usable after data "
        f"hygiene. Universal perturbations are crafted on {fmt(splits.get('n_craft'), 'd')} craft records and every "
        f"rate is measured on {fmt(n_eval, 'd')} disjoint evaluation records (split seed "
        f"{fmt(splits.get('seed'), 'd')}; split by {escape(str(hygiene.get('patients_split_by', 'record')))}); at "
        f"that size a 95 % Wilson interval is at most ±{half} points wide.", STYLES["body"])]
    dups = hygiene.get("duplicates") or []
    items = [f"exact duplicates collapsed: {len(dups)}",
             f"records flagged (flat, clipped or missing lead): {len(hygiene.get('flagged') or [])}; kept out of the "
             f"evaluation split: {len(hygiene.get('excluded') or [])}"]
    items += [escape(e) for e in facts.excluded_records(r)[:10]]
    story += bullets(items)
    for warning in (facts.synthetic_warning(r), facts.shortfall(r)):
        if warning:
            story.append(Paragraph("WARNING: " + escape(warning), STYLES["alarm"]))
    return story


def _threat_models(ctx: Context) -> list[Flowable]:
    r = ctx.report
    settings = r.get("threat_models") or {}
    knowledge: dict[str, str] = {}
    for attack in r.get("attacks") or []:
        for run in facts.threat_runs(attack):
            # One attack's query budget is not the threat model's: the Setting column gives every budget.
            text = str(run.get("knowledge") or "").split(QUERY_BUDGET_SENTENCE)[0]
            knowledge.setdefault(str(run.get("threat_model")), text)
    surrogates = ", ".join(str(s.get("name", "?")) for s in settings.get("surrogates") or []
                           if isinstance(s, Mapping)) or "none usable"
    setting_text = {
        "white-box": "on" if settings.get("white_box", True) else "off",
        "bpda": "on" if settings.get("bpda", True) else "off",
        "transfer": f"surrogates: {surrogates}",
        "black-box": (f"{fmt(settings.get('queries_universal'), ',.0f')} queries per universal attack, "
                      f"{fmt(settings.get('queries_per_record'), ',.0f')} per record"
                      if settings.get("black_box", True) else "off"),
    }
    rows: list[list[Any]] = [["Threat model", "What the attacker knows", "Setting", "MITRE ATLAS", "FDA (AI-enabled "
                              "devices)", "EU AI Act"]]
    for m in facts.THREAT_MAPPING:
        rows.append([m.threat_model, knowledge.get(m.threat_model) or "—", setting_text[m.threat_model], m.atlas,
                     m.fda, m.eu_ai_act])
    modes = ", ".join(map(str, settings.get("gradient_modes") or [])) or "none (no differentiable copy)"
    return [Paragraph(
        "Every attack runs under each threat model that applies to the model; the gated figure is the worst case "
        "over those that ran (per record for per-record attacks: a record is robust only if every threat model's "
        f"attack failed on it; the highest fooling rate for universal ones). Gradient modes of this model: "
        f"{escape(modes)}.", STYLES["body"]),
        table(rows, [w * mm for w in (20, 72, 38, 55, 40, 38)])]


def _statistics(ctx: Context) -> str:
    return (
        "Every rate is measured on the vendor's own runtime running the submitted file; gradients come from the "
        "differentiable copy only after a parity check. <b>Fooling rate</b>: the share of evaluation records whose "
        "decision changed under attack (labels not needed). <b>Attack success rate</b>: the share of correctly "
        "classified records the attack made wrong. <b>Robust accuracy</b>: accuracy under attack. Every rate carries "
        "a 95 % Wilson score interval, valid at 0 %, 100 % and small n. <b>SNR</b> is 10·log<sub>10</sub> of clean "
        "over perturbation power, averaged over records; <b>SSIM</b> the structural similarity of clean and "
        "adversarial tracings with a 50 ms window (per lead, averaged); <b>L∞</b> and <b>RMS</b> per lead in mV; "
        "<b>power ≤ cutoff</b> the share of the perturbation's Welch power at or below the attack's low-pass cutoff. "
        "<b>Clinical measurements</b>: the Einthoven/Goldberger residual of the perturbation (RMS, mV: zero when "
        "real electrodes could produce it); its share of power below 0.5 Hz; the fooling rate after an ECG front "
        "end's high-pass at 0.05 Hz (diagnostic) and 0.5 Hz (monitoring); the ST deviation at the J point and at "
        "J + 60 ms against the PR-segment baseline of each record's median beat, clean and attacked; and the share of "
        "records that newly meet the ST-elevation criteria of the Fourth Universal Definition of MI.")


def _criteria(ctx: Context) -> list[Flowable]:
    r = ctx.report
    profile = r.get("profile") or {}
    rules = [rule for rule in get(r, "gate", "rules", default=[]) or [] if isinstance(rule, Mapping)]
    story = section("3 Pre-specified acceptance criteria", new_page=False)
    story.append(Paragraph(
        f"Fixed in profile {escape(str(profile.get('name', '—')))} {escape(str(profile.get('version', '')))} "
        f"(SHA-256 {mono(profile.get('sha256'))}) before the scan ran. A criterion is judged on the conservative end "
        "of its 95 % interval: a rate that must stay low by its upper bound, one that must stay high by its lower "
        "bound, so a small evaluation set cannot pass by luck. The verdict is FAIL when any criterion fails, "
        "INCONCLUSIVE when every criterion is met but an attack-failure indicator fired, and PASS otherwise.",
        STYLES["body"]))
    if not rules:
        return story + [Paragraph("The profile sets no acceptance criteria.", STYLES["body"])]
    rows: list[list[Any]] = [["Criterion", "Attack", "Metric", "Requirement", "Rationale (from the profile)"]]
    for rule in rules:
        op = {"<=": "≤", ">=": "≥"}.get(str(rule.get("op")), str(rule.get("op", "?")))
        side = "upper" if rule.get("op") == "<=" else "lower"
        requirement = (f"no worse than the baseline by more than {fmt(rule.get('threshold'), 'g')}"
                       if rule.get("kind") == "regression" else
                       f"{side} 95 % bound {op} {fmt(rule.get('threshold'), 'g')}")
        rows.append([rule.get("id", "?"), rule.get("attack") or "clean", rule.get("metric", "?"), requirement,
                     rule.get("why") or "—"])
    first = id_width([rule.get("id", "?") for rule in rules], 40)
    return story + [table(rows, [first, 28 * mm, 30 * mm, 45 * mm, 264 * mm - first - 103 * mm])]
