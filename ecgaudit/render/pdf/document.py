"""The PDF report: a human-readable rendering of `report.json` for regulatory reviewers and cardiologists.

The JSON (and its signature) stays the record; this PDF restates it with the figures a reader needs to
judge it: the verdict and every digest on the cover, the gate, each attack drawn on true-scale ECG paper,
the perturbations' spectra, where the misdiagnoses land, the amplitude sweep, transfer, methods and a
reproducibility appendix. Every page carries the report's SHA-256 so a printed page can be traced to its
JSON; the PDF metadata carries it too. Built with `invariant=1` so the same input gives the same bytes.

This module assembles the document (page header and footer, metadata). The pages are built in
`summary` (cover, summary, gate), `attacks` (ECG pages), `results` (spectra, misdiagnosis,
sweep, transfer) and `appendix` (methods, reproducibility), from the text helpers of `text` and
the figures of `ecg` and `charts`.
"""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path
from typing import Any

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfdoc import PDFDate, PDFDictionary, PDFInfo, PDFName, PDFString
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Flowable, Frame, PageTemplate

from ecgaudit.render.pdf.appendix import methods_page, reproducibility_page
from ecgaudit.render.pdf.attacks import attack_pages
from ecgaudit.render.pdf.context import Context
from ecgaudit.render.pdf.draw import FONT, FONT_BOLD, GREEN, RED
from ecgaudit.render.pdf.results import misdiagnosis_pages, psd_page, sweep_page, transfer_page
from ecgaudit.render.pdf.summary import cover, summary
from ecgaudit.render.pdf.text import get

PAGE = landscape(A4)
MARGIN = 15 * mm


def render_pdf(report: dict[str, Any], report_dir: Path, *, report_sha256: str, key_fingerprint: str | None) -> bytes:
    """Render the scan report in `report_dir` (its `samples.npz` and `perturbations/`) as PDF bytes."""
    ctx = Context(report, Path(report_dir), report_sha256, key_fingerprint)
    story: list[Flowable] = []
    for section in (cover, summary, attack_pages, psd_page, misdiagnosis_pages, sweep_page, transfer_page,
                    methods_page, reproducibility_page):
        story += section(ctx)
    buffer = io.BytesIO()
    model = ctx.model_name
    doc = BaseDocTemplate(
        buffer, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=14 * mm, bottomMargin=14 * mm,
        invariant=1, pageCompression=1, title=f"ecgaudit robustness report: {model}",
        author=f"ecgaudit {ctx.tool_version}",
        subject=f"Adversarial-robustness audit of {model} (profile {get(report, 'profile', 'name', default='?')}); "
                f"gate verdict {ctx.verdict}; report.json SHA-256 {report_sha256}",
        keywords=f"ecgaudit, ECG, adversarial robustness, report_sha256={report_sha256}",
        creator=f"ecgaudit {ctx.tool_version}",
    )
    frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body", leftPadding=0,
                  rightPadding=0, topPadding=0, bottomPadding=0)
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame])])
    # ASCII85 around the zlib streams only makes the file 25 % larger and, in pure Python, doubles the time.
    a85 = rl_config.useA85
    rl_config.useA85 = 0
    try:
        doc.build(story, canvasmaker=partial(_ReportCanvas, ctx=ctx))
    finally:
        rl_config.useA85 = a85
    return buffer.getvalue()


class _Info(PDFInfo):
    """PDF /Info with extra custom keys (reportlab has no API for them), e.g. `ecgaudit:report_sha256`."""

    def __init__(self, base: PDFInfo, extra: dict[str, str]) -> None:
        super().__init__()
        self.__dict__.update(base.__dict__)
        self.extra = extra

    def format(self, document: Any) -> bytes:
        entries: dict[str, Any] = {
            "Title": PDFString(self.title), "Author": PDFString(self.author),
            "Producer": PDFString(self.producer), "Creator": PDFString(self.creator),
            "Subject": PDFString(self.subject), "Keywords": PDFString(self.keywords),
            "Trapped": PDFName(self.trapped),
        }
        entries["ModDate"] = entries["CreationDate"] = PDFDate(ts=document._timeStamp,
                                                               dateFormatter=self._dateFormatter)
        entries.update({key: PDFString(value) for key, value in self.extra.items()})
        return PDFDictionary(entries).format(document)


class _ReportCanvas(Canvas):
    """Draws the header and footer (with "page i of n") once all pages are known."""

    def __init__(self, *args: Any, ctx: Context, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ctx = ctx
        self._page_states: list[dict[str, Any]] = []
        try:
            self._doc.info = _Info(self._doc.info, {"ecgaudit:report_sha256": ctx.report_sha256})
        except AttributeError:  # pragma: no cover - reportlab internals moved; the keywords still hold it
            pass

    def showPage(self) -> None:  # noqa: N802 - reportlab's name
        self._page_states.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._page_states)
        for state in self._page_states:
            self.__dict__.update(state)
            self._chrome(total)
            Canvas.showPage(self)
        Canvas.save(self)

    def _chrome(self, total: int) -> None:
        ctx = self._ctx
        width, height = PAGE
        self.saveState()
        self.setStrokeColor(colors.Color(0.7, 0.7, 0.7))
        self.setLineWidth(0.5)
        self.line(MARGIN, height - 11 * mm, width - MARGIN, height - 11 * mm)
        self.line(MARGIN, 10 * mm, width - MARGIN, 10 * mm)
        self.setFont(FONT, 8)
        self.setFillColor(colors.Color(0.3, 0.3, 0.3))
        self.drawString(MARGIN, height - 9.5 * mm, f"ecgaudit robustness report · model {ctx.model_name}")
        self.setFont(FONT_BOLD, 8)
        self.setFillColor(GREEN if ctx.verdict == "PASS" else RED)
        self.drawRightString(width - MARGIN, height - 9.5 * mm, f"gate verdict {ctx.verdict}")
        self.setFont(FONT, 7.5)
        self.setFillColor(colors.Color(0.3, 0.3, 0.3))
        self.drawString(MARGIN, 6.5 * mm, f"report.json SHA-256 {ctx.report_sha256[:16]}…")
        self.drawCentredString(width / 2, 6.5 * mm, f"ecgaudit {ctx.tool_version} · a rendering of report.json, "
                                                    "which is the record")
        self.drawRightString(width - MARGIN, 6.5 * mm, f"page {self._pageNumber} of {total}")
        self.restoreState()
