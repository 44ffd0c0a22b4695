"""Vector figures for the PDF report, drawn with reportlab canvas paths (no raster, no matplotlib).

Each figure is a platypus `Flowable` of fixed size in real millimetres, so that an ECG printed at 100 %
keeps its true paper speed (25 mm/s) and gain (10 mm/mV), the way a cardiologist reads one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable

from ecgaudit.leads import canonical_lead

FONT = "Helvetica"
FONT_BOLD = "Helvetica-Bold"
GRID_MINOR = colors.Color(0.98, 0.80, 0.80)
GRID_MAJOR = colors.Color(0.93, 0.52, 0.52)
CLEAN = colors.black
ADVERSARIAL = colors.Color(0.90, 0.0, 0.0, alpha=0.7)
PERTURBATION = colors.Color(0.55, 0.0, 0.45)
AXIS = colors.Color(0.25, 0.25, 0.25)
LIGHT = colors.Color(0.85, 0.85, 0.85)
RED = colors.Color(0.80, 0.08, 0.08)
BLUE = colors.Color(0.10, 0.30, 0.75)
PALETTE = (colors.Color(0.80, 0.08, 0.08), colors.Color(0.10, 0.30, 0.75), colors.Color(0.10, 0.55, 0.20),
           colors.Color(0.55, 0.20, 0.65), colors.Color(0.90, 0.50, 0.00), colors.Color(0.35, 0.35, 0.35))

#: The classic 3 × 4 printout: each row shows four leads, 2.5 s each, in simultaneous time windows.
STANDARD_ROWS: tuple[tuple[str, ...], ...] = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"),
                                              ("III", "aVF", "V3", "V6"))
PAPER_SPEED_MM_S = 25.0
GAIN_MM_MV = 10.0
CAL_W = 10 * mm  # the 1 mV × 200 ms calibration pulse and its margins


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values covering [lo, hi] (1–2–2.5–5 steps), so axes read at a glance."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = mag
    for m in (1, 2, 2.5, 5, 10):
        step = m * mag
        if (hi - lo) / step <= n:
            break
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = start
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _fmt_tick(v: float) -> str:
    return f"{v:g}"


def polyline(canv: Canvas, xs: np.ndarray, ys: np.ndarray) -> None:
    """Stroke one open path through the points (NaNs break the line) with the current pen.

    Written as literal PDF path operators with 0.01 pt precision: reportlab's per-point path API is ~20×
    slower, and an ECG page holds some 10⁵ points.
    """
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    finite = np.isfinite(xs) & np.isfinite(ys)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start < 2:
            continue
        body = "\n".join(map("{:.2f} {:.2f} l".format, xs[start + 1:stop].tolist(), ys[start + 1:stop].tolist()))
        canv.addLiteral(f"{xs[start]:.2f} {ys[start]:.2f} m\n{body}\nS")


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


class Figure(Flowable):
    """A fixed-size drawing; subclasses implement `paint` in their own coordinates (origin bottom-left)."""

    def __init__(self, width: float, height: float) -> None:
        super().__init__()
        self.width = width
        self.height = height

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        self.canv.saveState()
        self.paint(self.canv)
        self.canv.restoreState()

    def paint(self, canv: Canvas) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


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


def find_beat(signal: np.ndarray, fs: float, before_s: float = 0.35, after_s: float = 0.65) -> int | None:
    """Sample index of the largest QRS peak (either polarity) with a full window around it (`find_peaks`)."""
    from scipy.signal import find_peaks

    x = np.asarray(signal, dtype=np.float64)
    x = x - np.median(x)
    if x.size == 0 or not np.isfinite(x).all() or np.ptp(x) == 0:
        return None
    lo, hi = int(before_s * fs), x.size - int(after_s * fs)
    magnitude = np.abs(x)  # QRS may point down (e.g. aVR, V1)
    peaks, _ = find_peaks(magnitude, distance=max(1, int(0.3 * fs)), prominence=0.3 * float(magnitude.max()))
    peaks = peaks[(peaks >= lo) & (peaks < hi)]
    if peaks.size == 0:
        return None
    return int(peaks[np.argmax(magnitude[peaks])])


@dataclass(frozen=True)
class BeatPanel:
    lead: str
    clean: np.ndarray  # the window, mV
    adversarial: np.ndarray


class ZoomedBeats(Figure):
    """One beat at 100 mm/s and an enlarged gain, clean vs adversarial, so the ST segment can be read.

    Panels share the time window (the same beat in every lead) and the gain (a fair comparison). A dotted
    line marks R + 80 ms, where the ST level is conventionally read.
    """

    SPEED = 100.0
    PANEL_MM = (100, 50)

    def __init__(self, panels: list[BeatPanel], fs: float, r_offset: int) -> None:
        self.panels = panels
        self.fs = float(fs)
        self.r_offset = r_offset
        lo = min(float(min(p.clean.min(), p.adversarial.min()) - np.median(p.clean)) for p in panels)
        hi = max(float(max(p.clean.max(), p.adversarial.max()) - np.median(p.clean)) for p in panels)
        self.gain = next((g for g in (40.0, 20.0, 10.0, 5.0) if (hi - lo) * g <= self.PANEL_MM[1] - 8), 2.5)
        self.lo = lo
        self.hi = hi
        self.gap = 14 * mm
        super().__init__(len(panels) * self.PANEL_MM[0] * mm + (len(panels) - 1) * self.gap,
                         (self.PANEL_MM[1] + 16) * mm)

    def paint(self, canv: Canvas) -> None:
        pw, ph = self.PANEL_MM
        y0 = 12 * mm
        # Baseline so that the beat is vertically centred, snapped to the 1 mm grid.
        base_mm = round((ph - (self.hi - self.lo) * self.gain) / 2 - self.lo * self.gain)
        for k, panel in enumerate(self.panels):
            x0 = k * (pw * mm + self.gap)
            ecg_grid(canv, x0, y0, pw, ph)
            t = np.arange(panel.clean.size) / self.fs
            xs = x0 + t * self.SPEED * mm
            offset = float(np.median(panel.clean))
            canv.saveState()
            clip = canv.beginPath()
            clip.rect(x0, y0, pw * mm, ph * mm)
            canv.clipPath(clip, stroke=0, fill=0)
            r_x = x0 + self.r_offset / self.fs * self.SPEED * mm
            st_x = r_x + 0.08 * self.SPEED * mm
            canv.setStrokeColor(AXIS)
            canv.setLineWidth(0.5)
            canv.setDash(1, 2)
            canv.line(st_x, y0, st_x, y0 + ph * mm)
            canv.setDash()
            for trace, color, width in ((panel.adversarial, ADVERSARIAL, 1.3), (panel.clean, CLEAN, 0.7)):
                canv.setStrokeColor(color)
                canv.setLineWidth(width)
                polyline(canv, xs, y0 + base_mm * mm + (trace - offset) * self.gain * mm)
            canv.restoreState()
            canv.setFont(FONT_BOLD, 9)
            canv.setFillColor(CLEAN)
            canv.drawString(x0 + 2 * mm, y0 + (ph - 5) * mm, panel.lead)
            canv.setFont(FONT, 6.5)
            canv.drawCentredString(st_x, y0 - 3 * mm, "R+80 ms")
            canv.drawCentredString(r_x, y0 + ph * mm + 1 * mm, "R")
            delta = (panel.adversarial - panel.clean) * 1000.0
            st_i = min(delta.size - 1, self.r_offset + int(round(0.08 * self.fs)))
            canv.setFont(FONT, 7.5)
            canv.drawString(x0, y0 - 8 * mm, f"lead {panel.lead}: Δ at R+80 ms {delta[st_i]:+.0f} µV; "
                                             f"max |Δ| in this beat {np.abs(delta).max():.0f} µV")


class PerturbationLeads(Figure):
    """The perturbation δ alone, one small trace per lead on a shared (enlarged) vertical scale.

    Dashed lines mark ±ε for the lead, so a reader sees at once how much of the budget is spent and where.
    Limb leads fill the left column and chest leads the right, as on the 12-lead sheet.
    """

    ROW_MM = 11
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
        half = (self.ROW_MM / 2 - 0.8)
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
            eps_text = f"ε {eps:.3g} mV" if eps is not None else "ε n/a"
            canv.drawString(x0, base - 2.6 * mm, f"{eps_text} · max |δ| {np.abs(self.delta[i]).max():.3g}")
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


@dataclass(frozen=True)
class Axes:
    """A plotting box in points with linear data ranges; maps data to page coordinates."""

    x0: float
    y0: float
    w: float
    h: float
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    def x(self, v: float) -> float:
        lo, hi = self.xlim
        return self.x0 + (v - lo) / (hi - lo) * self.w

    def y(self, v: float) -> float:
        lo, hi = self.ylim
        return self.y0 + (v - lo) / (hi - lo) * self.h

    def frame(self, canv: Canvas, xticks: Sequence[float], yticks: Sequence[float], xlabel: str, ylabel: str,
              yfmt: Callable[[float], str] = _fmt_tick, ycolor: colors.Color = AXIS, grid: bool = True) -> None:
        canv.saveState()
        canv.setLineWidth(0.3)
        canv.setStrokeColor(LIGHT)
        if grid:
            for v in xticks:
                canv.line(self.x(v), self.y0, self.x(v), self.y0 + self.h)
            for v in yticks:
                canv.line(self.x0, self.y(v), self.x0 + self.w, self.y(v))
        canv.setStrokeColor(AXIS)
        canv.setLineWidth(0.7)
        canv.rect(self.x0, self.y0, self.w, self.h, stroke=1, fill=0)
        canv.setFont(FONT, 7.5)
        canv.setFillColor(AXIS)
        for v in xticks:
            canv.line(self.x(v), self.y0, self.x(v), self.y0 - 1.2 * mm)
            canv.drawCentredString(self.x(v), self.y0 - 4.5 * mm, _fmt_tick(v))
        canv.setFillColor(ycolor)
        for v in yticks:
            canv.line(self.x0, self.y(v), self.x0 - 1.2 * mm, self.y(v))
            canv.drawRightString(self.x0 - 2 * mm, self.y(v) - 2.5, yfmt(v))
        canv.setFont(FONT, 8.5)
        canv.setFillColor(AXIS)
        canv.drawCentredString(self.x0 + self.w / 2, self.y0 - 10 * mm, xlabel)
        canv.setFillColor(ycolor)
        canv.translate(self.x0 - 15 * mm, self.y0 + self.h / 2)
        canv.rotate(90)
        canv.drawCentredString(0, 0, ylabel)
        canv.restoreState()


def right_axis(canv: Canvas, ax: Axes, ticks: Sequence[float], label: str, color: colors.Color,
               fmt: Callable[[float], str] = _fmt_tick) -> None:
    """A second y axis on the right edge of `ax` (ticks given in `ax.ylim` units)."""
    canv.saveState()
    canv.setStrokeColor(color)
    canv.setFillColor(color)
    canv.setLineWidth(0.7)
    xr = ax.x0 + ax.w
    canv.setFont(FONT, 7.5)
    for v in ticks:
        canv.line(xr, ax.y(v), xr + 1.2 * mm, ax.y(v))
        canv.drawString(xr + 2 * mm, ax.y(v) - 2.5, fmt(v))
    canv.setFont(FONT, 8.5)
    canv.translate(xr + 16 * mm, ax.y0 + ax.h / 2)
    canv.rotate(-90)
    canv.drawCentredString(0, 0, label)
    canv.restoreState()


def legend(canv: Canvas, x: float, y: float, items: Sequence[tuple[str, colors.Color, bool]]) -> None:
    """A one-line legend starting at (x, y) baseline: a line sample then the label, per item."""
    canv.saveState()
    canv.setFont(FONT, 7.5)
    for label, color, dashed in items:
        canv.setStrokeColor(color)
        canv.setLineWidth(1.2)
        if dashed:
            canv.setDash(3, 2)
        canv.line(x, y + 1 * mm, x + 8 * mm, y + 1 * mm)
        canv.setDash()
        canv.setFillColor(AXIS)
        canv.drawString(x + 10 * mm, y, label)
        x += 18 * mm + stringWidth(label, FONT, 7.5)
    canv.restoreState()


@dataclass(frozen=True)
class PsdCurve:
    name: str
    label: str
    freqs: np.ndarray
    psd: np.ndarray  # mV²/Hz, summed over leads
    cutoff_hz: float | None


def welch_psd(v: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD summed over leads, with the settings of `metrics.power_fraction_below` (4 s, no detrend)."""
    from scipy.signal import welch

    v = np.asarray(v, dtype=np.float64).reshape(-1, np.shape(v)[-1])
    nperseg = min(v.shape[-1], int(round(4 * fs)))
    freqs, psd = welch(v, fs=fs, nperseg=nperseg, detrend=False, axis=-1)
    return freqs, psd.sum(axis=0)


class PsdPlot(Figure):
    """Power spectral density of universal perturbations in dB, with each attack's low-pass cutoff."""

    def __init__(self, curves: list[PsdCurve], fmax: float, width: float = 215 * mm, height: float = 110 * mm) -> None:
        self.curves = curves
        self.fmax = fmax
        super().__init__(width, height)

    def paint(self, canv: Canvas) -> None:
        dbs = []
        for c in self.curves:
            keep = c.freqs <= self.fmax
            dbs.append(10 * np.log10(np.maximum(c.psd[keep], 1e-30)))
        top = max(float(d.max()) for d in dbs)
        bottom = max(min(float(d.min()) for d in dbs), top - 100.0)
        yt = nice_ticks(bottom, top + 3, 6)
        ylim = (min(yt[0], bottom), max(yt[-1], top + 3))
        ax = Axes(20 * mm, 14 * mm, self.width - 24 * mm, self.height - 24 * mm, (0.0, self.fmax), ylim)
        ax.frame(canv, nice_ticks(0, self.fmax, 10), yt, "frequency (Hz)", "PSD, sum over leads (dB re 1 mV²/Hz)")
        canv.saveState()
        clip = canv.beginPath()
        clip.rect(ax.x0, ax.y0, ax.w, ax.h)
        canv.clipPath(clip, stroke=0, fill=0)
        cutoffs: dict[float, list[str]] = {}
        for c in self.curves:
            if c.cutoff_hz is not None:
                cutoffs.setdefault(float(c.cutoff_hz), []).append(c.name)
        canv.setStrokeColor(AXIS)
        canv.setFillColor(AXIS)
        canv.setFont(FONT, 7)
        canv.setLineWidth(0.8)
        for k, (hz, names) in enumerate(sorted(cutoffs.items())):
            canv.setDash(4, 3)
            canv.line(ax.x(hz), ax.y0, ax.x(hz), ax.y0 + ax.h)
            canv.setDash()
            who = f" ({', '.join(names)})" if len(cutoffs) > 1 else ""
            canv.drawString(ax.x(hz) + 1 * mm, ax.y0 + ax.h - (4 + 4 * k) * mm, f"cutoff {hz:g} Hz{who}")
        items = []
        for k, (c, db) in enumerate(zip(self.curves, dbs, strict=True)):
            color = PALETTE[k % len(PALETTE)]
            keep = c.freqs <= self.fmax
            canv.setStrokeColor(color)
            canv.setLineWidth(1.0)
            polyline(canv, ax.x0 + c.freqs[keep] / self.fmax * ax.w,
                     np.array([ax.y(max(d, ylim[0])) for d in db]))
            items.append((c.label, color, False))
        canv.restoreState()
        legend(canv, ax.x0, ax.y0 + ax.h + 3 * mm, items)


class MisdiagnosisHeatmap(Figure):
    """Clean class (rows) → adversarial class (columns) counts of changed decisions, shaded by count."""

    def __init__(self, title: str, classes: Sequence[str], matrix: Sequence[Sequence[int]], caption: str,
                 width: float = 85 * mm) -> None:
        self.title = title
        self.classes = [str(c) for c in classes]
        self.matrix = np.asarray(matrix, dtype=np.float64).reshape(len(self.classes), len(self.classes))
        self.caption = caption
        k = max(1, len(self.classes))
        self.label_w = min(22 * mm, max(stringWidth(c, FONT, 7) for c in self.classes) + 3 * mm) if self.classes \
            else 10 * mm
        self.cell = max(2.5 * mm, min(11 * mm, (width - self.label_w - 6 * mm) / k))
        self.top_h = self.label_w
        self.grid = self.cell * k
        super().__init__(width, self.grid + self.top_h + 24 * mm)

    def paint(self, canv: Canvas) -> None:
        from reportlab.lib.utils import simpleSplit

        k = len(self.classes)
        x0 = self.label_w + 5 * mm
        y_top = self.height - 6 * mm - self.top_h
        canv.setFont(FONT_BOLD, 9)
        canv.setFillColor(CLEAN)
        canv.drawString(0, self.height - 4 * mm, self.title)
        peak = float(self.matrix.max()) if self.matrix.size else 0.0
        font_size = max(4.5, min(8.0, self.cell / mm * 0.8))
        for r in range(k):
            for c in range(k):
                value = self.matrix[r, c]
                share = value / peak if peak > 0 else 0.0
                fill = colors.Color(1 - 0.2 * share, 1 - 0.95 * share, 1 - 0.95 * share) if r != c \
                    else colors.Color(0.93, 0.93, 0.93)
                x, y = x0 + c * self.cell, y_top - (r + 1) * self.cell
                canv.setFillColor(fill)
                canv.setStrokeColor(colors.white)
                canv.setLineWidth(0.5)
                canv.rect(x, y, self.cell, self.cell, stroke=1, fill=1)
                if self.cell >= 4 * mm:
                    canv.setFillColor(colors.white if share > 0.6 else AXIS)
                    canv.setFont(FONT, font_size)
                    canv.drawCentredString(x + self.cell / 2, y + self.cell / 2 - font_size * 0.35, f"{value:.0f}")
        canv.setStrokeColor(AXIS)
        canv.setLineWidth(0.6)
        canv.rect(x0, y_top - self.grid, self.grid, self.grid, stroke=1, fill=0)
        label_size = max(4.5, min(7.0, self.cell / mm * 0.75))
        canv.setFillColor(CLEAN)
        canv.setFont(FONT, label_size)
        for r, name in enumerate(self.classes):
            canv.drawRightString(x0 - 1.2 * mm, y_top - (r + 0.5) * self.cell - label_size * 0.35, name)
        for c, name in enumerate(self.classes):
            canv.saveState()
            canv.translate(x0 + (c + 0.5) * self.cell + label_size * 0.35, y_top + 1.2 * mm)
            canv.rotate(90)
            canv.drawString(0, 0, name)
            canv.restoreState()
        canv.setFont(FONT, 7)
        canv.setFillColor(AXIS)
        canv.drawCentredString(x0 + self.grid / 2, y_top - self.grid - 4 * mm, "adversarial decision (columns)")
        canv.saveState()
        canv.translate(2.5 * mm, y_top - self.grid / 2)
        canv.rotate(90)
        canv.drawCentredString(0, 0, "clean decision (rows)")
        canv.restoreState()
        canv.setFont(FONT, 7.5)
        canv.setFillColor(CLEAN)
        for j, line in enumerate(simpleSplit(self.caption, FONT, 7.5, self.width)[:3]):
            canv.drawString(0, y_top - self.grid - (9 + 3.5 * j) * mm, line)


@dataclass(frozen=True)
class SweepPoint:
    eps_mv: float
    fooling: float | None
    ci: tuple[float, float] | None
    ssim: float | None


class SweepPlot(Figure):
    """Fooling rate (red, with 95 % CIs) and SSIM (blue, dashed) against the chest-lead budget ε."""

    def __init__(self, points: list[SweepPoint], width: float = 215 * mm, height: float = 95 * mm) -> None:
        self.points = sorted(points, key=lambda p: p.eps_mv)
        super().__init__(width, height)

    def paint(self, canv: Canvas) -> None:
        xs = [p.eps_mv for p in self.points]
        span = (max(xs) - min(xs)) or max(abs(xs[0]), 0.1)
        xlim = (max(0.0, min(xs) - 0.08 * span), max(xs) + 0.08 * span)
        ax = Axes(22 * mm, 14 * mm, self.width - 46 * mm, self.height - 24 * mm, xlim, (0.0, 1.0))
        ax.frame(canv, nice_ticks(*xlim, 8), [0, 0.2, 0.4, 0.6, 0.8, 1.0], "ε on V2–V6 (mV)",
                 "fooling rate (vendor runtime)", yfmt=lambda v: f"{v:.0%}", ycolor=RED)
        ssims = [p.ssim for p in self.points if p.ssim is not None]
        s_lo = min(ssims) if ssims else 0.0
        s_ticks = nice_ticks(min(s_lo, 0.99) - 0.005, 1.0, 5)
        s_lim = (s_ticks[0], max(s_ticks[-1], 1.0))

        def s_to_unit(s: float) -> float:
            return (s - s_lim[0]) / (s_lim[1] - s_lim[0])

        right_axis(canv, ax, [s_to_unit(s) for s in s_ticks], "SSIM (clean vs adversarial)", BLUE,
                   fmt=lambda u: f"{s_lim[0] + u * (s_lim[1] - s_lim[0]):.3g}")
        canv.saveState()
        canv.setStrokeColor(RED)
        canv.setFillColor(RED)
        canv.setLineWidth(1.1)
        pts = [(ax.x(p.eps_mv), ax.y(p.fooling)) for p in self.points if p.fooling is not None]
        if pts:
            polyline(canv, np.array([a for a, _ in pts]), np.array([b for _, b in pts]))
        canv.setLineWidth(0.8)
        for p in self.points:
            if p.ci is not None:
                x = ax.x(p.eps_mv)
                lo, hi = ax.y(p.ci[0]), ax.y(p.ci[1])
                canv.line(x, lo, x, hi)
                canv.line(x - 1.2 * mm, lo, x + 1.2 * mm, lo)
                canv.line(x - 1.2 * mm, hi, x + 1.2 * mm, hi)
        for x, y in pts:
            canv.circle(x, y, 1.1 * mm, stroke=0, fill=1)
        canv.setStrokeColor(BLUE)
        canv.setFillColor(BLUE)
        canv.setDash(4, 2)
        spts = [(ax.x(p.eps_mv), ax.y(s_to_unit(p.ssim))) for p in self.points if p.ssim is not None]
        if spts:
            polyline(canv, np.array([a for a, _ in spts]), np.array([b for _, b in spts]))
        canv.setDash()
        for x, y in spts:
            canv.rect(x - 0.9 * mm, y - 0.9 * mm, 1.8 * mm, 1.8 * mm, stroke=0, fill=1)
        canv.restoreState()
        legend(canv, ax.x0, ax.y0 + ax.h + 3 * mm,
               [("fooling rate with 95 % Wilson CI (left axis)", RED, False), ("SSIM (right axis)", BLUE, True)])
