"""ECG-paper figures for the PDF report: the 12-lead sheet and the perturbation per lead (the zoomed median beat
is in `beat`).

The 12-lead sheet is at standard paper speed and gain (25 mm/s, 10 mm/mV); the perturbation traces enlarge and
state their scales. Sizes are real millimetres, so a page printed at 100 %
reads like a clinical tracing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from ecgaudit.leads import canonical_lead
from ecgaudit.render.pdf.draw import (
    ADVERSARIAL,
    CLEAN,
    FONT,
    FONT_BOLD,
    GRID_MAJOR,
    GRID_MINOR,
    LIGHT,
    PERTURBATION,
    Figure,
    polyline,
)

#: The classic 3 × 4 printout: each row shows four leads, 2.5 s each, in simultaneous time windows.
STANDARD_ROWS: tuple[tuple[str, ...], ...] = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"),
                                              ("III", "aVF", "V3", "V6"))
PAPER_SPEED_MM_S = 25.0
GAIN_MM_MV = 10.0
CAL_W = 10 * mm  # the 1 mV × 200 ms calibration pulse and its margins


def envelope(t: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max per time bin, in time order: far fewer points, the same drawn extent (peaks are kept)."""
    n = y.size
    if n <= 2 * bins:
        return t, y
    width = -(-n // bins)
    pad = bins * width - n
    tt = np.concatenate([t, np.repeat(t[-1:], pad)]).reshape(bins, width)
    yy = np.concatenate([y, np.repeat(y[-1:], pad)]).reshape(bins, width)
    i_min, i_max = yy.argmin(axis=1), yy.argmax(axis=1)
    first = np.minimum(i_min, i_max)[:, None]
    second = np.maximum(i_min, i_max)[:, None]
    order = np.concatenate([first, second], axis=1)
    return (np.take_along_axis(tt, order, axis=1).reshape(-1), np.take_along_axis(yy, order, axis=1).reshape(-1))


def ecg_grid(canv: Canvas, x0: float, y0: float, width_mm: int, height_mm: int) -> None:
    """ECG paper: 1 mm minor and 5 mm major lines, in true millimetres from (x0, y0)."""
    canv.saveState()
    for major in (False, True):
        canv.setStrokeColor(GRID_MAJOR if major else GRID_MINOR)
        canv.setLineWidth(0.55 if major else 0.25)
        step = 5 if major else 1
        for i in range(0, width_mm + 1, step):
            if major or i % 5:
                canv.line(x0 + i * mm, y0, x0 + i * mm, y0 + height_mm * mm)
        for j in range(0, height_mm + 1, step):
            if major or j % 5:
                canv.line(x0, y0 + j * mm, x0 + width_mm * mm, y0 + j * mm)
    canv.restoreState()


def calibration_pulse(canv: Canvas, x: float, baseline: float, gain_mm_mv: float, speed_mm_s: float) -> None:
    """The 1 mV, 200 ms square pulse that tells the reader the gain and speed the trace was printed at."""
    w = 0.2 * speed_mm_s * mm
    h = 1.0 * gain_mm_mv * mm
    lead_in = 2 * mm
    path = canv.beginPath()
    path.moveTo(x, baseline)
    path.lineTo(x + lead_in, baseline)
    path.lineTo(x + lead_in, baseline + h)
    path.lineTo(x + lead_in + w, baseline + h)
    path.lineTo(x + lead_in + w, baseline)
    path.lineTo(x + 2 * lead_in + w, baseline)
    canv.saveState()
    canv.setStrokeColor(CLEAN)
    canv.setLineWidth(0.7)
    canv.drawPath(path, stroke=1, fill=0)
    canv.restoreState()


def lead_index(leads: Sequence[str]) -> dict[str, int]:
    """Map standard lead names (and any others, verbatim) to their row in the array."""
    out: dict[str, int] = {}
    for i, name in enumerate(leads):
        out[canonical_lead(str(name)) or str(name)] = i
    return out


def has_standard_12(leads: Sequence[str]) -> bool:
    index = lead_index(leads)
    return all(lead in index for row in STANDARD_ROWS for lead in row)


class EcgSheet(Figure):
    """A 12-lead ECG on standard paper (25 mm/s, 10 mm/mV): clean in black, adversarial in red on top.

    With all 12 standard leads: the classic 3 × 4 layout (2.5 s per lead, simultaneous windows) plus a
    10 s lead II rhythm strip; otherwise one 10 s row per lead. Each lead is drawn about the median of its
    clean signal (baseline offset removed); the same offset is applied to the adversarial trace, so the
    drawn difference is exactly δ.
    """

    def __init__(self, clean: np.ndarray, adversarial: np.ndarray, leads: Sequence[str], fs: float,
                 max_height: float = 150 * mm) -> None:
        self.clean = np.asarray(clean, dtype=np.float64)
        self.adv = np.asarray(adversarial, dtype=np.float64)
        self.fs = float(fs)
        self.index = lead_index(leads)
        if has_standard_12(leads):
            self.rows: list[tuple[str, ...]] = [*STANDARD_ROWS, ("II",)]
        else:
            self.rows = [(canonical_lead(str(name)) or str(name),) for name in list(leads)[:12]]
        self.layout = ("3 × 4 layout, 2.5 s per lead in simultaneous windows, with a 10 s lead II rhythm strip"
                       if len(self.rows) == 4 and len(self.rows[0]) == 4 else "one 10 s row per lead")
        n = len(self.rows)
        self.row_mm = int(min(35, max(10, (max_height / mm / n) // 5 * 5)))
        self.base_mm = max(5, int(self.row_mm * 0.45) // 5 * 5)
        self.width_mm = int(CAL_W / mm + 10 * PAPER_SPEED_MM_S)
        self.height_mm = n * self.row_mm
        super().__init__(self.width_mm * mm, self.height_mm * mm)

    def paint(self, canv: Canvas) -> None:
        ecg_grid(canv, 0, 0, self.width_mm, self.height_mm)
        clip = canv.beginPath()
        clip.rect(0, 0, self.width, self.height)
        canv.clipPath(clip, stroke=0, fill=0)
        offsets = np.median(self.clean, axis=-1)
        for r, row in enumerate(self.rows):
            baseline = (self.height_mm - (r + 1) * self.row_mm + self.base_mm) * mm
            calibration_pulse(canv, 0, baseline, GAIN_MM_MV, PAPER_SPEED_MM_S)
            seconds = 10.0 / len(row)
            for c, lead in enumerate(row):
                i = self.index.get(lead)
                x0 = CAL_W + c * seconds * PAPER_SPEED_MM_S * mm
                if c:
                    canv.setStrokeColor(CLEAN)
                    canv.setLineWidth(0.7)
                    canv.line(x0, baseline - 2.5 * mm, x0, baseline + 2.5 * mm)
                canv.setFont(FONT_BOLD, 8)
                canv.setFillColor(CLEAN)
                canv.drawString(x0 + 1.5 * mm, baseline + (self.row_mm - self.base_mm - 4) * mm, lead)
                if i is None:
                    continue
                start = int(round(c * seconds * self.fs))
                stop = min(self.clean.shape[-1], int(round((c + 1) * seconds * self.fs)))
                if stop <= start:
                    continue
                t = (np.arange(start, stop) - start) / self.fs
                bins = int(seconds * PAPER_SPEED_MM_S * 20)  # 0.05 mm: finer than a printer resolves
                for trace, color, width in ((self.adv, ADVERSARIAL, 0.9), (self.clean, CLEAN, 0.45)):
                    tt, yy = envelope(t, trace[i, start:stop] - offsets[i], bins)
                    canv.setStrokeColor(color)
                    canv.setLineWidth(width)
                    polyline(canv, x0 + tt * PAPER_SPEED_MM_S * mm, baseline + yy * GAIN_MM_MV * mm)


class PerturbationLeads(Figure):
    """The perturbation δ alone, one small trace per lead on a shared (enlarged) vertical scale.

    Dashed lines mark ±ε for the lead, so a reader sees at once how much of the budget is spent and where.
    Limb leads fill the left column and chest leads the right, as on the 12-lead sheet.
    """

    ROW_MM = 10
    LABEL_MM = 30
    TRACE_MM = 100
    GAP_MM = 6

    def __init__(self, delta: np.ndarray, leads: Sequence[str], fs: float, eps_mv: Sequence[float | None]) -> None:
        self.delta = np.asarray(delta, dtype=np.float64)
        self.names = [canonical_lead(str(n)) or str(n) for n in leads]
        self.fs = float(fs)
        self.eps = list(eps_mv)
        n = len(self.names)
        self.per_col = (n + 1) // 2 if n > 1 else 1
        self.cols = 1 if n <= 1 else 2
        peak = max([float(np.abs(self.delta).max()) if self.delta.size else 0.0]
                   + [float(e) for e in self.eps if e is not None])
        # The largest excursion fills 60% of half a row: neighbouring rows' ±ε lines stay apart and readable.
        half = 0.6 * (self.ROW_MM / 2 - 0.8)
        raw = half / peak if peak > 0 else 10.0
        self.gain = max(g for g in _one_two_five(raw) if g <= raw)
        self.bar_mv = _bar_value(4.0 / self.gain)
        col_w = (self.LABEL_MM + self.TRACE_MM) * mm
        super().__init__(self.cols * col_w + (self.cols - 1) * self.GAP_MM * mm,
                         (self.per_col * self.ROW_MM + 10) * mm)

    @property
    def mm_per_s(self) -> float:
        seconds = self.delta.shape[-1] / self.fs
        return self.TRACE_MM / seconds if seconds > 0 else 1.0

    def paint(self, canv: Canvas) -> None:
        n_samples = self.delta.shape[-1]
        mm_per_s = self.mm_per_s
        for i, name in enumerate(self.names):
            col, row = divmod(i, self.per_col)
            x0 = col * (self.LABEL_MM + self.TRACE_MM + self.GAP_MM) * mm
            base = (10 + (self.per_col - row - 0.5) * self.ROW_MM) * mm
            tx = x0 + self.LABEL_MM * mm
            canv.setStrokeColor(LIGHT)
            canv.setLineWidth(0.4)
            canv.line(tx, base, tx + self.TRACE_MM * mm, base)
            eps = self.eps[i] if i < len(self.eps) else None
            if eps is not None:
                canv.setStrokeColor(colors.Color(0.9, 0.4, 0.4))
                canv.setDash(2, 2)
                for sign in (1, -1):
                    y = base + sign * eps * self.gain * mm
                    canv.line(tx, y, tx + self.TRACE_MM * mm, y)
                canv.setDash()
            t, d = envelope(np.arange(n_samples) / self.fs, self.delta[i], bins=self.TRACE_MM * 5)
            canv.setStrokeColor(PERTURBATION)
            canv.setLineWidth(0.35)
            polyline(canv, tx + t * mm_per_s * mm, base + d * self.gain * mm)
            canv.setFillColor(CLEAN)
            canv.setFont(FONT_BOLD, 8)
            canv.drawString(x0, base + 0.8 * mm, name)
            canv.setFont(FONT, 6.5)
            eps_text = f"ε {eps:.2g}" if eps is not None else "ε n/a"
            canv.drawString(x0, base - 2.6 * mm, f"{eps_text} · max {np.abs(self.delta[i]).max():.2g} mV")
        # The shared scale bar: vertical in mV at this gain, horizontal one second.
        bx = self.width - 25 * mm
        canv.setStrokeColor(CLEAN)
        canv.setLineWidth(0.8)
        canv.line(bx, 2 * mm, bx, 2 * mm + self.bar_mv * self.gain * mm)
        canv.line(bx, 2 * mm, bx + mm_per_s * mm, 2 * mm)
        canv.setFont(FONT, 7)
        canv.drawString(bx + 1.5 * mm, 2 * mm + self.bar_mv * self.gain * mm - 2 * mm, f"{self.bar_mv:g} mV")
        canv.drawString(bx + mm_per_s * mm + 1.5 * mm, 1.2 * mm, "1 s")


def _one_two_five(upper: float) -> list[float]:
    """1–2–5 gains from 0.1 up to `upper` (at least one value)."""
    out = [0.1]
    mag = 0.1
    while mag <= max(upper, 0.1) * 10:
        for m in (1, 2, 5):
            if m * mag <= upper:
                out.append(m * mag)
        mag *= 10
    return out


def _bar_value(target_mv: float) -> float:
    """A round mV value near `target_mv`, for a scale bar."""
    if target_mv <= 0 or not math.isfinite(target_mv):
        return 0.1
    mag = 10 ** math.floor(math.log10(target_mv))
    return min((m * mag for m in (1, 2, 5, 10)), key=lambda v: abs(math.log(v / target_mv)))
