"""The per-attack ECG pages of the PDF report: an example record on the 12-lead sheet, then its median beat with
the ST measurement and the perturbation per lead.

The scan keeps three clean, distinct evaluation records (`samples.npz`); attack k shows record k mod 3, so the
pages show each of them ("1 of 3", "2 of 3", "3 of 3") instead of the same record every time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, PageBreak, Paragraph, Spacer

from ecgaudit.leads import canonical_lead
from ecgaudit.render import facts
from ecgaudit.render.pdf.beat import MedianBeats, beat_leads, leads_to_show
from ecgaudit.render.pdf.context import Context
from ecgaudit.render.pdf.ecg import GAIN_MM_MV, EcgSheet, PerturbationLeads, has_standard_12
from ecgaudit.render.pdf.text import STYLES, Bookmark, caption, fmt, get, rate, section


def attack_pages(ctx: Context) -> list[Flowable]:
    """Per attack: the 12-lead sheet, then the median beat and δ per lead; attacks without a saved sample share
    a page (a heading, their metrics and why the figures are missing)."""
    story: list[Flowable] = []
    previous_drawn = True
    for k, attack in enumerate(a for a in ctx.report.get("attacks") or [] if isinstance(a, Mapping)):
        aid = str(attack.get("id", "?"))
        m = attack.get("metrics") or {}
        sample = _sample_for(ctx, aid, k)
        story += section(ctx.result_heading(f"Example record, attack {aid}"), new_page=sample is not None
                         or previous_drawn, level=1)
        previous_drawn = sample is not None
        story.append(Paragraph(
            f"Worst-case fooling rate {rate(m.get('fooling_rate'))} · SNR {fmt(m.get('snr_db'), '.1f')} dB · "
            f"SSIM {fmt(m.get('ssim'), '.3f')} · L∞ {fmt(m.get('linf_mv'), '.3g')} mV · budget "
            f"{escape(facts.budget_text(attack, facts.leads_of(ctx.report)))}", STYLES["body"]))
        if sample is None:
            story.append(Paragraph(f"No sample record was saved for this attack ({escape(ctx.samples_problem or '')}"
                                   f"{'' if ctx.samples_problem else 'samples.npz has no delta_' + escape(aid)}); "
                                   "the ECG figures are omitted.", STYLES["alarm"]))
            continue
        changed = sample.before != sample.after
        story.append(Paragraph(
            f"Record <b>{escape(sample.record)}</b> (saved example record {sample.index + 1} of {sample.count}) — "
            "clean decision "
            f"<b>{escape(sample.before)}</b> → decision under attack "
            f"<b><font color='{'#cc1414' if changed else '#1a8c33'}'>{escape(sample.after)}</font></b>"
            f"{' (changed)' if changed else ' (unchanged)'}. "
            "Black: clean; <font color='#d90000'>red: attacked = clean + δ</font>.", STYLES["body"]))
        story.append(Spacer(1, 1.5 * mm))
        sheet = EcgSheet(sample.x, sample.x + sample.delta, sample.leads, sample.fs, max_height=135 * mm)
        story.append(KeepTogether([sheet, caption(
            ctx, f"{_n_lead(sample.leads)} ECG, attack {aid}",
            "25 mm/s, 10 mm/mV; grid 1 mm (0.04 s, 0.1 mV) and 5 mm (0.2 s, 0.5 mV); calibration pulse 1 mV × "
            f"200 ms at the start of each row; {sheet.layout}. Each lead is drawn about its median.")]))
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


def _sample_for(ctx: Context, aid: str, k: int) -> _Sample | None:
    """Saved record k mod n, with the attack's δ on it."""
    s = ctx.samples
    if s is None or f"delta_{aid}" not in s or "X" not in s or s["X"].ndim != 3 or s["X"].shape[0] == 0:
        return None
    X = s["X"]
    n = X.shape[0]
    try:
        delta = np.broadcast_to(s[f"delta_{aid}"], X.shape)
    except ValueError:
        return None
    i = k % n
    before = [str(v) for v in s.get("clean_decision", np.array(["?"] * n)).reshape(-1)] + ["?"] * n
    after = [str(v) for v in s.get(f"decision_{aid}", np.array(["?"] * n)).reshape(-1)] + ["?"] * n
    ids = [str(v) for v in s.get("record_ids", np.array([])).reshape(-1)] + [f"#{j + 1}" for j in range(n)]
    leads = [str(v) for v in s.get("leads", np.array(facts.leads_of(ctx.report)))]
    if len(leads) != X.shape[1]:
        leads = [f"lead {j + 1}" for j in range(X.shape[1])]
    fs = float(s["fs"]) if "fs" in s else float(get(ctx.report, "data", "fs", default=500.0) or 500.0)
    return _Sample(X[i].astype(np.float64), np.asarray(delta[i], dtype=np.float64), leads, fs, ids[i], before[i],
                   after[i], i, n)


def _eps_per_lead(attack: Mapping[str, Any], ctx: Context, leads: list[str]) -> list[float | None]:
    eps = get(attack, "params", "eps_mv")
    if isinstance(eps, int | float):
        return [float(eps)] * len(leads)
    if isinstance(eps, list):
        card = [canonical_lead(c) or c for c in facts.leads_of(ctx.report)]
        if len(card) == len(eps):
            by_name = dict(zip(card, eps, strict=True))
            return [by_name.get(canonical_lead(lead) or lead) for lead in leads]
        return [float(e) for e in eps[: len(leads)]] + [None] * max(0, len(leads) - len(eps))
    return [None] * len(leads)


def _beat_and_perturbation(ctx: Context, attack: Mapping[str, Any], sample: _Sample) -> list[Flowable]:
    """The second page of an attack: the median beat with the ST measurement, and δ alone, lead by lead."""
    from ecgaudit.clinical.st import record_fiducials  # neurokit2 loads only when a PDF has ECG pages

    aid = str(attack.get("id", "?"))
    story: list[Flowable] = [PageBreak(), Bookmark(f"Median beat and perturbation — {aid}", level=2)]
    names = [canonical_lead(lead) or lead for lead in sample.leads]
    fiducials = record_fiducials(sample.x, sample.delta, sample.fs, names)
    if fiducials is None:
        story.append(Paragraph(f"Median beat: record {escape(sample.record)} has fewer than three complete beats or "
                               "no QRS the delineation can find, so its ST deviation cannot be measured.",
                               STYLES["body"]))
    else:
        clean = fiducials["clean"]
        beats = MedianBeats(beat_leads(fiducials, leads_to_show(fiducials)), fiducials["time_ms"],
                            tuple(clean["pr_baseline_ms"]), clean["j_point_ms"], clean["j60_ms"])
        story.append(KeepTogether([caption(
            ctx, f"Median beat and ST deviation, attack {aid}",
            f"Record {escape(sample.record)}: the median beat of the clean record (black) and of the attacked one "
            f"(red), at 100 mm/s and {beats.gain:g} mm/mV ({beats.gain / GAIN_MM_MV:g} × standard gain). Shaded: "
            "the PR-segment baseline window; solid line: the J point; dotted: J + 60 ms; dashed: each beat's PR "
            "baseline. ST deviation is the level at J (or J + 60 ms) minus that beat's own PR baseline, as an "
            "electrocardiograph reads it (a constant offset changes no reading); the points are found on the clean "
            "record. Shown: II, V2 and the lead whose ST the attack moved most."), beats]))
    story.append(Spacer(1, 3 * mm))
    traces = PerturbationLeads(sample.delta, sample.leads, sample.fs, _eps_per_lead(attack, ctx, sample.leads))
    story.append(KeepTogether([caption(
        ctx, f"Perturbation per lead, attack {aid}",
        f"δ added to record {escape(sample.record)}"
        f"{' (the same universal δ is added to every record)' if attack.get('universal') else ''}, whole record at "
        f"{traces.mm_per_s:.3g} mm/s; one shared, enlarged vertical scale of {traces.gain:g} mm/mV "
        f"({traces.gain / GAIN_MM_MV:g} × standard gain; scale bar at the bottom right); the dashed lines are "
        "±ε of each lead, the amplitude budget."), traces]))
    return story
