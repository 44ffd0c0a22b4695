"""Sections 5–7 of the PDF report: deviations, discussion and conclusions, limitations (IMDRF GMLP 8–9).

The discussion is written from the numbers: each attack's worst case against its noise floor, what an ECG
front end's high-pass does to it, records newly meeting the MI criteria, and what the verdict does and does not
support.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from reportlab.platypus import Flowable, Paragraph

from ecgaudit.render import facts
from ecgaudit.render.pdf.context import Context
from ecgaudit.render.pdf.text import STYLES, bullets, get, pct, rate, section


def closing_pages(ctx: Context) -> list[Flowable]:
    return [*_deviations(ctx), *_discussion(ctx), *_limitations(ctx)]


def _deviations(ctx: Context) -> list[Flowable]:
    r = ctx.report
    story = section("5 Deviations")
    story.append(Paragraph("What the profile asked for and the scan did not do, and records left out. A threat model "
                           "that does not apply to this model (e.g. BPDA for a model without non-differentiable "
                           "steps) is not a deviation.", STYLES["body"]))
    found = facts.deviations(r)
    story += bullets([escape(d) for d in found]) if found else [Paragraph("None.", STYLES["body"])]
    excluded = facts.excluded_records(r)
    if excluded:
        story.append(Paragraph(f"Records kept out of the evaluation split by data hygiene ({len(excluded)}):",
                               STYLES["body"]))
        story += bullets([escape(e) for e in excluded[:40]])
    return story


def _discussion(ctx: Context) -> list[Flowable]:
    r = ctx.report
    story = section("6 Discussion and conclusions", new_page=False)
    verdict = ctx.verdict
    failed = facts.failing_rules(r)
    items = [_attack_sentence(a) for a in r.get("attacks") or [] if isinstance(a, Mapping)]
    story += bullets([escape(i) for i in items if i])
    fired = facts.fired_indicators(r)
    if fired:
        story.append(Paragraph(escape("Attack-failure indicators fired: " + " ".join(
            str(i.get("summary", "")) for i in fired)), STYLES["body"]))
    if verdict == "PASS":
        conclusion = ("Conclusion: every pre-specified acceptance criterion was met and no attack-failure indicator "
                      "fired. This supports robustness to the attacks, threat models and budgets tested here, on "
                      "these records; it is not evidence against attacks or budgets outside them (section 7).")
    elif verdict == "FAIL":
        conclusion = (f"Conclusion: the model does not meet {len(failed)} pre-specified acceptance criteria ("
                      f"{', '.join(str(rule.get('id', '?')) for rule in failed)}): within the stated budgets an "
                      "adversary can change its decisions more often than the profile allows.")
    elif verdict == "INCONCLUSIVE":
        conclusion = ("Conclusion: no claim of robustness can be made. The criteria were met, but an attack-failure "
                      "indicator shows that the attacks may have failed for reasons other than the model's "
                      "robustness; the figures above are lower bounds on what an adversary achieves.")
    else:
        conclusion = "Conclusion: the report records no verdict."
    story.append(Paragraph(f"<b>{escape(conclusion)}</b>", STYLES["body"]))
    return story


def _attack_sentence(attack: Mapping[str, Any]) -> str:
    aid = str(attack.get("id", "?"))
    fooling = get(attack, "metrics", "fooling_rate", default={}) or {}
    floor = get(attack, "noise_floor", "max", default={}) or {}
    worst = get(attack, "worst_case", "threat_model", default="?")
    text = f"{aid}: worst-case fooling rate {rate(fooling)} (from {worst})"
    lo, floor_hi = _bound(fooling, 0), _bound(floor, 1)
    if floor:
        text += f", against a noise floor of at most {rate(floor)}"
        if lo is not None and floor_hi is not None and lo > floor_hi:
            text += ": clearly above it, so the effect is the attack's, not the budget's"
        elif fooling.get("value") is not None and floor.get("value") is not None \
                and fooling["value"] <= floor["value"]:
            text += ": no more than random perturbations of the same budget achieve"
        else:
            text += ": above it, but the intervals overlap"
    text += "."
    front = get(attack, "clinical", "front_end", default={}) or {}
    unfiltered = front.get("unfiltered") or {}
    for h in front.get("highpass") or []:
        if not isinstance(h, Mapping):
            continue
        after = h.get("fooling_rate") or {}
        hi, base_lo = _bound(after, 1), _bound(unfiltered, 0)
        if hi is not None and base_lo is not None and hi < base_lo:
            before_v, after_v = unfiltered.get("value") or 0.0, after.get("value") or 0.0
            how = "removes most of the effect" if after_v <= 0.5 * before_v else "lowers the rate"
            text += (f" A {h.get('cutoff_hz')} Hz front-end high-pass {how} "
                     f"({pct(before_v)} → {pct(after_v)}): part of the perturbation is baseline offset that an "
                     "ECG front end would filter out.")
            break
    mi = get(attack, "clinical", "st", "mi_criteria", default={}) or {}
    newly = mi.get("newly_met") or {}
    if newly.get("successes"):
        text += (f" {newly['successes']} of {newly.get('total', '?')} attacked records newly meet the ST-elevation "
                 f"criteria of MI (records meeting them: clean {mi.get('clean_met', '?')}, attacked "
                 f"{mi.get('adversarial_met', '?')})")
        low = _bound(newly, 0)
        # Only a share clearly above zero is a forgery of ST change; a record or two at the cut-point is noise.
        text += (": the forgery is measurable as clinical ST change." if low is not None and low >= 0.02 else
                 ": records near the cut-point, not a systematic ST forgery.")
    return text


def _bound(entry: Any, side: int) -> float | None:
    ci = entry.get("ci95") if isinstance(entry, Mapping) else None
    if isinstance(ci, list | tuple) and len(ci) == 2 and ci[side] is not None:
        return float(ci[side])
    return None


def _limitations(ctx: Context) -> list[Flowable]:
    r = ctx.report
    story = section("7 Limitations", new_page=False)
    story.append(Paragraph("Known limitations of this test (IMDRF Good Machine Learning Practice, principles 8 and 9: "
                           "performance under clinically relevant conditions, subgroups, and known limitations).",
                           STYLES["body"]))
    items: list[str] = []
    if (warning := facts.synthetic_warning(r)) is not None:
        items.append(warning)
    if (short := facts.shortfall(r)) is not None:
        items.append(short)
    if not any(a.get("subgroups") for a in r.get("attacks") or [] if isinstance(a, Mapping)):
        items.append("No subgroup results: the records carry no sex or age, so the test cannot show whether the "
                     "model is more easily fooled for some patients than others.")
    if not get(r, "clean", "accuracy"):
        items.append("The records carry no labels: robust accuracy and attack success rate are not measured, only "
                     "whether decisions change.")
    skipped = sorted({str(t.get("threat_model")) for a in r.get("attacks") or [] for t in facts.threat_runs(a)
                      if t.get("status") in ("not-possible", "off")})
    if skipped:
        items.append(f"Threat models that did not run ({', '.join(skipped)}) leave those attackers untested.")
    items += [
        "A finite battery: a criterion met means these attacks, at these budgets and step counts, did not succeed "
        "often enough; an adaptive attacker with more compute or another method may do better. The attack-failure "
        "indicators catch the common ways attacks fail, not all of them.",
        "The perturbations are added to the digitised signal; only with the 8-independent-lead option are they "
        "what real electrodes could record (the Einthoven/Goldberger residual per attack says how far they are).",
        "The clinical measurements are automatic (R peaks by neurokit2, median beat, QRS onset and J point by "
        "spatial velocity): they are not a cardiologist's reading, and whether a clinician would spot the forgery "
        "is not measured here (ecgaudit's reader-study kit measures it).",
        "The front-end check models a single-pole high-pass applied to the perturbation only; a real device's "
        "filters, sampling and quantisation may differ.",
        "Each rate has its own 95 % interval; with several criteria, the chance that at least one interval misses "
        "is higher (no correction for multiplicity).",
        f"Rates were measured with the runtime named in the methods on the test machine "
        f"({get(r, 'environment', 'platform', default='platform not recorded')}); another runtime, device or "
        "numeric precision may give other decisions near the boundary.",
    ]
    return story + bullets([escape(i) for i in items])
