"""Charts for the PDF report: the perturbations' power spectra, the misdiagnosis heatmaps and the amplitude
sweep, with the small axis/legend kit they share.
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

from ecgaudit.render.pdf.draw import AXIS, BLUE, CLEAN, FONT, FONT_BOLD, LIGHT, PALETTE, RED, Figure, polyline


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
              yfmt: Callable[[float], str] = _fmt_tick, ycolor: colors.Color = AXIS) -> None:
        canv.saveState()
        canv.setLineWidth(0.3)
        canv.setStrokeColor(LIGHT)
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


def ssim_ticks(ssims: Sequence[float]) -> list[float]:
    """Ticks of the sweep's SSIM axis, from a round value at or below the lowest SSIM up to 1, so that every point
    lies inside the frame (round ticks alone started above a low SSIM and drew it below the plot)."""
    low = min([*ssims, 0.99])
    ticks = nice_ticks(low - 0.005, 1.0, 5)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 0.01
    while ticks[0] > low:
        ticks.insert(0, round(ticks[0] - step, 12))
    return ticks


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
        s_ticks = ssim_ticks([p.ssim for p in self.points if p.ssim is not None])
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
