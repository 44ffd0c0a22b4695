"""Page 1 of the PDF report: what a reviewer asks first, answered on one page.

Left: the verdict (PASS green, FAIL red, INCONCLUSIVE amber, with the indicators' sentences), the acceptance
criteria that failed by name with value and threshold, and what was tested (attacks, budgets in mV, Hz and ms,
threat models). Right: the test article (model, version, intended use), the data with loud warnings when it
is synthetic or short, the deviations, and the document id, revision and sign-off. Shrunk to fit one page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepInFrame, Paragraph, Spacer, Table

from ecgaudit.render import facts
from ecgaudit.render.pdf.context import Context
from ecgaudit.render.pdf.draw import RED, verdict_colour
from ecgaudit.render.pdf.text import STYLES, TABLE_FONT, Bookmark, bullets, fmt, get, mono, pct, rate, table

FRAME_W, FRAME_H = 267 * mm, 182 * mm
LEFT_W, RIGHT_W = 150 * mm, 113 * mm
MAX_LISTED = 6


def front_page(ctx: Context) -> list[Flowable]:
    r = ctx.report
    doc = facts.document(r)
    profile = r.get("profile") or {}
    head = [
        Bookmark("Summary of findings"),
        Paragraph("Adversarial-robustness bench test report", STYLES["title"]),
        Paragraph(f"Model <b>{escape(ctx.model_name)}</b> · profile <b>{escape(str(profile.get('name', '—')))} "
                  f"{escape(str(profile.get('version', '')))}</b> · ecgaudit {escape(ctx.tool_version)} · created "
                  f"{escape(str(r.get('created', '—')))} · document <b>{escape(doc['id'])}</b>, revision "
                  f"<b>{escape(doc['revision'])}</b>", STYLES["subtitle"]),
        Spacer(1, 2 * mm),
    ]
    columns = Table([[_left(ctx), _right(ctx, doc)]], colWidths=[LEFT_W, RIGHT_W], hAlign="LEFT")
    columns.setStyle([TABLE_FONT, ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                      ("RIGHTPADDING", (0, 0), (0, 0), 4 * mm), ("RIGHTPADDING", (1, 0), (1, 0), 0),
                      ("LINEAFTER", (0, 0), (0, 0), 0.4, colors.Color(0.8, 0.8, 0.8))])
    return [KeepInFrame(FRAME_W, FRAME_H, [*head, columns], mode="shrink")]


def _verdict_badge(ctx: Context) -> Table:
    rules = get(ctx.report, "gate", "rules", default=[]) or []
    n_pass = sum(1 for rule in rules if isinstance(rule, Mapping) and rule.get("passed"))
    verdict = ctx.verdict
    if verdict == "PASS":
        sub = f"all {len(rules)} pre-specified acceptance criteria met; no attack-failure indicator fired"
    elif verdict == "FAIL":
        sub = f"{len(rules) - n_pass} of {len(rules)} pre-specified acceptance criteria failed"
    elif verdict == "INCONCLUSIVE":
        sub = (f"{n_pass} of {len(rules)} criteria met, but an attack-failure indicator fired: the figures cannot be "
               "read as robustness, and this is not a pass")
    else:
        sub = "no verdict recorded"
    badge = Table([[Paragraph(escape(verdict), STYLES["verdict"])], [Paragraph(escape(sub), STYLES["verdict_sub"])]],
                  colWidths=[LEFT_W - 4 * mm], hAlign="LEFT")
    badge.setStyle([TABLE_FONT, ("BACKGROUND", (0, 0), (-1, -1), verdict_colour(verdict)),
                    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                    ("TOPPADDING", (0, 0), (-1, 0), 3 * mm), ("BOTTOMPADDING", (0, -1), (-1, -1), 2.5 * mm)])
    return badge


def _left(ctx: Context) -> list[Flowable]:
    r = ctx.report
    out: list[Flowable] = [_verdict_badge(ctx), Spacer(1, 2 * mm)]
    reasons = [str(s) for s in get(r, "gate", "inconclusive", default=[]) or []] or \
        [str(i.get("summary", "")) for i in facts.fired_indicators(r)]
    if reasons:
        out.append(Paragraph("Why the verdict is INCONCLUSIVE (attack-failure indicators, §4)"
                             if ctx.verdict == "INCONCLUSIVE" else
                             "Attack-failure indicators fired: the measured rates understate the attack (§4)",
                             STYLES["h3"]))
        out += bullets([escape(s) for s in reasons], "bullet")
    out.append(Paragraph("Acceptance criteria that failed (§3, §4)", STYLES["h3"]))
    out += _listed([facts.rule_text(rule) for rule in facts.failing_rules(r)], "§4", "None.")
    out.append(Paragraph("What was tested (§2)", STYLES["h3"]))
    out += _tested(ctx)
    return out


def _tested(ctx: Context) -> list[Flowable]:
    r = ctx.report
    leads = facts.leads_of(r)
    rows: list[list[Any]] = [["Attack", "Budget", "Threat models run (gated: worst case)", "Fooling rate, worst case",
                              "Noise floor"]]
    for attack in r.get("attacks") or []:
        ran = facts.ran(attack)
        worst = str(get(attack, "worst_case", "threat_model", default=""))
        # Per-record worst cases read "per record (white-box, black-box)": bold each threat model named there.
        threats = ", ".join(f"<b>{t}</b>" if re.search(rf"(^|[ (,]){re.escape(t)}($|[),])", worst) else t
                            for t in ran) or "none"
        skipped = [f"{t.get('threat_model')} {'off' if t.get('status') == 'off' else 'not possible'}"
                   for t in facts.threat_runs(attack) if t.get("status") in ("not-possible", "off")]
        if skipped:
            threats += f"; {', '.join(skipped)}"
        floor = attack.get("noise_floor") or {}
        rows.append([f"{attack.get('id', '?')} ({attack.get('attack', '?')}, "
                     f"{'universal' if attack.get('universal') else 'per record'})",
                     facts.budget_text(attack, leads), threats,
                     rate(get(attack, "metrics", "fooling_rate")),
                     f"mean {pct(floor.get('mean'))}, max {pct(get(floor, 'max', 'value'))}" if floor else "—"])
    out: list[Flowable] = [table(rows, [w * mm for w in (30, 40, 32, 24, 20)], raw_cols=(2,))]
    splits = get(r, "data", "splits", default={}) or {}
    runtime = get(r, "model", "runtime", default={}) or {}
    out.append(Spacer(1, 1.5 * mm))
    out.append(Paragraph(
        f"{fmt(splits.get('n_eval'), 'd')} evaluation records, disjoint from {fmt(splits.get('n_craft'), 'd')} craft "
        f"records; every rate is measured on the vendor's runtime ({escape(str(runtime.get('runtime', '—')))}); "
        "brackets are 95 % Wilson intervals; the gated figure of each attack is the worst over its threat models "
        "(MITRE ATLAS AML.T0043.000 white-box, .001 black-box, .002 transfer; FDA “model evasion”; EU AI Act "
        "Art. 15(5)). The noise floor is random perturbations of the same budget and spectrum.", STYLES["small"]))
    for line in facts.relative_budgets(r):
        out.append(Paragraph("Relative budget, " + escape(line), STYLES["small"]))
    not_possible = facts.white_box_not_possible(r)
    if not_possible:
        out.append(Paragraph(escape(not_possible[0].upper() + not_possible[1:]) + ".", STYLES["alarm"]))
    sweep = r.get("sweep")
    if isinstance(sweep, Mapping) and sweep.get("points"):
        out.append(Paragraph(f"Amplitude sweep of {escape(str(sweep.get('attack', '?')))}: "
                             f"{len(sweep['points'])} chest-lead budgets (§4).", STYLES["small"]))
    return out


def _right(ctx: Context, doc: dict[str, str]) -> list[Flowable]:
    r = ctx.report
    model = r.get("model") or {}
    data = r.get("data") or {}
    splits = data.get("splits") or {}
    out: list[Flowable] = [Paragraph("Test article", STYLES["h3"])]
    out.append(_kv([("Model file", escape(ctx.model_name)), ("Model version", escape(doc["model_version"])),
                    ("Task", escape(facts.model_task(r))), ("Intended use", escape(doc["intended_use"])),
                    ("Model SHA-256", mono(model.get("sha256")))]))
    out.append(Paragraph("Data", STYLES["h3"]))
    out.append(_kv([("Source", escape(str(data.get("source", "—")))),
                    ("Records", f"{fmt(data.get('n_records'), 'd')} loaded; {fmt(splits.get('n_craft'), 'd')} craft "
                                f"+ {fmt(splits.get('n_eval'), 'd')} evaluation"),
                    *([("Labels", escape(line))] if (line := facts.labels_line(r)) else [])]))
    for warning in (facts.synthetic_warning(r), facts.shortfall(r)):
        if warning:
            out += [Spacer(1, 1 * mm), _alarm_box("WARNING: " + warning)]
    out.append(Paragraph("Deviations from the profile (§5)", STYLES["h3"]))
    out += _listed(facts.deviations(r), "§5", "None: everything the profile asks for ran.")
    out.append(Paragraph("Document and sign-off", STYLES["h3"]))
    signature = (mono(ctx.key_fingerprint) if ctx.key_fingerprint else
                 "<font color='#cc1414'><b>UNSIGNED</b></font> — no signing key was used; the integrity of "
                 "report.json cannot be verified from a signature.")
    out.append(_kv([("Document id", escape(doc["id"])), ("Revision", escape(doc["revision"])),
                    ("Prepared by", f"{escape(doc['prepared_by'])}<br/>signature, date: "
                                    "________________________"),
                    ("Reviewed by", f"{escape(doc['reviewed_by'])}<br/>signature, date: "
                                    "________________________"),
                    ("report.json signed by key", signature)]))
    out.append(Spacer(1, 1 * mm))
    out.append(Paragraph(escape(facts.SIGNATURE_MEANING), STYLES["small"]))
    return out


def _listed(items: list[str], where: str, empty: str) -> list[Flowable]:
    """At most `MAX_LISTED` bullets (then where the rest are), or `empty`: page 1 must stay one page."""
    if not items:
        return [Paragraph(escape(empty), STYLES["body"])]
    shown = [escape(i) for i in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        shown.append(f"and {len(items) - MAX_LISTED} more ({where})")
    return bullets(shown)


def _kv(rows: list[tuple[str, str]]) -> Table:
    cells = [[Paragraph(f"<b>{label}</b>", STYLES["cell"]), Paragraph(value, STYLES["cell"])] for label, value in rows]
    t = Table(cells, colWidths=[30 * mm, RIGHT_W - 30 * mm], hAlign="LEFT")
    t.setStyle([TABLE_FONT, ("GRID", (0, 0), (-1, -1), 0.4, colors.Color(0.8, 0.8, 0.8)),
                ("BACKGROUND", (0, 0), (0, -1), colors.Color(0.95, 0.95, 0.95)),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)])
    return t


def _alarm_box(text: str) -> Table:
    box = Table([[Paragraph(escape(text), STYLES["alarm"])]], colWidths=[RIGHT_W], hAlign="LEFT")
    box.setStyle([TABLE_FONT, ("BOX", (0, 0), (-1, -1), 1.2, RED),
                  ("BACKGROUND", (0, 0), (-1, -1), colors.Color(1, 0.94, 0.94))])
    return box
