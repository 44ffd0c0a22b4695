"""The per-attack ECG pages of the PDF report: the 12-lead sheet, then the zoomed beat and δ per lead."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, PageBreak, Paragraph, Spacer

from ecgaudit.leads import canonical_lead
from ecgaudit.render.pdf.context import Context
from ecgaudit.render.pdf.ecg import (
    GAIN_MM_MV,
    BeatPanel,
    EcgSheet,
    PerturbationLeads,
    ZoomedBeats,
    find_beat,
    has_standard_12,
    lead_index,
)
from ecgaudit.render.pdf.text import STYLES, Bookmark, attack_title, caption, fmt, get, rate, section


def attack_pages(ctx: Context) -> list[Flowable]:
    """Per attack: the 12-lead sheet, then the zoomed beat and δ per lead; attacks without a saved sample
    share a page (a heading, their metrics and why the figures are missing)."""
    story: list[Flowable] = []
    previous_drawn = True
    for attack in ctx.report.get("attacks") or []:
        aid = str(attack.get("id", "?"))
        m = attack.get("metrics") or {}
        sample = _sample_for(ctx, aid)
        title = f"{_n_lead(sample.leads) + ' ECG — attack' if sample else 'Attack'} {attack_title(attack)}"
        story += section(title, new_page=sample is not None or previous_drawn)
        previous_drawn = sample is not None
        story.append(Paragraph(
            f"Fooling rate {rate(m.get('fooling_rate'))} · robust accuracy {rate(m.get('robust_accuracy'))} · "
            f"SNR {fmt(m.get('snr_db'), '.1f')} dB · SSIM {fmt(m.get('ssim'), '.3f')} · "
            f"L∞ {fmt(m.get('linf_mv'), '.3g')} mV · budget {escape(eps_text(attack, ctx))}", STYLES["body"]))
        if sample is None:
            story.append(Paragraph(f"No sample record was saved for this attack ({escape(ctx.samples_problem or '')}"
                                   f"{'' if ctx.samples_problem else 'samples.npz has no delta_' + escape(aid)}); "
                                   "the ECG figures are omitted.", STYLES["alarm"]))
            continue
        changed = sample.before != sample.after
        story.append(Paragraph(
            f"Record <b>{escape(sample.record)}</b> (sample {sample.index + 1} of {sample.count}"
            f"{', the first whose decision this attack changed' if changed else ', no saved sample changed'}) — "
            f"clean decision <b>{escape(sample.before)}</b> → adversarial decision "
            f"<b><font color='{'#cc1414' if changed else '#1a8c33'}'>{escape(sample.after)}</font></b>"
            f"{' (changed)' if changed else ' (unchanged)'}. "
            "Black: clean; <font color='#d90000'>red: adversarial = clean + δ</font>.", STYLES["body"]))
        story.append(Spacer(1, 1.5 * mm))
        sheet = EcgSheet(sample.x, sample.x + sample.delta, sample.leads, sample.fs, max_height=140 * mm)
        story.append(sheet)
        story.append(caption(ctx, f"{_n_lead(sample.leads)} ECG, attack {aid}",
                             "25 mm/s, 10 mm/mV; grid 1 mm (0.04 s, 0.1 mV) and 5 mm (0.2 s, 0.5 mV); calibration "
                             f"pulse 1 mV × 200 ms at the start of each row; {sheet.layout}. Each lead is drawn about "
                             "its median."))
        story += _beat_and_perturbation(ctx, attack, sample)
    return story


def _n_lead(leads: list[str]) -> str:
    return "12-lead" if has_standard_12(leads) else f"{len(leads)}-lead"


@dataclass(frozen=True)
class _Sample:
    """One saved evaluation record with the attack's δ and both decisions."""

    x: np.ndarray  # (L, T) clean, mV
    delta: np.ndarray  # (L, T) mV
    leads: list[str]
    fs: float
    record: str
    before: str
    after: str
    index: int
    count: int


def _sample_for(ctx: Context, aid: str) -> _Sample | None:
    """The first saved record whose decision the attack changed (else the first), with its δ."""
    s = ctx.samples
    if s is None or f"delta_{aid}" not in s or "X" not in s or s["X"].ndim != 3 or s["X"].shape[0] == 0:
        return None
    X = s["X"]
    n = X.shape[0]
    try:
        delta = np.broadcast_to(s[f"delta_{aid}"], X.shape)
    except ValueError:
        return None
    before = [str(v) for v in s.get("clean_decision", np.array(["?"] * n)).reshape(-1)] + ["?"] * n
    after = [str(v) for v in s.get(f"decision_{aid}", np.array(["?"] * n)).reshape(-1)] + ["?"] * n
    k = next((i for i in range(n) if before[i] != after[i]), 0)
    ids = [str(v) for v in s.get("record_ids", np.array([])).reshape(-1)] + [f"#{i + 1}" for i in range(n)]
    leads = [str(v) for v in s.get("leads", np.array(get(ctx.report, "model", "card", "leads", default=[]) or []))]
    if len(leads) != X.shape[1]:
        leads = [f"lead {i + 1}" for i in range(X.shape[1])]
    fs = float(s["fs"]) if "fs" in s else float(get(ctx.report, "data", "fs", default=500.0) or 500.0)
    return _Sample(X[k].astype(np.float64), np.asarray(delta[k], dtype=np.float64), leads, fs, ids[k], before[k],
                   after[k], k, n)


def _eps_per_lead(attack: dict[str, Any], ctx: Context, leads: list[str]) -> list[float | None]:
    eps = get(attack, "params", "eps_mv")
    if isinstance(eps, int | float):
        return [float(eps)] * len(leads)
    if isinstance(eps, list):
        card_leads = get(ctx.report, "model", "card", "leads", default=[]) or []
        card = [canonical_lead(str(c)) or str(c) for c in card_leads]
        if len(card) == len(eps):
            by_name = dict(zip(card, eps, strict=True))
            return [by_name.get(canonical_lead(lead) or lead) for lead in leads]
        return [float(e) for e in eps[: len(leads)]] + [None] * max(0, len(leads) - len(eps))
    return [None] * len(leads)


def eps_text(attack: dict[str, Any], ctx: Context) -> str:
    """ε grouped by value: '0.1 mV (I, II, …), 0.2 mV (V2–V6)'."""
    eps = get(attack, "params", "eps_mv")
    if isinstance(eps, int | float):
        return f"ε = {eps:g} mV on every lead"
    if not isinstance(eps, list) or not eps:
        return "ε not recorded"
    leads = [str(c) for c in get(ctx.report, "model", "card", "leads", default=[]) or []]
    if len(leads) != len(eps):
        leads = [f"#{i + 1}" for i in range(len(eps))]
    groups: dict[float, list[str]] = {}
    for lead, e in zip(leads, eps, strict=True):
        groups.setdefault(float(e), []).append(lead)
    if len(groups) == 1:
        return f"ε = {next(iter(groups)):g} mV on every lead"
    return "ε = " + "; ".join(f"{value:g} mV ({', '.join(names)})" for value, names in groups.items())


def _beat_and_perturbation(ctx: Context, attack: dict[str, Any], sample: _Sample) -> list[Flowable]:
    """The second page of an attack: one beat enlarged (ST readable) and δ alone, lead by lead."""
    aid = str(attack.get("id", "?"))
    x, delta, leads, fs, record = sample.x, sample.delta, sample.leads, sample.fs, sample.record
    story: list[Flowable] = [PageBreak(), Bookmark(f"Zoomed beat and perturbation — {aid}", level=1)]
    index = lead_index(leads)
    detect = next((index[name] for name in ("II", "V2") if name in index), 0)
    before, after = 0.35, 0.65
    r = find_beat(x[detect], fs, before, after)
    if r is None:
        story.append(Paragraph(f"Zoomed beat: no R peak with a full 1 s window was found in record "
                               f"{escape(record)}.", STYLES["body"]))
    else:
        lo, hi = r - int(before * fs), r + int(after * fs)
        shown = [name for name in ("II", "V2") if name in index] or [leads[detect]]
        panels = [BeatPanel(name, x[index.get(name, detect), lo:hi],
                                x[index.get(name, detect), lo:hi] + delta[index.get(name, detect), lo:hi])
                  for name in shown]
        beats = ZoomedBeats(panels, fs, r - lo)
        story.append(KeepTogether([caption(
            ctx, f"Zoomed beat, attack {aid}",
            f"Record {escape(record)}, the largest QRS peak of lead {escape(leads[detect])} (t = {r / fs:.2f} s); "
            f"1 s window at 100 mm/s and {beats.gain:g} mm/mV ({beats.gain / GAIN_MM_MV:g} × standard gain), so "
            f"1 mm = 10 ms and {1000 / beats.gain:g} µV; clean black, adversarial red; the same beat in every panel. "
            "The dotted line is R + 80 ms, where the ST level is read."), beats]))
    story.append(Spacer(1, 3 * mm))
    traces = PerturbationLeads(delta, leads, fs, _eps_per_lead(attack, ctx, leads))
    story.append(KeepTogether([caption(
        ctx, f"Perturbation per lead, attack {aid}",
        f"δ added to record {escape(record)}"
        f"{' (the same universal δ is added to every record)' if attack.get('universal') else ''}, whole record at "
        f"{traces.mm_per_s:.3g} mm/s; one shared, enlarged vertical scale of {traces.gain:g} mm/mV "
        f"({traces.gain / GAIN_MM_MV:g} × standard gain; scale bar at the bottom right); the dashed lines are "
        "±ε of each lead, the amplitude budget."), traces]))
    return story
