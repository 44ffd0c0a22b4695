"""Text building blocks of the PDF report: safe lookups, number formats, styles, tables, headings, captions.

Every report field is optional, so lookups and formats never raise: a missing value prints as an em dash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import numpy as np
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Flowable, PageBreak, Paragraph, Table

from ecgaudit.render.pdf.draw import FONT, FONT_BOLD, RED

if TYPE_CHECKING:
    from ecgaudit.render.pdf.context import Context

def get(d: Any, *keys: str, default: Any = None) -> Any:
    """`d[k1][k2]…`, or `default` where any level is missing or not a dict (every report field is optional)."""
    for key in keys:
        if not isinstance(d, dict) or d.get(key) is None:
            return default
        d = d[key]
    return d


def fmt(value: Any, spec: str) -> str:
    """`value` formatted, or an em dash for None/NaN/non-numbers, so a missing field never raises."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value)
    try:
        if spec == "d":
            return f"{int(value):d}"
        number = float(value)
        return f"{number:{spec}}" if np.isfinite(number) else "—"
    except (TypeError, ValueError):
        return str(value)


def pct(value: Any, digits: int = 1) -> str:
    """A proportion as a percentage, or an em dash."""
    try:
        number = 100 * float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{number:.{digits}f} %" if np.isfinite(number) else "—"


def rate(entry: Any) -> str:
    """A Wilson-interval rate as '20.8 % [9.2, 40.5]' (bounds in %)."""
    if not isinstance(entry, dict) or entry.get("value") is None:
        return "—"
    text = pct(entry["value"])
    ci = entry.get("ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2 and None not in ci:
        text += f" [{pct(ci[0])[:-2]}, {pct(ci[1])[:-2]}]"
    return text


def attack_title(attack: dict[str, Any]) -> str:
    kind = "universal" if attack.get("universal") else "per-sample"
    return f"{attack.get('id', '?')} ({attack.get('attack', '?')}, {kind})"


def mono(value: Any) -> str:
    return f"<font face='Courier'>{escape(str(value))}</font>" if value else "—"


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12, spaceAfter=3)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5, textColor=colors.Color(.25, .25, .25)),
        "caption": ParagraphStyle("caption", parent=base, fontSize=8.5, leading=11, spaceBefore=2, spaceAfter=2),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8, leading=10, spaceAfter=0),
        "head": ParagraphStyle("head", parent=base, fontName=FONT_BOLD, fontSize=8, leading=10, spaceAfter=0),
        "title": ParagraphStyle("title", parent=base, fontName=FONT_BOLD, fontSize=26, leading=32, spaceAfter=4),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=13, leading=17),
        "h1": ParagraphStyle("h1", parent=base, fontName=FONT_BOLD, fontSize=15, leading=19, spaceBefore=8,
                             spaceAfter=5),
        "h2": ParagraphStyle("h2", parent=base, fontName=FONT_BOLD, fontSize=11, leading=14, spaceBefore=5,
                             spaceAfter=3),
        "verdict": ParagraphStyle("verdict", parent=base, fontName=FONT_BOLD, fontSize=40, leading=44,
                                  textColor=colors.white, alignment=TA_CENTER),
        "verdict_sub": ParagraphStyle("verdict_sub", parent=base, fontSize=9, leading=11, textColor=colors.white,
                                      alignment=TA_CENTER),
        "alarm": ParagraphStyle("alarm", parent=base, fontSize=9, leading=12, textColor=RED),
    }


STYLES = _styles()
_TABLE_STYLE: list[tuple[Any, ...]] = [
    ("GRID", (0, 0), (-1, -1), 0.4, colors.Color(0.75, 0.75, 0.75)),
    ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.92, 0.92, 0.92)),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
]


def table(rows: list[list[Any]], widths: list[float], *, extra: Sequence[tuple[Any, ...]] = (),
          bold_cols: tuple[int, ...] = (), raw_cols: tuple[int, ...] = ()) -> Table:
    """A grid table with a grey header row; text cells are escaped and wrapped, `raw_cols` are markup."""
    cells = []
    for r, row in enumerate(rows):
        out = []
        for c, cell in enumerate(row):
            if isinstance(cell, Flowable):
                out.append(cell)
                continue
            text = str(cell) if (r and c in raw_cols) else escape(str(cell))
            if r and c in bold_cols:
                text = f"<b>{text}</b>"
            out.append(Paragraph(text, STYLES["head" if r == 0 else "cell"]))
        cells.append(out)
    t = Table(cells, colWidths=widths, hAlign="LEFT", repeatRows=1)
    t.setStyle([*_TABLE_STYLE, *extra])
    return t


def kv_table(rows: list[tuple[str, Any]], widths: tuple[float, float]) -> Table:
    """Label/value rows (values are markup or flowables), no header."""
    cells = [[Paragraph(f"<b>{label}</b>", STYLES["cell"]),
              value if isinstance(value, Flowable) else Paragraph(str(value), STYLES["cell"])] for label, value in rows]
    t = Table(cells, colWidths=list(widths), hAlign="LEFT")
    t.setStyle([s for s in _TABLE_STYLE if s[0] != "BACKGROUND"]
               + [("BACKGROUND", (0, 0), (0, -1), colors.Color(0.95, 0.95, 0.95))])
    return t


class Bookmark(Flowable):
    """An outline (sidebar) entry pointing at the current page."""

    def __init__(self, title: str, level: int = 0) -> None:
        super().__init__()
        self.title = title
        self.level = level

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return 0, 0

    def draw(self) -> None:
        key = hashlib.sha1(f"{self.title}|{self.level}".encode()).hexdigest()
        self.canv.bookmarkPage(key)
        self.canv.addOutlineEntry(self.title, key, level=self.level, closed=True)


def section(title: str, *, new_page: bool = True) -> list[Flowable]:
    out: list[Flowable] = [PageBreak()] if new_page else []
    return out + [Bookmark(title), Paragraph(escape(title), STYLES["h1"])]


def caption(ctx: Context, title: str, text: str = "") -> Paragraph:
    number = ctx.next_figure()
    body = f"<b>Figure {number}. {escape(title)}.</b> {text}"
    return Paragraph(body, STYLES["caption"])
