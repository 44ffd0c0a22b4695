"""The result figures of the PDF report: the perturbations' spectra, where the misdiagnoses land, the amplitude
sweep and transfer to other models.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.units import mm
from reportlab.platypus import CondPageBreak, Flowable, KeepTogether, Paragraph, Spacer, Table

from ecgaudit.render.pdf.charts import MisdiagnosisHeatmap, PsdCurve, PsdPlot, SweepPlot, SweepPoint, welch_psd
from ecgaudit.render.pdf.context import Context
from ecgaudit.render.pdf.text import STYLES, TABLE_FONT, caption, fmt, get, mono, pct, rate, section, table


def psd_page(ctx: Context) -> list[Flowable]:
    universal = [a for a in ctx.report.get("attacks") or [] if a.get("universal")]
    if not universal:
        return []
    fs = float(get(ctx.report, "model", "card", "fs", default=None) or get(ctx.report, "data", "fs", default=500.0))
    curves: list[PsdCurve] = []
    rows: list[list[Any]] = [["Attack", "Cutoff", "Power ≤ cutoff (report)", "Recomputed from the file",
                              "Perturbation file", "SHA-256 check"]]
    for attack in universal:
        m = attack.get("metrics") or {}
        pert = attack.get("perturbation") or {}
        cutoff = m.get("cutoff_hz", get(attack, "params", "cutoff_hz"))
        v = ctx.array(pert.get("path"))
        recomputed = "—"
        check = ctx.digest_check(pert.get("path"), pert.get("sha256")) if pert else "no perturbation recorded"
        if v is not None:
            try:
                freqs, psd = welch_psd(v, fs)
                if cutoff is not None and psd.sum() > 0:
                    recomputed = pct(float(psd[freqs <= cutoff].sum() / psd.sum()), 1)
                label = f"{attack.get('id')}: {pct(m.get('power_below_cutoff'), 1)} of power ≤ {fmt(cutoff, 'g')} Hz"
                curves.append(PsdCurve(str(attack.get("id")), label, freqs, psd, cutoff))
            except ValueError as exc:
                check = f"unusable ({exc})"
        rows.append([str(attack.get("id")), f"{fmt(cutoff, 'g')} Hz" if cutoff is not None else "none",
                     pct(m.get("power_below_cutoff"), 1), recomputed, str(pert.get("path", "—")), check])
    story = section(ctx.result_heading("Power spectral density of the universal perturbations"), level=1)
    if curves:
        fmax = min(fs / 2, max(60.0, 4 * max((c.cutoff_hz or 0) for c in curves)))
        story += [caption(ctx, "Power spectral density of each universal perturbation",
                          f"Welch PSD (segments min(T, 4·fs), no detrending) summed over the 12 leads, in dB; "
                          f"dashed lines at each attack's low-pass cutoff; shown to {fmax:g} Hz, shares computed over "
                          f"the full band 0–{fs / 2:g} Hz."), PsdPlot(curves, fmax)]
    story += [Spacer(1, 3 * mm), table(rows, [w * mm for w in (35, 20, 40, 40, 70, 45)])]
    return story



def misdiagnosis_pages(ctx: Context) -> list[Flowable]:
    """Multi-class models: one clean → adversarial matrix per attack, as many per row as fit, rows kept whole.
    (Multi-label models have no such matrix: their per-label gains and losses are in section 4.4.)"""
    maps: list[Flowable] = []
    for attack in ctx.report.get("attacks") or []:
        m = attack.get("metrics") or {}
        mis = m.get("misdiagnosis") or {}
        classes, matrix = mis.get("classes"), mis.get("matrix")
        if not classes or not matrix:
            continue
        n_changed = mis.get("n_changed")
        total = get(m, "fooling_rate", "total", default=m.get("n_records"))
        targets = mis.get("top_targets") or ([mis["top_target"]] if mis.get("top_target") else [])
        if targets:
            note = (f"{fmt(n_changed, 'd')} of {fmt(total, 'd')} decisions changed; top target"
                    f"{'s (tied)' if len(targets) > 1 else ''} {', '.join(map(str, targets))} "
                    f"({pct(mis.get('top_target_share'))} of changed).")
        else:
            note = f"{fmt(n_changed, 'd')} of {fmt(total, 'd')} decisions changed; no top target."
        maps.append((str(attack.get("id")), classes, matrix, note))
    if not maps:
        return []
    per_row = min(len(maps), 4)
    width = 262 / per_row
    figures = [MisdiagnosisHeatmap(aid, classes, matrix, note, width=(width - 4) * mm)
               for aid, classes, matrix, note in maps]
    story = section(ctx.result_heading("Misdiagnosis: where the changed decisions land"), level=1)
    rows: list[Flowable] = []
    for start in range(0, len(figures), per_row):
        chunk: list[Any] = figures[start:start + per_row]
        grid = Table([chunk + [Spacer(1, 1)] * (per_row - len(chunk))], colWidths=[width * mm] * per_row,
                     hAlign="LEFT")
        grid.setStyle([TABLE_FONT, ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)])
        rows.append(grid)
    head = caption(ctx, "Misdiagnosis matrices",
                   "Rows: the clean decision; columns: the decision under attack; counts of evaluation records whose "
                   "decision changed, shaded by count (unchanged decisions, on the grey diagonal, are not counted). "
                   "A concentrated column means the attack steers to one diagnosis.")
    return story + [KeepTogether([head, rows[0]]), *rows[1:]]


def sweep_page(ctx: Context) -> list[Flowable]:
    sweep = ctx.report.get("sweep")
    points = (sweep or {}).get("points") or []
    parsed = []
    rows: list[list[Any]] = [["ε on V2–V6 (mV)", "Fooling rate [95 % CI]", "SSIM", "SNR (dB)"]]
    for p in points:
        if p.get("chest_eps_mv") is None:
            continue
        fr = p.get("fooling_rate") or {}
        ci = fr.get("ci95")
        parsed.append(SweepPoint(float(p["chest_eps_mv"]), fr.get("value"),
                                     tuple(ci) if isinstance(ci, list) and len(ci) == 2 and None not in ci else None,
                                     p.get("ssim")))
        rows.append([fmt(p.get("chest_eps_mv"), "g"), rate(fr), fmt(p.get("ssim"), ".4f"), fmt(p.get("snr_db"), ".1f")])
    if not parsed:
        return []
    story = section(ctx.result_heading("Amplitude sweep"), level=1)
    story.append(caption(ctx, f"Amplitude sweep of attack {sweep.get('attack', '?')}",
                         "The attack re-crafted at each chest-lead budget (V2–V6; limb leads keep their ε): "
                         "fooling rate on the vendor runtime with 95 % Wilson intervals (red, left axis) and SSIM "
                         "between clean and adversarial records (blue dashed, right axis). "
                         + escape(_sweep_settings(ctx, sweep))))
    story += [SweepPlot(parsed), Spacer(1, 3 * mm), table(rows, [w * mm for w in (35, 55, 25, 25)])]
    return story


def _sweep_settings(ctx: Context, sweep: Mapping[str, Any]) -> str:
    """How the sweep was crafted, against the headline attack: fewer epochs make its points weaker."""
    params = sweep.get("params") or {}
    name = str(sweep.get("attack", "?"))
    headline = next((a for a in ctx.report.get("attacks") or [] if a.get("attack") == name or a.get("id") == name),
                    None)
    text = f"Crafted with {sweep.get('threat_model') or 'white-box'} gradients"
    if params.get("epochs") is not None:
        text += f", {params['epochs']} epochs"
        theirs = get(headline, "params", "epochs") if headline else None
        if theirs is not None and theirs != params["epochs"]:
            text += (f" (the headline {headline.get('id')} figure used {theirs}, so the sweep's point at the "
                     "headline budget need not equal it)")
    return text + "."


def transfer_page(ctx: Context) -> list[Flowable]:
    entries = [t for t in ctx.report.get("transfer") or [] if isinstance(t, dict)]
    if not entries:
        return []
    sources = list(dict.fromkeys(str(t.get("attack")) for t in entries))
    targets = list(dict.fromkeys(Path(str(t.get("model"))).name for t in entries))
    own = {str(a.get("id")): a for a in ctx.report.get("attacks") or []}
    rows: list[list[Any]] = [["Source attack", f"{ctx.model_name} (source model)", *targets]]
    for source in sources:
        cells = {Path(str(t.get("model"))).name: rate(get(t, "metrics", "fooling_rate")) for t in entries
                 if str(t.get("attack")) == source}
        rows.append([source, rate(get(own.get(source, {}), "metrics", "fooling_rate")),
                     *[cells.get(target, "—") for target in targets]])
    width = min(60 * mm, 200 * mm / (1 + len(targets)))
    heading = ctx.result_heading("Transfer to other vendors' models")
    story = [CondPageBreak(60 * mm), *section(heading, new_page=False, level=1)]
    story.append(Paragraph(
        "<b>Table: Transfer.</b> Fooling rate [95 % CI] of each universal perturbation crafted on the source "
        "model, applied unchanged to each target model and measured on that model's own runtime.", STYLES["body"]))
    story += [Spacer(1, 2 * mm), table(rows, [45 * mm] + [width] * (1 + len(targets))), Spacer(1, 4 * mm)]
    models = [["Target model", "Format", "SHA-256"]]
    for t in entries:
        models.append([str(t.get("model", "—")), str(t.get("format", "—")), mono(t.get("sha256"))])
    return story + [table(models, [110 * mm, 30 * mm, 115 * mm], raw_cols=(2,))]
