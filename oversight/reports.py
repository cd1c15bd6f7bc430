"""Reads for occupational health: the exposure report per team and period, its weekly trend, and the follow-up
list. Everything here is aggregate and suppressed (oversight/suppression.py) except the follow-up names, which
appear only for reviewers who consented to individual follow-up.

Periods are whole weeks (Monday to Sunday): a week, a month (the weeks starting in it) or a custom range snapped
outwards to whole weeks. A cell of a period counts, for suppression, the smallest number of people in any of its
weeks, so comparing overlapping periods cannot single out a week with fewer than the minimum.

Check-in answers never leave the database here: check-in figures come from database aggregates (`aggregate()`,
which the CheckIn guard allows because it loads no answer), over at least the minimum number of people.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Avg, Count, Max, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import formats, timezone
from django.utils.functional import Promise, lazy
from django.utils.translation import gettext, gettext_lazy

from intake.models import Severity
from oversight import charts, team_selectors
from oversight.suppression import Cell, Group, Reason, suppress
from wellbeing import own_data, selectors
from wellbeing.models import Break, CheckIn, Department, ExposureEntry, Shift, Team
from wellbeing.services import WHO5_LOW_RAW

MAX_WEEKS = 26
TREND_WEEKS = 8
NEAR_CAP_PERCENT = 90
NEAR_CAP_SHIFTS_IN_A_WEEK = 3
LOW_MOOD = 2  # of 5
LOW_MOOD_IN_A_ROW = 3
LOW_WHO5_IN_A_ROW = 2
TOTAL = "total"


def min_group_size() -> int:
    return int(getattr(settings, "VEIL_MIN_GROUP_SIZE", 5))


# ---- periods -------------------------------------------------------------------------------------------------------


class PeriodError(ValueError):
    """A period the report cannot show, with a sentence saying why."""


@dataclass(frozen=True)
class Period:
    kind: str  # week | month | custom
    start: date  # a Monday
    end: date  # a Sunday, inclusive

    @property
    def weeks(self) -> list[date]:
        return [self.start + timedelta(weeks=n) for n in range((self.end - self.start).days // 7 + 1)]

    @property
    def label(self) -> str:
        span = gettext("%(start)s to %(end)s") % {"start": formats.date_format(self.start, "D j M Y"),
                                                  "end": formats.date_format(self.end, "D j M Y")}
        if self.kind == "week":
            return gettext("Week of %(day)s (%(span)s)") % {"day": formats.date_format(self.start, "j M Y"),
                                                            "span": span}
        if self.kind == "month":
            return gettext("%(month)s: the %(weeks)s weeks starting in it (%(span)s)") % {
                "month": formats.date_format(self.start + timedelta(days=6), "YEAR_MONTH_FORMAT"),
                "weeks": len(self.weeks), "span": span}
        return gettext("%(weeks)s weeks (%(span)s)") % {"weeks": len(self.weeks), "span": span}

    @property
    def trend_weeks(self) -> list[date]:
        """The weeks the trend charts show: the period's, or the eight weeks ending with it if it is shorter."""
        if len(self.weeks) >= TREND_WEEKS:
            return self.weeks
        last = self.weeks[-1]
        return [last - timedelta(weeks=n) for n in range(TREND_WEEKS - 1, -1, -1)]

    def query(self) -> dict[str, str]:
        if self.kind == "week":
            return {"period": "week", "start": self.start.isoformat()}
        if self.kind == "month":
            return {"period": "month", "month": f"{self.start + timedelta(days=6):%Y-%m}"}
        return {"period": "custom", "start": self.start.isoformat(), "end": self.end.isoformat()}


def period_from(params: dict[str, str], *, today: date) -> Period:
    """week (start=any day of it; default the last complete week), month (month=YYYY-MM; default the month the
    last complete week starts in) or custom (start, end: snapped outwards to whole weeks, at most 26)."""
    kind = params.get("period") or "week"
    last_monday = selectors.week_start(today) - timedelta(weeks=1)
    try:
        if kind == "week":
            start = selectors.week_start(date.fromisoformat(params["start"])) if params.get("start") else last_monday
            period = Period("week", start, start + timedelta(days=6))
        elif kind == "month":
            if params.get("month"):
                year, month = (int(part) for part in params["month"].split("-"))
            else:
                # The month the last complete week starts in, so that week is in the report. (Its Sunday's month
                # was wrong on the first days of a month: on Monday 7 December 2026 it named December, whose weeks
                # all lay ahead, and the report was empty.)
                year, month = last_monday.year, last_monday.month
            first = date(year, month, 1)
            last = date(year, month, calendar.monthrange(year, month)[1])
            start = first + timedelta(days=(7 - first.weekday()) % 7)  # the first Monday in the month
            end = selectors.week_start(last) + timedelta(days=6)
            period = Period("month", start, end)
        elif kind == "custom":
            begin, finish = date.fromisoformat(params["start"]), date.fromisoformat(params["end"])
            if finish < begin:
                raise PeriodError(gettext("The end of the period must not be before its start."))
            period = Period("custom", selectors.week_start(begin), selectors.week_start(finish) + timedelta(days=6))
        else:
            raise PeriodError(gettext("Choose a week, a month, or a custom period."))
    except (KeyError, ValueError) as exc:
        if isinstance(exc, PeriodError):
            raise
        raise PeriodError(gettext("Give dates as YYYY-MM-DD (and a month as YYYY-MM).")) from None
    if len(period.weeks) > MAX_WEEKS:
        raise PeriodError(gettext("A report covers at most %(max_weeks)s weeks.") % {"max_weeks": MAX_WEEKS})
    return period


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


# ---- metrics -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    key: str
    label: str | Promise
    population: str = "shift"  # whose count decides suppression: people on shift, or who answered
    decimals: int = 0
    mean: bool = False  # a mean, not a sum (the total row is the mean over everyone, not a sum of rows)
    help: str | Promise = ""


SEVERITY_KEYS = ("units_none", "units_low", "units_medium", "units_severe")
METRICS = (
    Metric("people", gettext_lazy("People on shift"),
           help=gettext_lazy("Team members with at least one shift in the period.")),
    Metric("shifts", gettext_lazy("Shifts")),
    Metric("units_none", gettext_lazy("Exposure: none"),
           help=gettext_lazy("Units of exposure: one unit is a minute of severe content on screen; milder items count "
                             "less.")),
    Metric("units_low", gettext_lazy("Exposure: low")),
    Metric("units_medium", gettext_lazy("Exposure: medium")),
    Metric("units_severe", gettext_lazy("Exposure: severe")),
    Metric("units_total", gettext_lazy("Exposure: all")),
    Metric("severe_hours", gettext_lazy("Hours on severe content"), decimals=1,
           help=gettext_lazy("Time on screen with severe items, as counted (bounded per item; revealed seconds count "
                             "double).")),
    Metric("caps_reached", gettext_lazy("Shifts that reached the cap")),
    Metric("near_cap", lazy(lambda: gettext("Shifts at ≥ %(near_cap_percent)s %% of the cap")
                             % {"near_cap_percent": NEAR_CAP_PERCENT}, str)()),
    Metric("breaks_due", gettext_lazy("Scheduled breaks due")),
    Metric("breaks_taken", gettext_lazy("Scheduled breaks taken")),
    Metric("breaks_auto", gettext_lazy("Breaks that had to start by themselves"),
           help=gettext_lazy("The window to start a due break passed while the person was working.")),
    Metric("breaks_chosen", gettext_lazy("Breaks people chose")),
    Metric("breaks_lead", gettext_lazy("Breaks leads sent people on")),
    Metric("reveals", gettext_lazy("Reveals of the clear image")),
    Metric("reveal_minutes", gettext_lazy("Minutes revealed"), decimals=1),
    Metric("overruns", gettext_lazy("Shift overruns"),
           help=gettext_lazy("Shifts in which an item was still being reviewed after the planned end.")),
    Metric("mood_people", gettext_lazy("People who checked in"), population="mood"),
    Metric("mood_mean", gettext_lazy("Mood after breaks and shifts (1 to 5)"), population="mood", decimals=1,
           mean=True),
    Metric("who5_people", gettext_lazy("People who answered WHO-5"), population="who5"),
    Metric("who5_mean", gettext_lazy("WHO-5 wellbeing (0 to 100)"), population="who5", decimals=0, mean=True,
           help=gettext_lazy("Below 52 (raw 13) suggests poor wellbeing.")),
    Metric("who5_low_share", gettext_lazy("WHO-5 answers suggesting poor wellbeing (%)"), population="who5", mean=True),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}
SHIFT_KEYS = tuple(m.key for m in METRICS if m.population == "shift")


# ---- raw data: per reviewer and week (exposure, shifts, breaks) ------------------------------------------------------


PersonWeek = dict[tuple[int, date], dict[str, float]]


def _shift_data(reviewer_ids: list[int], weeks: list[date]) -> PersonWeek:
    """Per reviewer and week: the figures of SHIFT_KEYS (people = 1 when they had a shift)."""
    first, last = weeks[0], weeks[-1] + timedelta(days=6)
    data: PersonWeek = defaultdict(lambda: dict.fromkeys(SHIFT_KEYS, 0.0))
    shifts = list(Shift.objects.filter(reviewer_id__in=reviewer_ids, day__gte=first, day__lte=last)
                  .values("pk", "reviewer_id", "day", "ends_at"))
    if not shifts:
        return {}
    caps = {rid: selectors.policy_effective(reviewer=rid).cap_seconds for rid in {s["reviewer_id"] for s in shifts}}
    # Items not counted yet (still open, or their reviewer has not been back since) count their reservation.
    shift_ids = [s["pk"] for s in shifts]
    exposure = (ExposureEntry.objects.filter(shift_id__in=shift_ids).values("shift_id", "severity")
                .annotate(units=Sum(Coalesce("exposure", "reserved")), counted=Sum("counted_seconds"),
                          reveals=Sum("reveal_count"), revealed=Sum("reveal_seconds"), last_end=Max("ended_at")))
    per_shift: dict[int, list[Any]] = defaultdict(list)
    for row in exposure:
        per_shift[row["shift_id"]].append(row)
    for shift in shifts:
        bucket = data[(shift["reviewer_id"], selectors.week_start(shift["day"]))]
        bucket["people"] = 1.0
        bucket["shifts"] += 1
        total = 0
        for row in per_shift.get(shift["pk"], []):
            units = int(row["units"] or 0)
            total += units
            bucket[SEVERITY_KEYS[row["severity"]]] += units / 60
            if row["severity"] == Severity.SEVERE:
                bucket["severe_hours"] += (row["counted"] or 0) / 3600
            bucket["reveals"] += row["reveals"] or 0
            bucket["reveal_minutes"] += (row["revealed"] or 0) / 60
        bucket["units_total"] += total / 60
        cap = caps[shift["reviewer_id"]]
        bucket["caps_reached"] += 1 if total >= cap else 0
        bucket["near_cap"] += 1 if total * 100 >= NEAR_CAP_PERCENT * cap else 0
        ends = [row["last_end"] for row in per_shift.get(shift["pk"], []) if row["last_end"] is not None]
        bucket["overruns"] += 1 if ends and max(ends) > shift["ends_at"] else 0
    breaks = Break.objects.filter(reviewer_id__in=reviewer_ids).filter(
        Q(started_at__gte=day_start(first), started_at__lt=day_start(last + timedelta(days=1)))
        | Q(started_at__isnull=True, due_at__gte=day_start(first), due_at__lt=day_start(last + timedelta(days=1)))
    ).values("reviewer_id", "kind", "due_at", "started_at", "started_automatically")
    for brk in breaks:
        moment = brk["started_at"] or brk["due_at"]
        key = (brk["reviewer_id"], selectors.week_start(timezone.localdate(moment)))
        if key not in data:
            continue  # a break off shift, in a week without shifts: nothing to compare it with
        bucket = data[key]
        if brk["kind"] == Break.Kind.SCHEDULED:
            bucket["breaks_due"] += 1
            if brk["started_at"] is not None:
                bucket["breaks_taken"] += 1
                bucket["breaks_auto"] += 1 if brk["started_automatically"] else 0
        elif brk["kind"] == Break.Kind.VOLUNTARY:
            bucket["breaks_chosen"] += 1
        else:
            bucket["breaks_lead"] += 1
    return dict(data)


def _checkin_figures(user_ids: Sequence[int], since: date, until: date) -> dict[str, tuple[float | None, int]]:
    """Check-in figures for a group of people and dates, as (value, people) per metric. One database aggregate:
    no answer is loaded."""
    found = CheckIn.objects.filter(user_id__in=list(user_ids), created_at__gte=day_start(since),
                                   created_at__lt=day_start(until + timedelta(days=1))).aggregate(
        mood_people=Count("user", distinct=True, filter=Q(mood__isnull=False)),
        mood_mean=Avg("mood"),
        who5_people=Count("user", distinct=True, filter=Q(who5_raw__isnull=False)),
        who5_mean=Avg("who5_raw"),
        who5_answers=Count("pk", filter=Q(who5_raw__isnull=False)),
        who5_low=Count("pk", filter=Q(who5_raw__lt=WHO5_LOW_RAW)),
    )
    mood_people, who5_people = int(found["mood_people"]), int(found["who5_people"])
    who5_mean = found["who5_mean"] * 4 if found["who5_mean"] is not None else None
    low_share = 100 * found["who5_low"] / found["who5_answers"] if found["who5_answers"] else None
    return {
        "mood_people": (float(mood_people), mood_people),
        "mood_mean": (found["mood_mean"], mood_people),
        "who5_people": (float(who5_people), who5_people),
        "who5_mean": (who5_mean, who5_people),
        "who5_low_share": (low_share, who5_people),
    }


# ---- tables --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportCell:
    metric: Metric
    value: float | None
    people: int
    hidden: Reason | None

    @property
    def text(self) -> str:
        if self.hidden is not None:
            return "\u2013"  # an en dash
        if self.value is None:
            return gettext("no answers") if self.metric.population != "shift" else "0"
        return formats.number_format(self.value, decimal_pos=self.metric.decimals, use_l10n=True, force_grouping=True)

    @property
    def note(self) -> str:
        return gettext("Suppressed: %(why)s") % {"why": self.why} if self.hidden is not None else ""

    @property
    def why(self) -> str:
        """Why this figure is hidden, in words: its own reason, never its neighbours'."""
        if self.hidden == Reason.PRIMARY:
            among = gettext("answered") if self.metric.population != "shift" else gettext("in it")
            return gettext("fewer than %(min_group_size)s people %(among)s") % {
                "min_group_size": min_group_size(), "among": among}
        if self.hidden == Reason.COMPLEMENTARY:
            return gettext("it would let a suppressed figure be worked out from a total")
        return ""


@dataclass(frozen=True)
class ReportRow:
    key: int | str  # a team id, or TOTAL
    label: str
    cells: list[ReportCell]

    def cell(self, key: str) -> ReportCell:
        return next(c for c in self.cells if c.metric.key == key)


@dataclass(frozen=True)
class ReportTable:
    rows: list[ReportRow]
    weeks: list[date]

    @property
    def any_hidden(self) -> bool:
        return any(c.hidden for row in self.rows for c in row.cells)

    def row(self, key: int | str) -> ReportRow:
        return next(r for r in self.rows if r.key == key)


def _table(*, teams: list[Team], team_members: dict[int, list[int]], data: PersonWeek, weeks: list[date],
           weekly_checkins: dict[tuple[int | str, date], dict[str, tuple[float | None, int]]],
           period_checkins: dict[int | str, dict[str, tuple[float | None, int]]], k: int) -> ReportTable:
    row_keys: list[int | str] = [t.pk for t in teams] + [TOTAL]
    members: dict[int | str, list[int]] = {t.pk: team_members.get(t.pk, []) for t in teams}
    members[TOTAL] = [rid for t in teams for rid in team_members.get(t.pk, [])]
    cells: dict[tuple[int | str, str], Cell] = {}
    values: dict[tuple[int | str, str], float | None] = {}
    shown_people: dict[tuple[int | str, str], int] = {}
    for row in row_keys:
        weekly_people = [sum(1 for rid in members[row] if data.get((rid, w), {}).get("people")) for w in weeks]
        safe_people = min((n for n in weekly_people if n), default=0)
        on_shift = sum(1 for rid in members[row] if any(data.get((rid, w), {}).get("people") for w in weeks))
        for key in SHIFT_KEYS:
            # People are counted once however many weeks they worked; everything else adds up.
            total = float(on_shift) if key == "people" else sum(
                data.get((rid, w), {}).get(key, 0.0) for rid in members[row] for w in weeks)
            values[(row, key)] = total
            cells[(row, key)] = Cell(total, safe_people)
            shown_people[(row, key)] = on_shift
        for key, (value, people) in period_checkins[row].items():
            weekly = [weekly_checkins[(row, w)][key][1] for w in weeks]
            safe = min((n for n in weekly if n), default=0)
            values[(row, key)] = value
            cells[(row, key)] = Cell(value if value is not None else 0.0, min(safe, people) if people else 0)
            shown_people[(row, key)] = people
    groups: list[Group[tuple[int | str, str]]] = [
        Group(tuple((t.pk, m.key) for t in teams), (TOTAL, m.key)) for m in METRICS
    ]
    groups += [Group(tuple((row, key) for key in SEVERITY_KEYS), (row, "units_total")) for row in row_keys]
    hidden = suppress(cells, groups, k=k)
    labels: dict[int | str, str] = {t.pk: t.name for t in teams}
    labels[TOTAL] = gettext("All these teams") if len(teams) > 1 else gettext("Total")
    rows = [ReportRow(row, labels[row], [ReportCell(m, values[(row, m.key)], shown_people[(row, m.key)],
                                                    hidden.get((row, m.key))) for m in METRICS])
            for row in row_keys]
    return ReportTable(rows=rows, weeks=weeks)


@dataclass
class Report:
    department: Department
    teams: list[Team]
    focus: Team | None
    period: Period
    table: ReportTable
    weekly: dict[date, ReportTable]
    k: int
    charts: dict[str, Any] = field(default_factory=dict)

    @property
    def focus_key(self) -> int | str:
        return self.focus.pk if self.focus is not None else TOTAL

    @property
    def focus_label(self) -> str:
        return self.focus.name if self.focus is not None else self.table.row(TOTAL).label


def build_report(*, department: Department, teams: list[Team], period: Period, focus: Team | None = None) -> Report:
    """The report for the given teams of one department (the teams an OH professional is assigned there), with
    their total, over the period, and weekly tables for the trend. Suppression is computed on whole tables, so a
    team's figures are hidden the same way whichever team the page focuses on."""
    k = min_group_size()
    team_members: dict[int, list[int]] = defaultdict(list)
    for rid, tid in team_selectors.member_ids(teams=teams).items():
        team_members[tid].append(rid)
    everyone = [rid for ids in team_members.values() for rid in ids]
    all_weeks = sorted(set(period.weeks) | set(period.trend_weeks))
    data = _shift_data(everyone, all_weeks) if everyone else {}
    row_members: dict[int | str, list[int]] = {t.pk: team_members.get(t.pk, []) for t in teams}
    row_members[TOTAL] = everyone
    weekly_checkins = {(row, w): _checkin_figures(ids, w, w + timedelta(days=6))
                       for row, ids in row_members.items() for w in all_weeks}
    period_checkins = {row: _checkin_figures(ids, period.start, period.end) for row, ids in row_members.items()}
    table = _table(teams=teams, team_members=team_members, data=data, weeks=period.weeks,
                   weekly_checkins=weekly_checkins, period_checkins=period_checkins, k=k)
    weekly = {w: _table(teams=teams, team_members=team_members, data=data, weeks=[w],
                        weekly_checkins=weekly_checkins,
                        period_checkins={row: weekly_checkins[(row, w)] for row in row_members}, k=k)
              for w in period.trend_weeks}
    report = Report(department=department, teams=teams, focus=focus, period=period, table=table, weekly=weekly, k=k)
    report.charts = trend_charts(report)
    return report


def hidden_figures(table: ReportTable) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """The footnote under a table, shared by the page and the PDF: per row, each reason a figure is hidden for and the
    figures hidden for it. A team of 5 whose exposure is hidden to protect a smaller team says so, rather than
    "fewer than 5 people"; its check-in figures, if fewer than 5 answered, say that."""
    notes = []
    for row in table.rows:
        by_reason: dict[str, list[str]] = {}
        for cell in row.cells:
            if cell.hidden is not None:
                by_reason.setdefault(cell.why, []).append(str(cell.metric.label))
        if by_reason:
            notes.append((row.label, list(by_reason.items())))
    return notes


def trend_charts(report: Report) -> dict[str, charts.Chart]:
    weeks = report.period.trend_weeks
    labels = [formats.date_format(w, "d M") for w in weeks]
    focus = report.focus_key
    stacks: list[list[float] | None] = []
    moods: list[float | None] = []
    who5: list[float | None] = []
    mood_hidden: list[bool] = []
    who5_hidden: list[bool] = []
    for w in weeks:
        row = report.weekly[w].row(focus)
        severity_cells = [row.cell(key) for key in SEVERITY_KEYS]
        stacks.append(None if any(c.hidden for c in severity_cells) else [c.value or 0.0 for c in severity_cells])
        mood, wellbeing = row.cell("mood_mean"), row.cell("who5_mean")
        moods.append(None if mood.hidden else mood.value)
        mood_hidden.append(mood.hidden is not None)
        who5.append(None if wellbeing.hidden else wellbeing.value)
        who5_hidden.append(wellbeing.hidden is not None)
    name = report.focus_label
    return {
        "exposure": charts.stacked_bars(title=gettext("Exposure per week by severity: %(name)s") % {
            "name": name}, labels=labels,
                                        values=stacks, unit=gettext("units (minutes of severe-equivalent)")),
        "mood": charts.line_chart(title=gettext("Mood after breaks and shifts, weekly mean: %(name)s") % {
            "name": name}, labels=labels,
                                  values=moods, hidden=mood_hidden, top_value=5, unit=gettext("mood, 1 to 5")),
        "who5": charts.line_chart(title=gettext("WHO-5 wellbeing, weekly mean: %(name)s") % {
            "name": name}, labels=labels, values=who5,
                                  hidden=who5_hidden, top_value=100, unit=gettext("WHO-5, 0 to 100 (below 52: poor)"),
                                  css="chart__line chart__line--alt", stroke="#7a5a1f"),
    }


def report_payload(report: Report) -> dict[str, Any]:
    """The report as JSON: hidden cells carry no value, only why they are hidden."""

    def table(t: ReportTable) -> list[dict[str, Any]]:
        return [{"team": row.key, "label": row.label, "figures": {
            c.metric.key: ({"suppressed": c.hidden.value} if c.hidden is not None
                           else {"value": None if c.value is None else round(c.value, 2)})
            for c in row.cells}} for row in t.rows]

    return {
        "department": {"id": report.department.pk, "name": report.department.name},
        "period": {"kind": report.period.kind, "start": report.period.start.isoformat(),
                   "end": report.period.end.isoformat(), "label": report.period.label},
        "min_group_size": report.k,
        "metrics": [{"key": m.key, "label": m.label} for m in METRICS],
        "rows": table(report.table),
        "weeks": [{"week": w.isoformat(), "rows": table(report.weekly[w])} for w in report.period.trend_weeks],
    }


# ---- follow-up -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FollowUpPerson:
    user: User
    team: Team
    reasons: list[str]


@dataclass(frozen=True)
class FollowUp:
    period: Period
    named: list[FollowUpPerson]
    screened_unnamed: int  # people without consent whose pattern was looked at
    flagged_unnamed: int | None  # None: withheld (too few people, or it would tell about each of them)
    k: int

    @property
    def flagged_total(self) -> int | None:
        return None if self.flagged_unnamed is None else len(self.named) + self.flagged_unnamed


def _low_streaks(user_id: int, period: Period) -> list[str]:
    """Whether the latest check-ins in the period were low several times in a row, as reasons. Aggregates over
    the last few rows only: the answers themselves are not loaded."""
    rows = CheckIn.objects.filter(user_id=user_id, created_at__gte=day_start(period.start),
                                  created_at__lt=day_start(period.end + timedelta(days=1)))
    reasons = []
    mood = rows.filter(mood__isnull=False).order_by("-created_at", "-id")[:LOW_MOOD_IN_A_ROW].aggregate(
        n=Count("pk"), best=Max("mood"))
    if mood["n"] == LOW_MOOD_IN_A_ROW and mood["best"] is not None and mood["best"] <= LOW_MOOD:
        reasons.append(gettext("The last %(low_mood_in_a_row)s check-ins in the period were low (%(low_mood)s of 5 or "
                               "less).") % {"low_mood_in_a_row": LOW_MOOD_IN_A_ROW, "low_mood": LOW_MOOD})
    who5 = rows.filter(who5_raw__isnull=False).order_by("-created_at", "-id")[:LOW_WHO5_IN_A_ROW].aggregate(
        n=Count("pk"), best=Max("who5_raw"))
    if who5["n"] == LOW_WHO5_IN_A_ROW and who5["best"] is not None and who5["best"] < WHO5_LOW_RAW:
        reasons.append(gettext("The last %(low_who5_in_a_row)s WHO-5 answers suggested poor wellbeing.") % {
            "low_who5_in_a_row": LOW_WHO5_IN_A_ROW})
    return reasons


def _exposure_reasons(data: PersonWeek, user_id: int, period: Period) -> list[str]:
    heavy_weeks = [w for w in period.weeks
                   if data.get((user_id, w), {}).get("near_cap", 0) >= NEAR_CAP_SHIFTS_IN_A_WEEK]
    if not heavy_weeks:
        return []
    weeks = ", ".join(formats.date_format(w, "d M") for w in heavy_weeks)
    return [gettext("%(near_cap_shifts_in_a_week)s or more shifts at ≥ %(near_cap_percent)s %% of the cap in a week "
                    "(week%(else)s of %(weeks)s).") % {
                        "near_cap_shifts_in_a_week": NEAR_CAP_SHIFTS_IN_A_WEEK, "near_cap_percent": NEAR_CAP_PERCENT,
                        "else": 's' if len(heavy_weeks) > 1 else '', "weeks": weeks}]


def followup(*, teams: list[Team], period: Period) -> FollowUp:
    """Reviewers whose pattern needs attention: named only with their consent, otherwise only counted (and the
    count only when at least k people without consent were looked at and not all of them are counted, since
    "all of them" would say something about each one)."""
    k = min_group_size()
    member_team = team_selectors.member_ids(teams=teams)
    teams_by_id = {t.pk: t for t in teams}
    data = _shift_data(list(member_team), period.weeks) if member_team else {}
    consented = own_data.consenting(member_team)
    users = {u.pk: u for u in User.objects.filter(pk__in=list(member_team), is_active=True)}
    named: list[FollowUpPerson] = []
    screened = flagged = 0
    for user_id in sorted(users, key=lambda pk: own_data.display_name(users[pk]).lower()):
        reasons = _exposure_reasons(data, user_id, period) + _low_streaks(user_id, period)
        if user_id in consented:
            if reasons:
                named.append(FollowUpPerson(users[user_id], teams_by_id[member_team[user_id]], reasons))
            continue
        screened += 1
        flagged += 1 if reasons else 0
    withheld = screened < k or (flagged == screened and flagged > 0)
    return FollowUp(period=period, named=named, screened_unnamed=screened,
                    flagged_unnamed=None if withheld else flagged, k=k)


@dataclass(frozen=True)
class PersonWeekRow:
    week: date
    shifts: int
    units: float
    near_cap: int
    caps_reached: int
    breaks_due: int
    breaks_taken: int


def person_weeks(*, user: User, period: Period) -> list[PersonWeekRow]:
    data = _shift_data([user.pk], period.weeks)
    rows = []
    for w in period.weeks:
        d = data.get((user.pk, w), {})
        rows.append(PersonWeekRow(w, int(d.get("shifts", 0)), round(d.get("units_total", 0.0)),
                                  int(d.get("near_cap", 0)), int(d.get("caps_reached", 0)),
                                  int(d.get("breaks_due", 0)), int(d.get("breaks_taken", 0))))
    return rows
