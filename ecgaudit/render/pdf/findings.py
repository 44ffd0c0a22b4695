"""Section 4 of the PDF report, the result tables: the acceptance criteria judged, an overview per attack, each
attack under every threat model beside its noise floor with its clinical measurements (`attack_tables`),
results per class and per subgroup, and the attack-failure indicators with their evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reportlab.lib.units import mm
from reportlab.platypus import CondPageBreak, Flowable, Paragraph

from ecgaudit.render.pdf.attack_tables import attack_block
from ecgaudit.render.pdf.context import Context
from ecgaudit.render.pdf.draw import AMBER, GREEN, RED
from ecgaudit.render.pdf.text import STYLES, fmt, get, id_width, pct, rate, section, table


def results_pages(ctx: Context) -> list[Flowable]:
    story = [CondPageBreak(70 * mm), *section("4 Results", new_page=False)]
    story += _criteria_results(ctx)
    story += _overview(ctx)
    story += section(ctx.result_heading("Each attack under each threat model"), new_page=False, level=1)
    story.append(Paragraph(
        "Per attack: the figures of every threat model that ran (and why the others did not), the random noise "
        "floor of the same budget beside them, the gated worst case, and what a clinician or an ECG front end "
        "would make of the perturbation.", STYLES["lead_in"]))
    for attack in ctx.report.get("attacks") or []:
        if isinstance(attack, Mapping):
            story.append(attack_block(ctx, attack))
    story += _per_class(ctx)
    story += _subgroups(ctx)
    story += _indicators(ctx)
    return story


def _criteria_results(ctx: Context) -> list[Flowable]:
    rules = [rule for rule in get(ctx.report, "gate", "rules", default=[]) or [] if isinstance(rule, Mapping)]
    story = section(ctx.result_heading("Acceptance criteria"), new_page=False, level=1)
    if not rules:
        return story + [Paragraph("The profile sets no acceptance criteria.", STYLES["body"])]
    rows: list[list[Any]] = [["Criterion", "Attack", "Metric", "Measured [95 % CI]", "Judged bound vs threshold",
                              "Result", "Detail"]]
    styles: list[tuple[Any, ...]] = []
    for k, rule in enumerate(rules, start=1):
        ci = rule.get("ci95")
        measured = fmt(rule.get("value"), ".4g")
        if isinstance(ci, list | tuple) and len(ci) == 2 and None not in ci:
            measured += f" [{fmt(ci[0], '.4g')}, {fmt(ci[1], '.4g')}]"
        side = "upper" if rule.get("op") == "<=" else "lower"
        op = {"<=": "≤", ">=": "≥"}.get(str(rule.get("op")), str(rule.get("op", "?")))
        bound = f"{side} bound {fmt(rule.get('bound'), '.4g')} {op} {fmt(rule.get('threshold'), 'g')}"
        if rule.get("kind") == "regression":
            bound = f"worse by {fmt(rule.get('bound'), '+.4g')} ≤ {fmt(rule.get('threshold'), 'g')}"
        ok = bool(rule.get("passed"))
        rows.append([rule.get("id", "?"), rule.get("attack") or "clean", rule.get("metric", "?"), measured, bound,
                     "PASS" if ok else "FAIL", rule.get("message") or "—"])
        styles.append(("TEXTCOLOR", (5, k), (5, k), GREEN if ok else RED))
    first = id_width([rule.get("id", "?") for rule in rules], 40)
    widths = [first, *[w * mm for w in (28, 30, 40, 48, 14)]]
    return story + [table(rows, [*widths, 264 * mm - sum(widths)], extra=styles, bold_cols=(5,))]


def _overview(ctx: Context) -> list[Flowable]:
    r = ctx.report
    clean = r.get("clean") or {}
    story = section(ctx.result_heading("Overview"), new_page=False, level=1)
    story.append(Paragraph(
        f"Clean accuracy {rate(clean.get('accuracy'))} on {fmt(clean.get('n_records'), 'd')} evaluation records"
        f"{'' if clean.get('accuracy') else ' (the data carries no labels)'}. Each attack's row is its gated worst "
        "case over the threat models that ran.", STYLES["body"]))
    header = ["Attack", "Worst case from", "Fooling rate [95 % CI]", "Robust accuracy [95 % CI]", "Attack success",
              "Noise floor (max)", "SNR (dB)", "SSIM", "Power ≤ cutoff", "Top target(s)"]
    rows: list[list[Any]] = [header]
    for attack in r.get("attacks") or []:
        m = attack.get("metrics") or {}
        mis = m.get("misdiagnosis") or {}
        targets = mis.get("top_targets") or ([mis["top_target"]] if mis.get("top_target") else [])
        asr = m.get("attack_success_rate")
        rows.append([attack.get("id", "?"), get(attack, "worst_case", "threat_model", default="—"),
                     rate(m.get("fooling_rate")), rate(m.get("robust_accuracy")),
                     pct(asr.get("value") if isinstance(asr, Mapping) else asr),
                     rate(get(attack, "noise_floor", "max")), fmt(m.get("snr_db"), ".1f"), fmt(m.get("ssim"), ".3f"),
                     pct(m.get("power_below_cutoff")),
                     f"{', '.join(map(str, targets))} ({pct(mis.get('top_target_share'))})" if targets else "—"])
    return story + [table(rows, [w * mm for w in (30, 22, 36, 36, 18, 34, 15, 13, 17, 46)])]


def _per_class(ctx: Context) -> list[Flowable]:
    r = ctx.report
    clean = r.get("clean") or {}
    attacks = [a for a in r.get("attacks") or [] if isinstance(a, Mapping)]
    classes = [str(c) for c in get(r, "model", "card", "classes", default=[]) or []] or \
        list(dict.fromkeys([*(clean.get("predicted_counts") or {}), *(clean.get("true_counts") or {})]))
    story = section(ctx.result_heading("Results per class"), new_page=False, level=1)
    if not classes:
        return story + [Paragraph("The report names no classes.", STYLES["body"])]
    predicted = clean.get("predicted_counts") or {}
    true = clean.get("true_counts") or {}
    multilabel = any(get(a, "metrics", "misdiagnosis", "per_label") and not get(a, "metrics", "misdiagnosis", "matrix")
                     for a in attacks)
    story.append(Paragraph(
        "Clean decisions per class, then per attack the records that "
        + ("gained (+) and lost (−) each label under attack (a multi-label model: one record may gain and lose "
           "several labels)." if multilabel else
           "the attack moved into (+) and out of (−) each class."), STYLES["body"]))
    rows: list[list[Any]] = [["Class", "Predicted (clean)", "Labelled", *[str(a.get("id", "?")) for a in attacks]]]
    for index, name in enumerate(classes):
        cells = [name, fmt(predicted.get(name), "d"), fmt(true.get(name), "d") if true else "—"]
        cells += [_moved(get(attack, "metrics", "misdiagnosis", default={}) or {}, index, name) for attack in attacks]
        rows.append(cells)
    width = min(34.0, 180.0 / max(1, len(attacks)))
    return story + [table(rows, [30 * mm, 24 * mm, 20 * mm, *[width * mm] * len(attacks)])]


def _moved(mis: Mapping[str, Any], index: int, name: str) -> str:
    """'+gained / −lost' for one class: from the per-label counts, else from the clean → attacked matrix."""
    per_label = (mis.get("per_label") or {}).get(name)
    if isinstance(per_label, Mapping):
        return f"+{fmt(per_label.get('gained'), 'd')} / −{fmt(per_label.get('lost'), 'd')}"
    matrix = mis.get("matrix") or []
    if index < len(matrix) and all(isinstance(row, list) and index < len(row) for row in matrix):
        lost = sum(v for c, v in enumerate(matrix[index]) if c != index)
        gained = sum(row[index] for r, row in enumerate(matrix) if r != index)
        return f"+{gained:.0f} / −{lost:.0f}"
    return "—"


def _subgroups(ctx: Context) -> list[Flowable]:
    story = section(ctx.result_heading("Results per subgroup"), new_page=False, level=1)
    rows: list[list[Any]] = [["Attack", "Subgroup", "Records", "Fooling rate [95 % CI]"]]
    for attack in ctx.report.get("attacks") or []:
        for group in attack.get("subgroups") or []:
            if isinstance(group, Mapping):
                rows.append([attack.get("id", "?"), f"{group.get('by', '?')}: {group.get('group', '?')}",
                             fmt(group.get("n_eval"), "d"), rate(group.get("fooling_rate"))])
    if len(rows) > 1:
        return story + [table(rows, [w * mm for w in (40, 50, 20, 45)])]
    return story + [Paragraph(
        "Not available: the evaluation records carry no sex or age, so results cannot be broken down by subgroup "
        "(IMDRF GMLP principle 8). Scan records of the intended population with these fields to obtain them; see "
        "Limitations.", STYLES["body"])]


def _indicators(ctx: Context) -> list[Flowable]:
    indicators = [i for i in ctx.report.get("indicators") or [] if isinstance(i, Mapping)]
    story = section(ctx.result_heading("Attack-failure indicators"), new_page=False, level=1)
    story.append(Paragraph(
        "Evidence that an attack failed for reasons other than the model's robustness (after AutoAttack's checks and "
        "Pintor et al., NeurIPS 2022). One that fires turns a verdict that would be PASS into INCONCLUSIVE.",
        STYLES["body"]))
    if not indicators:
        return story + [Paragraph("This report holds no indicators (computed by scans only).", STYLES["body"])]
    order = {"fired": 0, "passed": 1, "not-applicable": 2}
    indicators.sort(key=lambda i: order.get(str(i.get("status")), 3))
    rows: list[list[Any]] = [["Indicator", "Attack", "Status", "Finding", "Evidence"]]
    styles: list[tuple[Any, ...]] = []
    colour = {"fired": AMBER, "passed": GREEN}
    for k, i in enumerate(indicators, start=1):
        status = str(i.get("status", "?"))
        rows.append([f"{i.get('title') or i.get('id', '?')} ({i.get('id', '?')})", i.get("attack") or "—",
                     status.upper() if status == "fired" else status, i.get("summary") or "—",
                     _evidence(i.get("evidence"))])
        if status in colour:
            styles.append(("TEXTCOLOR", (2, k), (2, k), colour[status]))
    return story + [table(rows, [w * mm for w in (45, 25, 20, 85, 92)], extra=styles, bold_cols=(2,))]


def _evidence(evidence: Any) -> str:
    if not isinstance(evidence, Mapping) or not evidence:
        return "—"
    return "; ".join(f"{key.replace('_', ' ')}: {_evidence_value(value)}" for key, value in evidence.items())


def _evidence_value(value: Any) -> str:
    """A reader's rendering of one evidence value: rates with their interval, numbers to 3 figures, nested
    records as `key value` pairs, short lists joined (never Python's repr)."""
    if isinstance(value, Mapping) and "value" in value and "ci95" in value:
        return rate(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k.replace('_', ' ')} {_evidence_value(v)}" for k, v in value.items())
    if isinstance(value, float):
        return fmt(value, ".3g")
    if isinstance(value, list | tuple):
        return f"{len(value)} values" if len(value) > 6 else ", ".join(_evidence_value(v) for v in value) or "none"
    return "—" if value is None else str(value)
