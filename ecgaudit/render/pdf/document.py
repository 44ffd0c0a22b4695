"""The PDF report: a human-readable rendering of `report.json` for regulatory reviewers and cardiologists.

The JSON (and its signature) stays the record; this PDF restates it as a non-clinical bench-test report in the
order of FDA's "Recommended Content and Format of Non-Clinical Bench Performance Testing Information": page 1
answers what a reviewer asks first (verdict, failed criteria, what was tested, intended use, data warnings,
deviations, document id and sign-off), then objectives, methods, pre-specified acceptance criteria, results
(each attack on true-scale ECG paper), deviations, discussion, limitations and a reproducibility appendix.
Every page carries the report's SHA-256 so a printed page can be traced to its JSON; the PDF metadata carries
it too. Every font is embedded. Built with `invariant=1` so the same input gives the same bytes.

This module assembles the document (page header and footer, metadata). The pages are built in `front`
(page 1), `methods` (objectives, methods, acceptance criteria), `findings` (result tables, indicators),
`attacks` (ECG pages), `results` (spectra, misdiagnosis, sweep, transfer), `closing` (deviations,
discussion, limitations) and `appendix` (reproducibility).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from functools import partial
from typing import Any

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfdoc import PDFDate, PDFDictionary, PDFInfo, PDFName, PDFString
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Flowable, Frame, PageTemplate

from ecgaudit.render.facts import document, get
from ecgaudit.render.interface import Artifacts
from ecgaudit.render.pdf.appendix import reproducibility_page
from ecgaudit.render.pdf.attacks import attack_pages
from ecgaudit.render.pdf.closing import closing_pages
from ecgaudit.render.pdf.context import Context
from ecgaudit.render.pdf.draw import FONT, FONT_BOLD, FONT_MONO, verdict_colour
from ecgaudit.render.pdf.findings import results_pages
from ecgaudit.render.pdf.front import front_page
from ecgaudit.render.pdf.methods import methods_pages
from ecgaudit.render.pdf.results import misdiagnosis_pages, psd_page, sweep_page, transfer_page

PAGE = landscape(A4)
MARGIN = 15 * mm


def render_pdf(report: Mapping[str, Any], artifacts: Artifacts) -> bytes:
    """The report as PDF bytes, with the samples and perturbations its caller loaded (`Artifacts`)."""
    ctx = Context(report, artifacts)
    story: list[Flowable] = []
    for pages in (front_page, methods_pages, results_pages, attack_pages, psd_page, misdiagnosis_pages,
                  sweep_page, transfer_page, closing_pages, reproducibility_page):
        story += pages(ctx)
    buffer = io.BytesIO()
    model = ctx.model_name
    doc = BaseDocTemplate(
        buffer, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=14 * mm, bottomMargin=14 * mm,
        invariant=1, pageCompression=1, title=f"ecgaudit robustness report: {model}",
        initialFontName=FONT,  # not reportlab's default Helvetica: a base-14 font, the one font left unembedded
        author=f"ecgaudit {ctx.tool_version}",
        subject=f"Adversarial-robustness audit of {model} (profile {get(report, 'profile', 'name', default='?')}); "
                f"gate verdict {ctx.verdict}; report.json SHA-256 {ctx.report_sha256}",
        keywords=f"ecgaudit, ECG, adversarial robustness, report_sha256={ctx.report_sha256}",
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
        doc = document(ctx.report)
        ident = f" · document {doc['id']} rev. {doc['revision']}" if doc["id"] != "not stated" else ""
        self.drawString(MARGIN, height - 9.5 * mm, f"ecgaudit robustness report · model {ctx.model_name}{ident}")
        self.setFont(FONT_BOLD, 8)
        self.setFillColor(verdict_colour(ctx.verdict))
        self.drawRightString(width - MARGIN, height - 9.5 * mm, f"verdict {ctx.verdict}")
        self.setFont(FONT, 7.5)
        self.setFillColor(colors.Color(0.3, 0.3, 0.3))
        self.drawString(MARGIN, 6.5 * mm, "report.json SHA-256")
        self.setFont(FONT_MONO, 6.5)
        self.drawString(MARGIN + 30 * mm, 6.5 * mm, ctx.report_sha256)
        self.setFont(FONT, 7.5)
        self.drawRightString(width - MARGIN - 25 * mm, 6.5 * mm,
                             f"ecgaudit {ctx.tool_version} · a rendering of report.json, which is the record")
        self.drawRightString(width - MARGIN, 6.5 * mm, f"page {self._pageNumber} of {total}")
        self.restoreState()
