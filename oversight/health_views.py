"""Occupational health: the exposure report per team and period (page, CSV, PDF), the follow-up list, and the
page of a reviewer who consented to individual follow-up. Every view and export is audited (DataAccess). A team or
department not assigned to you is a 404; anyone without the OH role (administrators included) gets a 403."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from core.roles import Role, role_required, signed_in
from oversight import charts, reports, team_selectors, team_services
from oversight.report_export import report_csv, report_pdf
from wellbeing import own_data, selectors
from wellbeing.models import DataAccess, Department, Team

PRIVATE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
QUERY_KEYS = ("period", "start", "end", "month")


def _scope(user: User, department_id: int, team_id: str | None) -> tuple[Department, list[Team], Team | None]:
    """The department's teams assigned to this OH professional, and the team in focus (404 if not theirs)."""
    teams = list(team_selectors.teams_in_care_of(user=user).filter(department_id=department_id).order_by("name"))
    if not teams:
        raise Http404(gettext("No such department among the teams assigned to you."))
    focus = None
    if team_id:
        focus = next((t for t in teams if str(t.pk) == team_id), None)
        if focus is None:
            raise Http404(gettext("No such team among the teams assigned to you."))
    return teams[0].department, teams, focus


def _period(request: HttpRequest) -> reports.Period:
    params = {key: request.GET.get(key, "") for key in QUERY_KEYS}
    return reports.period_from(params, today=timezone.localdate())


def _report(request: HttpRequest, department_id: int, what: str) -> tuple[reports.Report, User]:
    user = signed_in(request)
    department, teams, focus = _scope(user, department_id, request.GET.get("team"))
    period = _period(request)
    report = reports.build_report(department=department, teams=teams, period=period, focus=focus)
    team_services.access_record(viewer=user, what=what, team=focus, department=department,
                                period=(period.start, period.end))
    return report, user


@require_GET
@role_required(Role.OCCUPATIONAL_HEALTH)
def home(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    return render(request, "health/home.html", {
        "departments": team_selectors.departments_in_care_of(user=user),
        "k": reports.min_group_size(),
    })


@require_GET
@role_required(Role.OCCUPATIONAL_HEALTH)
def report(request: HttpRequest, department_id: int) -> HttpResponse:
    try:
        built, _user = _report(request, department_id, DataAccess.What.REPORT_PAGE)
    except reports.PeriodError as exc:
        messages.error(request, str(exc))
        return redirect("health-report", department_id=department_id)
    query = "&".join(f"{k}={v}" for k, v in built.period.query().items())
    if built.focus is not None:
        query += f"&team={built.focus.pk}"
    sections = [
        (gettext("People and shifts"), ("people", "shifts")),
        (gettext("Exposure (units: minutes of severe-equivalent content)"), (*reports.SEVERITY_KEYS, "units_total",
                                                                     "severe_hours", "caps_reached", "near_cap")),
        (gettext("Breaks"), ("breaks_due", "breaks_taken", "breaks_auto", "breaks_chosen", "breaks_lead")),
        (gettext("Reveals and overruns"), ("reveals", "reveal_minutes", "overruns")),
        (gettext("Check-ins (voluntary; counted among those who answered)"), ("mood_people", "mood_mean", "who5_people",
                                                                     "who5_mean", "who5_low_share")),
    ]
    table_rows = [(title, [(reports.METRIC_BY_KEY[key], [row.cell(key) for row in built.table.rows])
                           for key in keys]) for title, keys in sections]
    hidden_notes = reports.hidden_figures(built.table)
    return render(request, "health/report.html", {
        "r": built,
        "hidden_notes": hidden_notes,
        "sections": table_rows,
        "charts": {name: charts.to_svg(chart, chart_id=f"chart-{name}") for name, chart in built.charts.items()},
        "query": query,
        "period_query": built.period.query(),
        "today": timezone.localdate(),
    })


@require_GET
@role_required(Role.OCCUPATIONAL_HEALTH)
def export_csv(request: HttpRequest, department_id: int) -> HttpResponse:
    try:
        built, _user = _report(request, department_id, DataAccess.What.REPORT_CSV)
    except reports.PeriodError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    name = f"veil-exposure-{built.period.start}-{built.period.end}.csv"
    return HttpResponse(report_csv(built), content_type="text/csv; charset=utf-8",
                        headers={**PRIVATE, "Content-Disposition": f'attachment; filename="{name}"'})


@require_GET
@role_required(Role.OCCUPATIONAL_HEALTH)
def export_pdf(request: HttpRequest, department_id: int) -> HttpResponse:
    try:
        built, user = _report(request, department_id, DataAccess.What.REPORT_PDF)
    except reports.PeriodError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    name = f"veil-exposure-{built.period.start}-{built.period.end}.pdf"
    body = report_pdf(built, viewer=own_data.display_name(user))
    return HttpResponse(body, content_type="application/pdf",
                        headers={**PRIVATE, "Content-Disposition": f'attachment; filename="{name}"'})


def _followup_period(request: HttpRequest) -> reports.Period:
    if request.GET.get("period"):
        return _period(request)
    last_monday = selectors.week_start(timezone.localdate()) - timedelta(weeks=1)
    return reports.Period("custom", last_monday - timedelta(weeks=3), last_monday + timedelta(days=6))


@require_GET
@role_required(Role.OCCUPATIONAL_HEALTH)
def followup(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    try:
        period = _followup_period(request)
    except reports.PeriodError as exc:
        messages.error(request, str(exc))
        return redirect("health-followup")
    teams = list(team_selectors.teams_in_care_of(user=user))
    found = reports.followup(teams=teams, period=period)
    team_services.access_record(viewer=user, what=DataAccess.What.FOLLOWUP, period=(period.start, period.end),
                                subjects=[p.user.pk for p in found.named])
    return render(request, "health/followup.html", {
        "f": found, "teams": teams, "period_query": period.query(),
        "criteria": {"near_cap": reports.NEAR_CAP_PERCENT, "near_cap_shifts": reports.NEAR_CAP_SHIFTS_IN_A_WEEK,
                     "low_mood": reports.LOW_MOOD, "mood_in_a_row": reports.LOW_MOOD_IN_A_ROW,
                     "who5_in_a_row": reports.LOW_WHO5_IN_A_ROW},
    })


@require_GET
@role_required(Role.OCCUPATIONAL_HEALTH)
def person(request: HttpRequest, user_id: int) -> HttpResponse:
    """A reviewer who consented to individual follow-up, in one of your teams: their weekly load and their
    check-ins (read through the logged selector). Anyone else: 404, whether they exist or not."""
    viewer = signed_in(request)
    teams = team_selectors.teams_in_care_of(user=viewer)
    subject = User.objects.filter(pk=user_id, team_membership__team__in=teams, is_active=True).first()
    if subject is None or not own_data.consent_given(user=subject):
        raise Http404(gettext("No such person among those who consented to follow-up in your teams."))
    try:
        period = _followup_period(request)
    except reports.PeriodError as exc:
        messages.error(request, str(exc))
        return redirect("health-person", user_id=subject.pk)
    weeks = reports.person_weeks(user=subject, period=period)
    since = reports.day_start(period.start)
    checkins = selectors.checkins_read(subject=subject, reader=viewer, purpose=gettext("OH follow-up"), since=since)
    team_services.access_record(viewer=viewer, what=DataAccess.What.PERSON, period=(period.start, period.end),
                                subjects=[subject.pk])
    return render(request, "health/person.html", {
        "subject": subject, "name": own_data.display_name(subject), "weeks": weeks, "checkins": checkins,
        "period": period, "team": team_selectors.team_of(user_id=subject.pk),
    })
