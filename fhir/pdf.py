"""The report as an A4 PDF: what a clinic prints and files, attached to the DiagnosticReport.

Chinese is set in Adobe's STSong-Light CID font, which PDF readers supply, so
no font file ships with the hub. ``invariant=1`` fixes the document id and
dates, so the same report always renders to the same bytes and a re-sent
attachment is recognisably unchanged.
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.lib.colors import black
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    HRFlowable,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from fhir.report import (
    REPORT_TITLE,
    exam_name,
    report_header,
    report_signatures,
)
from models.catalogue import ExamType
from models.imaging import Study
from models.patients import Patient
from models.region import Facility, User
from models.reporting import Report

FONT = "STSong-Light"
MARGIN = 18 * mm


def cjk_font() -> str:
    """Reportlab's built-in Chinese CID font, registered once: viewers supply the glyphs."""
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=font, fontSize=10.5, leading=16, wordWrap="CJK")
    return {
        "centre": ParagraphStyle(
            "centre", parent=base, fontSize=13, leading=18, alignment=TA_CENTER
        ),
        "title": ParagraphStyle(
            "title", parent=base, fontSize=18, leading=26, alignment=TA_CENTER, spaceAfter=4
        ),
        "heading": ParagraphStyle(
            "heading", parent=base, fontSize=12, leading=18, spaceBefore=8, spaceAfter=2
        ),
        "body": base,
        "cell": ParagraphStyle("cell", parent=base, fontSize=10, leading=14),
    }


def _markup(text: str) -> str:
    """Plain text as Paragraph markup: escaped, line breaks kept."""
    lines = text.strip().splitlines() or ["无"]
    return "<br/>".join(escape(line) for line in lines)


def _field_table(fields: list[tuple[str, str]], style: ParagraphStyle, width: float) -> Table:
    """Label/value pairs two to a row, the way report headers are laid out."""
    cells = [Paragraph(f"{escape(label)}：{escape(value)}", style) for label, value in fields]
    if len(cells) % 2:
        cells.append(Paragraph("", style))
    rows = [cells[index : index + 2] for index in range(0, len(cells), 2)]
    table = Table(rows, colWidths=[width / 2, width / 2])
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def report_pdf(
    report: Report,
    *,
    study: Study,
    patient: Patient,
    exam: ExamType | None,
    author: User,
    auditor: User | None,
    facility: Facility,
    reading_centre: Facility,
) -> bytes:
    """The report on A4: header, patient and exam, findings, impression, signatures.

    Long findings wrap (CJK line breaking) and continue on the next page; every
    page carries the reading centre and its page number. Times are Asia/Shanghai.
    """
    font = cjk_font()
    styles = _styles(font)
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 6 * mm,
        title=f"{REPORT_TITLE}：{exam_name(exam, study)}",
        author=reading_centre.name,
        subject=study.study_instance_uid,
        creator="Huren",
        invariant=1,
    )
    width = A4[0] - 2 * MARGIN
    header = report_header(
        report,
        study=study,
        exam=exam,
        facility=facility,
        reading_centre=reading_centre,
        patient=patient,
    )
    story: list[Flowable] = [
        Paragraph(escape(reading_centre.name), styles["centre"]),
        Paragraph(REPORT_TITLE, styles["title"]),
        HRFlowable(width="100%", thickness=1, color=black, spaceAfter=6),
        _field_table(header, styles["cell"], width),
        HRFlowable(width="100%", thickness=0.5, color=black, spaceBefore=4, spaceAfter=4),
        Paragraph("检查所见", styles["heading"]),
        Paragraph(_markup(report.findings), styles["body"]),
        Paragraph("诊断意见", styles["heading"]),
        Paragraph(_markup(report.impression), styles["body"]),
        Spacer(1, 8 * mm),
        HRFlowable(width="100%", thickness=0.5, color=black, spaceAfter=4),
        _field_table(
            report_signatures(report, author=author, auditor=auditor), styles["cell"], width
        ),
    ]

    def footer(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.drawString(MARGIN, MARGIN, f"{reading_centre.name}  {REPORT_TITLE}")
        canvas.drawRightString(A4[0] - MARGIN, MARGIN, f"第 {doc.page} 页")
        canvas.restoreState()

    def continued(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        """A loose second page still says whose report it is."""
        footer(canvas, doc)
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.drawString(MARGIN, A4[1] - MARGIN + 4 * mm, running_head)
        canvas.restoreState()

    running_head = "  ".join(
        part
        for part in (patient.name, exam_name(exam, study), study.accession_number or "", "（续）")
        if part
    )
    document.build(story, onFirstPage=footer, onLaterPages=continued)
    return buffer.getvalue()
