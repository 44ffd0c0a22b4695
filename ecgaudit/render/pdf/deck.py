"""The reader-study deck: one 12-lead ECG per page on standard paper, with nothing that tells clean from forged.

Every page is drawn by the same code path with the same operators, colours, fonts and point counts: the grid,
a calibration pulse per row, the 3 × 4 layout (2.5 s per lead) and a 10 s lead II rhythm strip, one black
trace, the case id and the paper settings. Only the trace coordinates and the case id differ. Each lead is
drawn about its own median, as an electrocardiograph's high-pass centres it; the same rule applies to every
case. The PDF is written with reportlab's invariant mode (fixed dates and document id) and neutral metadata.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from ecgaudit.render.pdf.draw import CLEAN, FONT, FONT_BOLD, polyline
from ecgaudit.render.pdf.ecg import (
    CAL_W,
    GAIN_MM_MV,
    PAPER_SPEED_MM_S,
    STANDARD_ROWS,
    calibration_pulse,
    ecg_grid,
    envelope,
    lead_index,
)

ROW_MM = 40
BASE_MM = 20
DECK_TITLE = "ECG reader study"
MAX_SECONDS = 10.0


def _page(canv: Canvas, signal: np.ndarray, leads: Sequence[str], fs: float, case_id: str) -> None:
    page_w, page_h = landscape(A4)
    rows = [*STANDARD_ROWS, ("II",)]
    record_s = min(MAX_SECONDS, signal.shape[-1] / fs)
    width_mm = int(np.ceil(CAL_W / mm + record_s * PAPER_SPEED_MM_S))
    height_mm = ROW_MM * len(rows)
    x0 = (page_w - width_mm * mm) / 2
    y0 = (page_h - height_mm * mm) / 2 - 5 * mm
    canv.setFont(FONT_BOLD, 12)
    canv.setFillColor(CLEAN)
    canv.drawString(x0, y0 + height_mm * mm + 6 * mm, f"Case {case_id}")
    canv.setFont(FONT, 9)
    canv.drawRightString(x0 + width_mm * mm, y0 + height_mm * mm + 6 * mm,
                         f"{PAPER_SPEED_MM_S:g} mm/s · {GAIN_MM_MV:g} mm/mV · {fs:g} Hz · {record_s:g} s")
    canv.saveState()
    canv.translate(x0, y0)
    ecg_grid(canv, 0, 0, width_mm, height_mm)
    clip = canv.beginPath()
    clip.rect(0, 0, width_mm * mm, height_mm * mm)
    canv.clipPath(clip, stroke=0, fill=0)
    index = lead_index(leads)
    centre = np.median(signal, axis=-1)
    n_total = int(round(record_s * fs))
    for r, row in enumerate(rows):
        baseline = (height_mm - (r + 1) * ROW_MM + BASE_MM) * mm
        calibration_pulse(canv, 0, baseline, GAIN_MM_MV, PAPER_SPEED_MM_S)
        seconds = record_s / len(row)
        for c, lead in enumerate(row):
            x_lead = CAL_W + c * seconds * PAPER_SPEED_MM_S * mm
            canv.setStrokeColor(CLEAN)
            canv.setLineWidth(0.7)
            canv.line(x_lead, baseline - 2.5 * mm, x_lead, baseline + 2.5 * mm)
            canv.setFont(FONT_BOLD, 8)
            canv.setFillColor(CLEAN)
            canv.drawString(x_lead + 1.5 * mm, baseline + (ROW_MM - BASE_MM - 4) * mm, lead)
            i = index[lead]
            start = int(round(c * seconds * fs))
            stop = min(n_total, int(round((c + 1) * seconds * fs)))
            t = (np.arange(start, stop) - start) / fs
            tt, yy = envelope(t, signal[i, start:stop] - centre[i], int(seconds * PAPER_SPEED_MM_S * 20))
            canv.setLineWidth(0.5)
            polyline(canv, x_lead + tt * PAPER_SPEED_MM_S * mm, baseline + yy * GAIN_MM_MV * mm)
    canv.restoreState()


def render_deck(signals: np.ndarray, leads: Sequence[str], fs: float, case_ids: Sequence[str]) -> bytes:
    """PDF bytes: page k shows the first ≤ 10 s of `signals[k]` `(12, T)` mV as case `case_ids[k]`."""
    buffer = io.BytesIO()
    canv = Canvas(buffer, pagesize=landscape(A4), invariant=1, pageCompression=1, initialFontName=FONT)
    canv.setTitle(DECK_TITLE)
    canv.setAuthor("")
    canv.setSubject("")
    canv.setCreator("")
    canv.setKeywords("")
    for signal, case_id in zip(signals, case_ids, strict=True):
        _page(canv, np.asarray(signal, dtype=np.float64), leads, fs, case_id)
        canv.showPage()
    canv.save()
    return buffer.getvalue()
