"""Trend charts for the OH report, drawn by the server: pure geometry first (shapes in a box, y growing downwards),
then rendered as inline SVG for the page (no script, no CDN; colours from CSS classes so dark mode works) or as a
ReportLab drawing for the PDF (oversight/report_export.py), so both show the same picture.

A suppressed point is never drawn as a value: a hollow dashed outline marks the week, and the label says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from django.utils import formats
from django.utils.functional import Promise
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, gettext_lazy

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 34, 46


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    css: str
    fill: str
    title: str = ""
    dashed: bool = False


@dataclass(frozen=True)
class Polyline:
    points: tuple[tuple[float, float], ...]
    css: str
    stroke: str


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    css: str
    fill: str
    title: str = ""


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"  # start | middle | end
    css: str = "chart__label"
    size: float = 11


@dataclass(frozen=True)
class Chart:
    title: str
    description: str
    width: int = WIDTH
    height: int = HEIGHT
    shapes: list[Rect | Polyline | Dot | Text] = field(default_factory=list)


@dataclass(frozen=True)
class Series:
    name: str | Promise
    css: str
    fill: str  # for the PDF; the page takes colours from the CSS class


SEVERITY_SERIES = (
    Series(gettext_lazy("None"), "sev-0", "#c9d6d3"),
    Series(gettext_lazy("Low"), "sev-1", "#93bdb6"),
    Series(gettext_lazy("Medium"), "sev-2", "#4f8f87"),
    Series(gettext_lazy("Severe"), "sev-3", "#1f4f4a"),
)
HIDDEN_FILL = "#ffffff"
GRID = "#d5d0c6"


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _number(value: float) -> str:
    decimals = 0 if abs(value) >= 10 or value == int(value) else 1
    return formats.number_format(value, decimal_pos=decimals, use_l10n=True, force_grouping=True)


def _axes(chart: Chart, labels: Sequence[str], top_value: float, unit: str,
          steps: int = 4) -> tuple[float, float, float]:
    """Grid lines and labels; returns (plot left, plot width, plot height)."""
    plot_w = chart.width - LEFT - RIGHT
    plot_h = chart.height - TOP - BOTTOM
    for n in range(steps + 1):
        value = top_value * n / steps
        y = TOP + plot_h - plot_h * n / steps
        chart.shapes.append(Polyline(((LEFT, y), (LEFT + plot_w, y)), "chart__grid", GRID))
        chart.shapes.append(Text(LEFT - 6, y + 4, _number(value), anchor="end"))
    chart.shapes.append(Text(LEFT, TOP - 12, unit, css="chart__unit"))
    slot = plot_w / max(1, len(labels))
    for n, label in enumerate(labels):
        chart.shapes.append(Text(LEFT + slot * (n + 0.5), chart.height - BOTTOM + 16, label, anchor="middle"))
    return LEFT, plot_w, plot_h


def _described(title: str, shown: int, weeks: int, suppressed: int) -> str:
    """The chart's text equivalent (its <desc>), for a screen reader."""
    text = gettext("%(title)s: %(shown)s of %(weeks)s weeks shown") % {"title": title, "shown": shown, "weeks": weeks}
    if suppressed:
        text += gettext(", %(suppressed)s suppressed (fewer than the minimum number of people)") % {
            "suppressed": suppressed}
    return text + "."


def stacked_bars(*, title: str, labels: Sequence[str], values: Sequence[Sequence[float] | None],
                 series: Sequence[Series] = SEVERITY_SERIES, unit: str) -> Chart:
    """One bar per label, stacked by series; `None` for a label whose figures are suppressed."""
    shown = [v for v in values if v is not None]
    hidden = len(values) - len(shown)
    description = _described(title, len(shown), len(values), hidden)
    chart = Chart(title=title, description=description)
    top_value = _nice_ceiling(max((sum(v) for v in shown), default=0.0))
    left, plot_w, plot_h = _axes(chart, labels, top_value, unit)
    slot = plot_w / max(1, len(labels))
    bar_w = min(44.0, slot * 0.62)
    base = TOP + plot_h
    for n, (label, stack) in enumerate(zip(labels, values, strict=True)):
        x = left + slot * n + (slot - bar_w) / 2
        if stack is None:
            chart.shapes.append(Rect(x, TOP + plot_h * 0.55, bar_w, plot_h * 0.45, "chart__hidden", HIDDEN_FILL,
                                     title=gettext("%(week)s: suppressed") % {"week": label}, dashed=True))
            chart.shapes.append(Text(x + bar_w / 2, TOP + plot_h * 0.5, gettext("hidden"), anchor="middle",
                                     css="chart__hidden-label", size=10))
            continue
        y = base
        for part, value in zip(series, stack, strict=True):
            height = plot_h * value / top_value if top_value else 0.0
            if height <= 0:
                continue
            y -= height
            chart.shapes.append(Rect(x, y, bar_w, height, part.css, part.fill,
                                     title=f"{label}, {str(part.name).lower()}: {_number(value)} {unit}"))
    legend_x = left + 4
    for part in series:
        chart.shapes.append(Rect(legend_x, chart.height - 18, 10, 10, part.css, part.fill))
        chart.shapes.append(Text(legend_x + 14, chart.height - 9, str(part.name), size=10))
        legend_x += 24 + 7 * len(str(part.name))
    chart.shapes.append(Rect(legend_x, chart.height - 18, 10, 10, "chart__hidden", HIDDEN_FILL, dashed=True))
    chart.shapes.append(Text(legend_x + 14, chart.height - 9, gettext("Suppressed: fewer than the minimum of people"),
                             size=10))
    return chart


def line_chart(*, title: str, labels: Sequence[str], values: Sequence[float | None], hidden: Sequence[bool],
               top_value: float, unit: str, css: str = "chart__line", stroke: str = "#2b625d",
               height: int = 200) -> Chart:
    """A line through the shown points on a fixed scale 0..top_value, broken where a week has no value: a dashed
    marker where it is suppressed, nothing where nobody answered."""
    shown = sum(1 for v in values if v is not None)
    suppressed = sum(1 for h in hidden if h)
    description = _described(title, shown, len(values), suppressed)
    chart = Chart(title=title, description=description, height=height)
    left, plot_w, plot_h = _axes(chart, labels, top_value, unit, steps=5 if top_value == 5 else 4)
    slot = plot_w / max(1, len(labels))
    run: list[tuple[float, float]] = []
    for n, (label, value, is_hidden) in enumerate(zip(labels, values, hidden, strict=True)):
        x = left + slot * (n + 0.5)
        if value is None:
            if len(run) > 1:
                chart.shapes.append(Polyline(tuple(run), css, stroke))
            run = []
            if is_hidden:
                chart.shapes.append(Rect(x - 6, TOP + plot_h - 12, 12, 12, "chart__hidden", HIDDEN_FILL,
                                         title=gettext("%(week)s: suppressed") % {"week": label}, dashed=True))
            continue
        y = TOP + plot_h - plot_h * min(value, top_value) / top_value
        run.append((x, y))
        chart.shapes.append(Dot(x, y, css, stroke, title=f"{label}: {_number(value)}"))
    if len(run) > 1:
        chart.shapes.append(Polyline(tuple(run), css, stroke))
    return chart


def to_svg(chart: Chart, *, chart_id: str) -> SafeString:
    """Inline SVG with a title and description for screen readers. Every text is escaped."""
    parts = [
        f'<svg class="chart" viewBox="0 0 {chart.width} {chart.height}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{escape(chart.title)}</title>',
        f'<desc id="{chart_id}-d">{escape(chart.description)}</desc>',
    ]
    for shape in chart.shapes:
        if isinstance(shape, Rect):
            dash = ' stroke-dasharray="4 3"' if shape.dashed else ""
            tip = f"<title>{escape(shape.title)}</title>" if shape.title else ""
            parts.append(f'<rect class="{shape.css}" x="{shape.x:.1f}" y="{shape.y:.1f}" width="{shape.w:.1f}" '
                         f'height="{shape.h:.1f}" fill="{shape.fill}"{dash}>{tip}</rect>')
        elif isinstance(shape, Polyline):
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in shape.points)
            parts.append(f'<polyline class="{shape.css}" points="{points}" fill="none" stroke="{shape.stroke}"/>')
        elif isinstance(shape, Dot):
            tip = f"<title>{escape(shape.title)}</title>" if shape.title else ""
            parts.append(f'<circle class="{shape.css}" cx="{shape.x:.1f}" cy="{shape.y:.1f}" r="4" '
                         f'fill="{shape.fill}">{tip}</circle>')
        else:
            parts.append(f'<text class="{shape.css}" x="{shape.x:.1f}" y="{shape.y:.1f}" '
                         f'text-anchor="{shape.anchor}" font-size="{shape.size:g}">{escape(shape.text)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (built above from escaped text and numbers only)
