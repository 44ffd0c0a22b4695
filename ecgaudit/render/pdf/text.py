"""Text building blocks of the PDF report: safe lookups, number formats, styles, tables, headings, captions.

Every report field is optional, so lookups and formats never raise: a missing value prints as an em dash.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import numpy as np
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Flowable, PageBreak, Paragraph, Table

from ecgaudit.render.facts import get
from ecgaudit.render.pdf.draw import AMBER, FONT, FONT_BOLD, FONT_MONO, RED

if TYPE_CHECKING:
    from ecgaudit.render.pdf.context import Context

__all__ = ["TABLE_FONT", "STYLES", "Bookmark", "bullets", "caption", "fmt", "get", "id_width",
           "kv_table", "mono", "pct", "rate", "section", "table"]



def fmt(value: Any, spec: str) -> str:
    """`value` formatted, or an em dash for None/NaN/non-numbers, so a missing field never raises."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value)
    try:
        if spec == "d":
            return f"{int(value):d}"
        number = float(value)
        if not np.isfinite(number):
            return "—"
        text = f"{number:{spec}}"
        return text[1:] if re.fullmatch(r"[+-]0(\.0*)?", text) else text  # "0", not "-0" or "+0"
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


def mono(value: Any) -> str:
    return f"<font face='{FONT_MONO}'>{escape(str(value))}</font>" if value else "—"


def _styles() -> dict[str, ParagraphStyle]:
    # autoLeading "max": a line with a sub- or superscript grows instead of touching its neighbours. (Not
    # reportlab's embeddedHyphenation: in reportlab 4 it drops hyphens and splits words mid-way; id columns are
    # sized to their widest id instead, see `id_width`.)
    base = ParagraphStyle("body", fontName=FONT, fontSize=8.5, leading=11.5, spaceAfter=3, autoLeading="max",
                          bulletFontName=FONT)
    return {
        "body": base,
        "lead_in": ParagraphStyle("lead_in", parent=base, keepWithNext=1),
        "small": ParagraphStyle("small", parent=base, fontSize=7, leading=9, textColor=colors.Color(.25, .25, .25)),
        "caption": ParagraphStyle("caption", parent=base, fontSize=8, leading=10.5, spaceBefore=2, spaceAfter=2),
        "cell": ParagraphStyle("cell", parent=base, fontSize=7.5, leading=9.5, spaceAfter=0),
        "head": ParagraphStyle("head", parent=base, fontName=FONT_BOLD, fontSize=7.5, leading=9.5, spaceAfter=0),
        "title": ParagraphStyle("title", parent=base, fontName=FONT_BOLD, fontSize=18, leading=22, spaceAfter=1),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=9.5, leading=12, spaceAfter=2),
        "h1": ParagraphStyle("h1", parent=base, fontName=FONT_BOLD, fontSize=14, leading=18, spaceBefore=6,
                             spaceAfter=4, keepWithNext=1),
        "h2": ParagraphStyle("h2", parent=base, fontName=FONT_BOLD, fontSize=10.5, leading=13.5, spaceBefore=6,
                             spaceAfter=3, keepWithNext=1),
        "h3": ParagraphStyle("h3", parent=base, fontName=FONT_BOLD, fontSize=9, leading=11.5, spaceBefore=4,
                             spaceAfter=2, keepWithNext=1),
        "verdict": ParagraphStyle("verdict", parent=base, fontName=FONT_BOLD, fontSize=30, leading=34,
                                  textColor=colors.white, alignment=TA_CENTER),
        "verdict_sub": ParagraphStyle("verdict_sub", parent=base, fontSize=8.5, leading=10.5, textColor=colors.white,
                                      alignment=TA_CENTER),
        "alarm": ParagraphStyle("alarm", parent=base, textColor=RED, fontName=FONT_BOLD),
        "caution": ParagraphStyle("caution", parent=base, textColor=AMBER, fontName=FONT_BOLD),
        "bullet": ParagraphStyle("bullet", parent=base, leftIndent=9, bulletIndent=1, spaceAfter=1.5),
    }


STYLES = _styles()
TABLE_FONT: tuple[Any, ...] = ("FONTNAME", (0, 0), (-1, -1), FONT)
"""Every table needs it, even one of flowables: a table sets reportlab's default Helvetica (unembedded) otherwise."""
_TABLE_STYLE: list[tuple[Any, ...]] = [
    TABLE_FONT,
    ("GRID", (0, 0), (-1, -1), 0.4, colors.Color(0.75, 0.75, 0.75)),
    ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.92, 0.92, 0.92)),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
]


def table(rows: list[list[Any]], widths: list[float], *, extra: Sequence[tuple[Any, ...]] = (),
          bold_cols: tuple[int, ...] = (), raw_cols: tuple[int, ...] = (), bold_rows: tuple[int, ...] = ()) -> Table:
    """A grid table with a grey header row, repeated on every page it spans; text cells are escaped and wrapped,
    `raw_cols` are markup; `bold_rows` are indices into `rows`."""
    cells = []
    for r, row in enumerate(rows):
        out = []
        for c, cell in enumerate(row):
            if isinstance(cell, Flowable):
                out.append(cell)
                continue
            text = str(cell) if (r and c in raw_cols) else escape(str(cell))
            if r and (c in bold_cols or r in bold_rows):
                text = f"<b>{text}</b>"
            out.append(Paragraph(text, STYLES["head" if r == 0 else "cell"]))
        cells.append(out)
    t = Table(cells, colWidths=widths, hAlign="LEFT", repeatRows=1)
    t.setStyle([*_TABLE_STYLE, *extra])
    return t


def id_width(ids: Sequence[Any], minimum_mm: float, maximum_mm: float = 80.0) -> float:
    """A column width (points) that fits the widest id on one line, so no id is ever broken mid-word."""
    from reportlab.lib.units import mm
    from reportlab.pdfbase.pdfmetrics import stringWidth

    style = STYLES["cell"]
    widest = max([stringWidth(str(i), style.fontName, style.fontSize) for i in ids] + [0.0])
    return min(maximum_mm * mm, max(minimum_mm * mm, widest + 8))


def kv_table(rows: list[tuple[str, Any]], widths: tuple[float, float],
             header: tuple[str, str] | None = None) -> Table:
    """Label/value rows (values are markup or flowables); with `header`, a header row repeated on every page."""
    cells = [[Paragraph(f"<b>{label}</b>", STYLES["cell"]),
              value if isinstance(value, Flowable) else Paragraph(str(value), STYLES["cell"])] for label, value in rows]
    if header is not None:
        cells.insert(0, [Paragraph(escape(h), STYLES["head"]) for h in header])
    t = Table(cells, colWidths=list(widths), hAlign="LEFT", repeatRows=1 if header else 0)
    t.setStyle([s for s in _TABLE_STYLE if s[0] != "BACKGROUND"]
               + [("BACKGROUND", (0, 1 if header else 0), (0, -1), colors.Color(0.95, 0.95, 0.95))]
               + ([("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.92, 0.92, 0.92))] if header else []))
    return t


def bullets(items: Sequence[str], style: str = "bullet") -> list[Flowable]:
    """Markup items as a bulleted list."""
    return [Paragraph(item, STYLES[style], bulletText="•") for item in items]


class Bookmark(Flowable):
    """An outline (sidebar) entry pointing at the current page."""

    def __init__(self, title: str, level: int = 0) -> None:
        super().__init__()
        self.title = title
        self.level = level
        self.keepWithNext = 1  # on the page of the heading it precedes

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return 0, 0

    def draw(self) -> None:
        key = hashlib.sha1(f"{self.title}|{self.level}".encode()).hexdigest()
        self.canv.bookmarkPage(key)
        self.canv.addOutlineEntry(self.title, key, level=self.level, closed=True)


def section(title: str, *, new_page: bool = True, level: int = 0) -> list[Flowable]:
    """A heading with its outline entry; `level` 0 is a chapter (h1), 1 a subsection (h2)."""
    out: list[Flowable] = [PageBreak()] if new_page else []
    return out + [Bookmark(title, level), Paragraph(escape(title), STYLES["h1" if level == 0 else "h2"])]


def caption(ctx: Context, title: str, text: str = "") -> Paragraph:
    number = ctx.next_figure()
    body = f"<b>Figure {number}. {escape(title)}.</b> {text}"
    return Paragraph(body, STYLES["caption"])
