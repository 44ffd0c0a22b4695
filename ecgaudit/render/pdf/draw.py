"""Drawing primitives of the PDF report: fonts and colours (shared with the text pages), the fast polyline
and the fixed-size `Figure` flowable that the figures of `ecg` and `charts` build on.

Figures are vector drawings with reportlab canvas paths (no raster, no matplotlib). Each is a platypus
`Flowable` of fixed size in real millimetres, so that an ECG printed at 100 % keeps its true paper speed
(25 mm/s) and gain (10 mm/mV), the way a cardiologist reads one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from reportlab.lib import colors
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable

FONT = "EcgauditSans"
FONT_BOLD = "EcgauditSans-Bold"
FONT_ITALIC = "EcgauditSans-Oblique"
FONT_BOLD_ITALIC = "EcgauditSans-BoldOblique"
FONT_MONO = "EcgauditMono"
FONT_MONO_BOLD = "EcgauditMono-Bold"
_FONT_FILES = {
    FONT: "DejaVuSans.ttf", FONT_BOLD: "DejaVuSans-Bold.ttf", FONT_ITALIC: "DejaVuSans-Oblique.ttf",
    FONT_BOLD_ITALIC: "DejaVuSans-BoldOblique.ttf", FONT_MONO: "DejaVuSansMono.ttf",
    FONT_MONO_BOLD: "DejaVuSansMono-Bold.ttf",
}
GRID_MINOR = colors.Color(0.98, 0.80, 0.80)
GRID_MAJOR = colors.Color(0.93, 0.52, 0.52)
CLEAN = colors.black
ADVERSARIAL = colors.Color(0.90, 0.0, 0.0, alpha=0.7)
PERTURBATION = colors.Color(0.55, 0.0, 0.45)
AXIS = colors.Color(0.25, 0.25, 0.25)
LIGHT = colors.Color(0.85, 0.85, 0.85)
RED = colors.Color(0.80, 0.08, 0.08)
GREEN = colors.Color(0.10, 0.55, 0.20)
AMBER = colors.Color(0.85, 0.52, 0.0)
BLUE = colors.Color(0.10, 0.30, 0.75)
VERDICT_COLOURS = {"PASS": GREEN, "FAIL": RED, "INCONCLUSIVE": AMBER}


def verdict_colour(verdict: str) -> colors.Color:
    """PASS green, FAIL red, INCONCLUSIVE (and anything unknown) amber: only PASS may look reassuring."""
    return VERDICT_COLOURS.get(verdict, AMBER)


PALETTE = (colors.Color(0.80, 0.08, 0.08), colors.Color(0.10, 0.30, 0.75), colors.Color(0.10, 0.55, 0.20),
           colors.Color(0.55, 0.20, 0.65), colors.Color(0.90, 0.50, 0.00), colors.Color(0.35, 0.35, 0.35))


def font_folder() -> Path:
    """Where the DejaVu TrueType fonts are: matplotlib's `mpl-data/fonts/ttf` (found without importing it).

    Every font in the PDF is embedded (a viewer must not substitute glyphs in a submission), so the PDF needs
    TrueType files. reportlab's own Bitstream Vera lacks the Greek letters (ε, δ, Δ, Φ, Π), the arrows and a
    monospaced face; DejaVu is Vera extended with them, under the same licence, and ships with matplotlib.
    """
    spec = importlib.util.find_spec("matplotlib")
    folder = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" if spec and spec.origin else None
    if folder is None or not all((folder / name).is_file() for name in _FONT_FILES.values()):
        raise RuntimeError("the PDF's fonts (DejaVu, shipped with matplotlib) were not found; reinstall ecgaudit's "
                           "dependencies (pip install --force-reinstall matplotlib).")
    return folder


def _register_fonts() -> None:
    """Register the embedded fonts once, with bold/italic families so paragraph markup (<b>, <i>) finds them."""
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    folder = font_folder()
    for name, file in _FONT_FILES.items():
        pdfmetrics.registerFont(TTFont(name, str(folder / file)))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT_ITALIC, boldItalic=FONT_BOLD_ITALIC)
    pdfmetrics.registerFontFamily(FONT_MONO, normal=FONT_MONO, bold=FONT_MONO_BOLD, italic=FONT_MONO,
                                  boldItalic=FONT_MONO_BOLD)


_register_fonts()


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
