"""The OH report as CSV and as PDF (ReportLab). Suppressed cells are written as "suppressed", never as a value.

The PDF draws the same trend charts as the page from the same geometry (oversight/charts.py), as ReportLab vector
drawings: no browser, no image files, nothing fetched.
"""

from __future__ import annotations

import csv
import io
from typing import Any
from xml.sax.saxutils import escape

from django.utils.translation import gettext

from oversight import charts, reports
from oversight.reports import METRICS, Report, ReportTable


def _csv_rows(table: ReportTable, label: str) -> list[list[str]]:
    rows = []
    for row in table.rows:
        cells = [("suppressed" if c.hidden else ("" if c.value is None else f"{c.value:.{c.metric.decimals}f}"))
                 for c in row.cells]
        rows.append([label, row.label, *cells])
    return rows


def report_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([gettext("# Veil exposure report: %(name)s, %(label)s") % {
        "name": report.department.name, "label": report.period.label}])
    writer.writerow([gettext("# Figures over fewer than %(k)s people are suppressed, and so are figures that would "
                             "let a suppressed one be worked out.") % {"k": report.k}])
    writer.writerow(["period", "team", *[m.label for m in METRICS]])
    writer.writerows(_csv_rows(report.table, f"{report.period.start}..{report.period.end}"))
    for week in report.period.trend_weeks:
        writer.writerows(_csv_rows(report.weekly[week], gettext("week of %(week)s") % {"week": week}))
    return out.getvalue()


def _drawing(chart: charts.Chart) -> Any:
    """The chart as a ReportLab drawing (its y axis grows upwards, so every y is flipped)."""
    from reportlab.graphics.shapes import Circle, Drawing, PolyLine, Rect, String
    from reportlab.lib import colors

    drawing = Drawing(chart.width, chart.height)
    flip = chart.height
    for shape in chart.shapes:
        if isinstance(shape, charts.Rect):
            rect = Rect(shape.x, flip - shape.y - shape.h, shape.w, shape.h, fillColor=colors.HexColor(shape.fill),
                        strokeColor=colors.HexColor("#857f73") if shape.dashed else None,
                        strokeWidth=0.8 if shape.dashed else 0)
            if shape.dashed:
                rect.strokeDashArray = [3, 2]
            drawing.add(rect)
        elif isinstance(shape, charts.Polyline):
            points = [v for x, y in shape.points for v in (x, flip - y)]
            drawing.add(PolyLine(points, strokeColor=colors.HexColor(shape.stroke),
                                 strokeWidth=0.6 if "grid" in shape.css else 1.8))
        elif isinstance(shape, charts.Dot):
            drawing.add(Circle(shape.x, flip - shape.y, 3, fillColor=colors.HexColor(shape.fill), strokeColor=None))
        else:
            drawing.add(String(shape.x, flip - shape.y, str(shape.text), fontName="Helvetica", fontSize=shape.size - 1,
                               textAnchor=shape.anchor, fillColor=colors.HexColor("#52585e")))
    return drawing


def _scaled(drawing: Any, width: float) -> Any:
    factor = width / drawing.width
    drawing.scale(factor, factor)
    drawing.width, drawing.height = drawing.width * factor, drawing.height * factor
    return drawing


def report_pdf(report: Report, *, viewer: str) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    buffer = io.BytesIO()
    page = landscape(A4)
    doc = SimpleDocTemplate(buffer, pagesize=page, leftMargin=14 * mm, rightMargin=14 * mm, topMargin=12 * mm,
                            bottomMargin=12 * mm, title=gettext("Veil exposure report: %(name)s") % {
                                "name": report.department.name},
                            author="Veil", subject=report.period.label)
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    story: list[Any] = [
        Paragraph(gettext("Exposure report: %(name)s") % {"name": report.department.name}, styles["Title"]),
        Paragraph(report.period.label, styles["Heading3"]),
        Paragraph(gettext("Figures over fewer than %(k)s people are suppressed (shown as a dash), and so are figures "
                          "that would let a suppressed one be worked out from a total. Exposure is in units: one unit "
                          "is a minute of severe content on screen, milder items count less. Prepared for %(viewer)s; "
                          "confidential.") % {"k": report.k, "viewer": viewer},
                  small),
        Spacer(1, 4 * mm),
    ]
    # The charts first (they are what a reader looks at), side by side: the same ones as the page, in its order.
    names = list(report.charts)
    width = (page[0] - 28 * mm - 3 * mm * len(names)) / len(names)
    heading = styles["Heading4"]
    story.append(Table([[Paragraph(report.charts[name].title, heading) for name in names],
                        [_scaled(_drawing(report.charts[name]), width) for name in names]],
                       colWidths=[width + 3 * mm] * len(names), style=[("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story.append(Spacer(1, 4 * mm))
    # The period's table, transposed (metrics as rows) so it fits across the page.
    header = ["", *[row.label for row in report.table.rows]]
    body = [[Paragraph(metric.label, small), *[row.cells[n].text for row in report.table.rows]]
            for n, metric in enumerate(METRICS)]
    table = Table([header, *body], repeatRows=1,
                  colWidths=[80 * mm] + [(page[0] - 28 * mm - 80 * mm) / len(report.table.rows)] * len(header[1:]))
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
        ("FONT", (1, 1), (-1, -1), "Helvetica", 8),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.HexColor("#857f73")),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f0eb")]),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]))
    story.append(table)
    notes = reports.hidden_figures(report.table)
    if notes:  # the same footnote as the page: each hidden figure with its own reason
        story.append(Spacer(1, 3 * mm))
        for label, reasons in notes:
            text = "; ".join(gettext("%(figures)s hidden because %(why)s") % {
                "figures": ", ".join(map(str, figures)), "why": why} for why, figures in reasons)
            story.append(Paragraph(f"<b>{escape(label)}</b>: {escape(text)}.", small))
    doc.build(story)
    return buffer.getvalue()
