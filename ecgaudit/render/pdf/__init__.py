"""The PDF renderer: `render_pdf(report, artifacts) -> bytes` (assembled in `document`).

Modules: `document` (the document, page header and footer, metadata), `front` (page 1), `sections` (the
bench-test report's sections in FDA's order), `attacks` (ECG pages), `results` (spectra, misdiagnosis, sweep,
transfer), `appendix` (reproducibility), built from `text` (styles, tables), `draw` (fonts, colours),
`ecg` (ECG paper figures) and `charts`. `deck` draws the reader-study deck from the same ECG paper.
"""

from ecgaudit.render.pdf.document import render_pdf

__all__ = ["render_pdf"]
