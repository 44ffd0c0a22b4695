"""The first pages of the PDF report: the cover (verdict and every digest), the summary table and the gate."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, Spacer, Table

from ecgaudit.render.pdf.context import Context
from ecgaudit.render.pdf.draw import GREEN, RED
from ecgaudit.render.pdf.text import STYLES, Bookmark, fmt, get, kv_table, mono, pct, rate, section, table


def cover(ctx: Context) -> list[Flowable]:
    r = ctx.report
    passed = ctx.verdict == "PASS"
    rules = get(r, "gate", "rules", default=[]) or []
    n_pass = sum(1 for rule in rules if rule.get("passed"))
    badge = Table([[Paragraph(escape(ctx.verdict), STYLES["verdict"])],
                   [Paragraph(f"gate verdict: {n_pass} of {len(rules)} rules passed", STYLES["verdict_sub"])]],
                  colWidths=[90 * mm], rowHeights=[20 * mm, 7 * mm], hAlign="LEFT")
    badge.setStyle([("BACKGROUND", (0, 0), (-1, -1), GREEN if passed else RED),
                    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("ALIGN", (0, 0), (-1, -1), "CENTER")])
    model = r.get("model") or {}
    profile = r.get("profile") or {}
    data = r.get("data") or {}
    signing = (Paragraph(f"<font face='Courier'>{escape(ctx.key_fingerprint)}</font>", STYLES["cell"])
               if ctx.key_fingerprint else
               Paragraph("<b>UNSIGNED</b> — no signing key was used; this report's integrity cannot be verified "
                         "from a signature.", STYLES["alarm"]))
    runtime = get(model, "runtime", "runtime")
    rows = [
        ("Model file", escape(ctx.model_name)),
        ("Format", escape(str(model.get("format", "—")) + (
            f" (runtime {runtime} {get(model, 'runtime', 'version', default='')})" if runtime else ""))),
        ("Model SHA-256", mono(model.get("sha256"))),
        ("Profile", escape(f"{profile.get('name', '—')} {profile.get('version', '')}".strip())),
        ("Profile SHA-256", mono(profile.get("sha256"))),
        ("Data source", escape(str(data.get("source", "—")))),
        ("Data manifest SHA-256", mono(data.get("manifest_sha256"))),
        ("Created", escape(str(r.get("created", "—")))),
        ("Tool", escape(f"{get(r, 'tool', 'name', default='ecgaudit')} {ctx.tool_version}")),
        ("Signing key fingerprint", signing),
        ("report.json SHA-256", mono(ctx.report_sha256)),
    ]
    note = ("This PDF renders <font face='Courier'>report.json</font>, whose SHA-256 is given above and in the "
            "footer of every page; the JSON (with its signature, where present) is the record. Print the ECG pages "
            "at 100 % (no “fit to page”) so that the paper speed (25 mm/s) and gain (10 mm/mV) hold.")
    return [
        Bookmark("Cover"),
        Paragraph("ecgaudit robustness report", STYLES["title"]),
        Paragraph(f"Adversarial-robustness audit of <b>{escape(ctx.model_name)}</b> under profile "
                  f"<b>{escape(str(profile.get('name', '—')))}</b>", STYLES["subtitle"]),
        Spacer(1, 4 * mm), badge, Spacer(1, 6 * mm),
        kv_table(rows, (55 * mm, 200 * mm)), Spacer(1, 5 * mm),
        Paragraph(note, STYLES["small"]),
    ]



def summary(ctx: Context) -> list[Flowable]:
    r = ctx.report
    clean = r.get("clean") or {}
    splits = get(r, "data", "splits", default={}) or {}
    story = section("Summary")
    story.append(Paragraph(
        f"{fmt(splits.get('n_eval') or clean.get('n_records'), 'd')} evaluation records "
        f"(craft/evaluation split seed {fmt(splits.get('seed'), 'd')}, disjoint from the "
        f"{fmt(splits.get('n_craft'), 'd')} craft records). Every rate is measured on the vendor's own runtime; "
        "brackets are 95 % Wilson score intervals. Accuracy is the clean accuracy for the first row and the robust "
        "accuracy (under attack) for the others; it needs labels.", STYLES["body"]))
    header = ["Attack", "Kind", "n eval", "Accuracy [95 % CI]", "Fooling rate [95 % CI]", "Attack success",
              "SNR (dB)", "SSIM", "Power ≤ cutoff", "Top target (share)"]
    rows: list[list[Any]] = [header, ["clean (no attack)", "—", fmt(clean.get("n_records"), "d"),
                                      rate(clean.get("accuracy")), "—", "—", "—", "—", "—", "—"]]
    for attack in r.get("attacks") or []:
        m = attack.get("metrics") or {}
        kind = "universal" if attack.get("universal") else "per-sample"
        rows.append([attack.get("id", "?"), f"{attack.get('attack', '?')}, {kind}", fmt(attack.get("n_eval"), "d"),
                     *_metric_cells(m)])
        for variant, vm in (attack.get("variants") or {}).items():
            label = "variant (before Φ)" if variant == "unfiltered" else "variant"
            rows.append([f"{attack.get('id', '?')}, {variant}", label, fmt(attack.get("n_eval"), "d"),
                         *_metric_cells(vm or {})])
    widths = [34, 36, 13, 36, 36, 19, 15, 14, 20, 34]
    story.append(table(rows, [w * mm for w in widths]))
    story.append(Spacer(1, 4 * mm))
    story += _gate_table(ctx)
    counts = _class_counts(clean)
    if counts:
        story += [Spacer(1, 4 * mm), Paragraph("Decisions on the clean evaluation split", STYLES["h2"]), counts]
    return story


def _metric_cells(m: dict[str, Any]) -> list[str]:
    mis = m.get("misdiagnosis") or {}
    top = mis.get("top_target")
    share = mis.get("top_target_share")
    target = f"{top} ({pct(share)})" if top else "—"
    asr = m.get("attack_success_rate")
    return [rate(m.get("robust_accuracy")), rate(m.get("fooling_rate")),
            pct(asr.get("value") if isinstance(asr, dict) else asr), fmt(m.get("snr_db"), ".1f"),
            fmt(m.get("ssim"), ".3f"), pct(m.get("power_below_cutoff"), 1), target]


def _gate_table(ctx: Context) -> list[Flowable]:
    rules = get(ctx.report, "gate", "rules", default=[]) or []
    story: list[Flowable] = [Paragraph("Gate rules", STYLES["h2"])]
    if not rules:
        return story + [Paragraph("The profile sets no gate rules.", STYLES["body"])]
    rows: list[list[Any]] = [["Rule", "Attack", "Metric", "Measured [95 % CI]", "Judged bound vs threshold",
                              "Result", "Why (from the profile)", "Detail"]]
    styles: list[tuple[Any, ...]] = []
    for k, rule in enumerate(rules, start=1):
        ci = rule.get("ci95")
        measured = fmt(rule.get("value"), ".4g")
        if isinstance(ci, list | tuple) and len(ci) == 2 and None not in ci:
            measured += f" [{fmt(ci[0], '.4g')}, {fmt(ci[1], '.4g')}]"
        side = "upper" if rule.get("op") == "<=" else "lower"
        op = {"<=": "≤", ">=": "≥"}.get(rule.get("op"), str(rule.get("op", "?")))
        bound = (f"{side} bound {fmt(rule.get('bound'), '.4g')} {op} "
                 f"{fmt(rule.get('threshold'), 'g')}")
        if rule.get("kind") == "regression":
            bound = f"worse by {fmt(rule.get('bound'), '+.4g')} ≤ {fmt(rule.get('threshold'), 'g')}"
        ok = bool(rule.get("passed"))
        rows.append([rule.get("id", "?"), rule.get("attack") or "—", rule.get("metric", "?"), measured, bound,
                     "PASS" if ok else "FAIL", rule.get("why") or "—", rule.get("message") or "—"])
        styles.append(("TEXTCOLOR", (5, k), (5, k), GREEN if ok else RED))
    widths = [30, 22, 24, 38, 44, 14, 45, 50]
    return story + [table(rows, [w * mm for w in widths], extra=styles, bold_cols=(5,))]


def _class_counts(clean: dict[str, Any]) -> Table | None:
    predicted = clean.get("predicted_counts") or {}
    true = clean.get("true_counts") or {}
    classes = list(dict.fromkeys([*predicted, *true]))
    if not classes:
        return None
    rows = [["", *classes], ["predicted", *[fmt(predicted.get(c), "d") for c in classes]]]
    if true:
        rows.append(["labelled", *[fmt(true.get(c), "d") for c in classes]])
    width = min(20 * mm, 230 * mm / max(1, len(classes)))
    return table(rows, [25 * mm] + [width] * len(classes))
