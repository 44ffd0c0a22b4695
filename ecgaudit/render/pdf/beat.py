"""The zoomed median beat of the PDF report: ST measured as a cardiologist reads it, drawn where it is read.

Per lead: the clean and the attacked median beat at 100 mm/s and an enlarged gain, the PR-segment baseline
window shaded, the J point and J + 60 ms marked, and the ST deviation at each printed for both beats (level
minus that beat's own PR baseline). The points come from `ecgaudit.clinical.st.record_fiducials`, which finds
them on the clean record and reads the attacked one at the same places.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from ecgaudit.render.pdf.draw import ADVERSARIAL, AXIS, CLEAN, FONT, FONT_BOLD, Figure, polyline
from ecgaudit.render.pdf.ecg import GAIN_MM_MV, ecg_grid
from ecgaudit.render.pdf.text import fmt

SPEED_MM_S = 100.0
PANEL_H_MM = 44
PR_SHADE = colors.Color(0.55, 0.75, 0.95, alpha=0.35)


@dataclass(frozen=True)
class BeatLead:
    """One lead of a record's clean and attacked median beats, with the ST readings (mV)."""

    lead: str
    clean: np.ndarray
    adversarial: np.ndarray
    clean_baseline_mv: float
    adversarial_baseline_mv: float
    st_j: tuple[float, float]
    """(clean, attacked) ST deviation at the J point."""
    st_j60: tuple[float, float]


def beat_leads(fiducials: Mapping[str, Any], shown: Sequence[str]) -> list[BeatLead]:
    """The leads `shown` (those present) out of a `record_fiducials` result."""
    names = [str(n) for n in fiducials["leads"]]
    clean, adv = fiducials["clean"], fiducials["adversarial"]
    out = []
    for lead in shown:
        if lead not in names:
            continue
        i = names.index(lead)
        c, a = clean["per_lead"][lead], adv["per_lead"][lead]
        out.append(BeatLead(lead, np.asarray(clean["median_beat_mv"][i], dtype=np.float64),
                            np.asarray(adv["median_beat_mv"][i], dtype=np.float64), float(c["baseline_mv"]),
                            float(a["baseline_mv"]), (float(c["st_j_mv"]), float(a["st_j_mv"])),
                            (float(c["st_j60_mv"]), float(a["st_j60_mv"]))))
    return out


def leads_to_show(fiducials: Mapping[str, Any], limit: int = 3) -> list[str]:
    """II and V2 (where ST changes are read first), then the lead whose ST at J the attack moved most."""
    names = [str(n) for n in fiducials["leads"]]
    clean, adv = fiducials["clean"]["per_lead"], fiducials["adversarial"]["per_lead"]
    moved = sorted(names, key=lambda n: -abs(float(adv[n]["st_j_mv"]) - float(clean[n]["st_j_mv"])))
    chosen = [n for n in ("II", "V2") if n in names]
    for name in moved:
        if len(chosen) >= limit:
            break
        if name not in chosen:
            chosen.append(name)
    return chosen[:limit]


class MedianBeats(Figure):
    """Median beats side by side, sharing time axis and gain, with PR window, J and J + 60 ms marked."""

    def __init__(self, leads: list[BeatLead], time_ms: Sequence[float], pr_ms: tuple[float, float], j_ms: float,
                 j60_ms: float) -> None:
        self.leads = leads
        self.time_ms = np.asarray(time_ms, dtype=np.float64)
        self.pr_ms, self.j_ms, self.j60_ms = pr_ms, j_ms, j60_ms
        self.panel_w_mm = int(np.ceil((self.time_ms[-1] - self.time_ms[0]) / 1000 * SPEED_MM_S))
        spans = [np.concatenate([b.clean, b.adversarial]) - b.clean_baseline_mv for b in leads]
        self.lo = min(float(s.min()) for s in spans)
        self.hi = max(float(s.max()) for s in spans)
        self.gain = next((g for g in (40.0, 20.0, 10.0, 5.0) if (self.hi - self.lo) * g <= PANEL_H_MM - 10), 2.5)
        self.gap = 10 * mm
        super().__init__(len(leads) * self.panel_w_mm * mm + (len(leads) - 1) * self.gap, (PANEL_H_MM + 27) * mm)

    def x(self, x0: float, t_ms: float) -> float:
        return x0 + (t_ms - self.time_ms[0]) / 1000 * SPEED_MM_S * mm

    def paint(self, canv: Canvas) -> None:
        y0 = 21 * mm
        ph = PANEL_H_MM
        base_mm = round((ph - (self.hi - self.lo) * self.gain) / 2 - self.lo * self.gain)
        for k, beat in enumerate(self.leads):
            x0 = k * (self.panel_w_mm * mm + self.gap)
            ecg_grid(canv, x0, y0, self.panel_w_mm, ph)
            canv.saveState()
            clip = canv.beginPath()
            clip.rect(x0, y0, self.panel_w_mm * mm, ph * mm)
            canv.clipPath(clip, stroke=0, fill=0)
            canv.setFillColor(PR_SHADE)
            canv.rect(self.x(x0, self.pr_ms[0]), y0, self.x(x0, self.pr_ms[1]) - self.x(x0, self.pr_ms[0]), ph * mm,
                      stroke=0, fill=1)
            zero = y0 + base_mm * mm

            def level(mv: float, beat: BeatLead = beat, zero: float = zero) -> float:
                return zero + (mv - beat.clean_baseline_mv) * self.gain * mm

            canv.setLineWidth(0.5)
            for baseline, colour in ((beat.clean_baseline_mv, CLEAN), (beat.adversarial_baseline_mv, ADVERSARIAL)):
                canv.setStrokeColor(colour)
                canv.setDash(3, 2)
                canv.line(x0, level(baseline), x0 + self.panel_w_mm * mm, level(baseline))
            canv.setStrokeColor(AXIS)
            canv.setDash()
            canv.line(self.x(x0, self.j_ms), y0, self.x(x0, self.j_ms), y0 + ph * mm)
            canv.setDash(1, 1.5)
            canv.line(self.x(x0, self.j60_ms), y0, self.x(x0, self.j60_ms), y0 + ph * mm)
            canv.setDash()
            for trace, colour, width in ((beat.adversarial, ADVERSARIAL, 1.3), (beat.clean, CLEAN, 0.7)):
                canv.setStrokeColor(colour)
                canv.setLineWidth(width)
                polyline(canv, np.array([self.x(x0, t) for t in self.time_ms]), np.array([level(v) for v in trace]))
            canv.restoreState()
            canv.setFont(FONT_BOLD, 9)
            canv.setFillColor(CLEAN)
            canv.drawString(x0 + 1.5 * mm, y0 + (ph - 4.5) * mm, beat.lead)
            canv.setFont(FONT, 6.5)
            canv.setFillColor(AXIS)
            canv.drawCentredString((self.x(x0, self.pr_ms[0]) + self.x(x0, self.pr_ms[1])) / 2, y0 + ph * mm + 1 * mm,
                                   "PR")
            canv.drawCentredString(self.x(x0, self.j_ms), y0 + ph * mm + 1 * mm, "J")
            canv.drawCentredString(self.x(x0, self.j60_ms), y0 - 3 * mm, "J+60 ms")
            canv.setFont(FONT, 7)
            canv.setFillColor(CLEAN)
            for row, (name, (clean, adv)) in enumerate((("J", beat.st_j), ("J+60 ms", beat.st_j60))):
                y = y0 - (7 + 7 * row) * mm
                canv.drawString(x0, y, f"ST at {name}: clean {fmt(clean, '+.3f')} mV, attacked {fmt(adv, '+.3f')} mV")
                canv.drawString(x0 + 4 * mm, y - 3.2 * mm, f"change {fmt(adv - clean, '+.3f')} mV "
                                                          f"({fmt((adv - clean) * GAIN_MM_MV, '+.1f')} mm at 10 mm/mV)")
