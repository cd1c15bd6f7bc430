"""The occupational-health report: the figures, small-group suppression on real data (a team of 4 inside a
department of 9), periods, the CSV and PDF exports (the PDF opens and shows its chart), and the audit of every view."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from PIL import Image

from oversight import reports
from tests.helpers.factories import logged_in, make_user
from tests.helpers.lead import MONDAY, NOW, make_team, past_shift, people
from wellbeing import services
from wellbeing.models import DataAccess, ExposureEntry
from wellbeing.selectors import week_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
WEEK = f"period=week&start={MONDAY.isoformat()}"
REQUIRE_SERVICES = os.environ.get("VEIL_REQUIRE_SERVICES") == "1"


@pytest.fixture
def department_of_nine(health):
    """Team A: 4 people, team B: 5 people, both in one department and assigned to the OH professional."""
    small, larger = people("a", 4), people("b", 5)
    team_a = make_team("Team A", department="Operations", members=small, health=[health])
    team_b = make_team("Team B", department="Operations", members=larger, health=[health])
    for n, user in enumerate(small + larger):
        past_shift(user, MONDAY + timedelta(days=n % 5), units={0: 10, 3: 30 + n}, breaks_due=2, breaks_taken=2)
    return team_a, team_b


def report_for(health: Any, department: Any, **params: str) -> reports.Report:
    teams = list(department.teams.filter(health_staff=health))
    period = reports.period_from(params or {"period": "week", "start": MONDAY.isoformat()}, today=NOW.date())
    return reports.build_report(department=department, teams=teams, period=period)


def test_a_team_of_4_inside_a_department_of_9(department_of_nine, health):
    team_a, team_b = department_of_nine
    report = report_for(health, team_a.department)
    row_a, row_b, total = (report.table.row(key) for key in (team_a.pk, team_b.pk, reports.TOTAL))
    for cell in row_a.cells:
        assert cell.hidden == "primary" or cell.metric.population != "shift", cell
    for cell in row_b.cells:
        if cell.metric.population == "shift":
            assert cell.hidden == "complementary", cell  # else total - B = A
    assert total.cell("people").value == 9 and total.cell("people").hidden is None
    assert total.cell("units_severe").value == sum(30 + n for n in range(9))
    assert total.cell("breaks_due").value == total.cell("breaks_taken").value == 18
    # The hidden values do not reach the page, the JSON or the CSV.
    client = logged_in(health)
    html = client.get(f"/health/departments/{team_a.department_id}/report/?{WEEK}").content.decode()
    assert "Suppressed: fewer than 5 people" in html and "it would let a suppressed figure be worked out" in html
    api = client.get(f"/api/v1/health/departments/{team_a.department_id}/report/?{WEEK}").json()
    rows = {row["label"]: row["figures"] for row in api["rows"]}
    assert rows["Team A"]["units_severe"] == {"suppressed": "primary"}
    assert rows["Team B"]["units_severe"] == {"suppressed": "complementary"}
    assert rows["All these teams"]["units_severe"] == {"value": float(sum(30 + n for n in range(9)))}
    body = client.get(f"/health/departments/{team_a.department_id}/report.csv?{WEEK}").content.decode()
    period_rows = [r for r in csv.reader(io.StringIO(body)) if r and r[0].startswith(str(MONDAY))]
    team_a_row = next(r for r in period_rows if r[1] == "Team A")
    assert set(team_a_row[2:20]) == {"suppressed"}
    # Focusing the page on the bigger team changes nothing: suppression is computed on the whole table.
    focused = client.get(f"/api/v1/health/departments/{team_a.department_id}/report/?{WEEK}&team={team_b.pk}")
    assert focused.json()["rows"] == api["rows"]


def test_figures_of_a_team_large_enough(health):
    crew = people("c", 5)
    team = make_team("Crew", department="Operations", members=crew, health=[health])
    # Reviewer 0: three shifts at or over 90 % of the 240-unit cap, one of them at the cap, with reveals.
    for day in range(3):
        past_shift(crew[0], MONDAY + timedelta(days=day), units={3: 220 + 10 * day}, reveals=2, breaks_due=3,
                   breaks_taken=2, auto=1)
    for user in crew[1:]:
        past_shift(user, MONDAY, units={1: 20, 2: 40}, breaks_due=2, breaks_taken=2)
    report = report_for(health, team.department)
    row = report.table.row(team.pk)
    figures = {c.metric.key: c.value for c in row.cells}
    assert not any(c.hidden for c in row.cells if c.metric.population == "shift")
    assert figures["people"] == 5 and figures["shifts"] == 7
    assert figures["units_severe"] == 220 + 230 + 240 and figures["units_low"] == 80 and figures["units_medium"] == 160
    assert figures["units_total"] == 690 + 240
    assert figures["caps_reached"] == 1 and figures["near_cap"] == 3
    assert figures["breaks_due"] == 9 + 8 and figures["breaks_taken"] == 6 + 8 and figures["breaks_auto"] == 3
    assert figures["reveals"] == 6
    severe_seconds = sum(ExposureEntry.objects.filter(severity=3).values_list("counted_seconds", flat=True))
    assert figures["severe_hours"] == pytest.approx(severe_seconds / 3600)
    assert figures["mood_people"] == 0 and figures["mood_mean"] is None


def test_check_in_figures_are_suppressed_among_those_who_answered(health):
    big, other = people("d", 7), people("e", 6)
    team_d = make_team("D", department="Ops", members=big, health=[health])
    team_e = make_team("E", department="Ops", members=other, health=[health])
    for user in big + other:
        past_shift(user, MONDAY, units={1: 10})
    when = NOW.replace(year=2026, month=3, day=3)
    with time_machine.travel(when, tick=False):
        for user in big[:3]:  # only 3 of team D answered
            services.checkin_record(user=user, kind="after_break", mood=2)
        for user in other:
            services.checkin_record(user=user, kind="after_break", mood=4)
            services.checkin_record(user=user, kind="who5", who5_answers=[3, 3, 3, 3, 3])
    report = report_for(health, team_d.department)
    d, e, total = (report.table.row(key) for key in (team_d.pk, team_e.pk, reports.TOTAL))
    assert d.cell("mood_mean").hidden == "primary" and e.cell("mood_mean").hidden == "complementary"
    assert total.cell("mood_mean").hidden is None
    assert total.cell("mood_mean").value == pytest.approx((3 * 2 + 6 * 4) / 9)
    assert e.cell("who5_mean").value == 60 and e.cell("who5_people").value == 6
    assert d.cell("people").hidden is None  # the exposure figures of 7 people are fine


def test_a_period_counts_its_weakest_week(health):
    crew = people("f", 6)
    team = make_team("F", department="Ops", members=crew, health=[health])
    for user in crew:
        past_shift(user, MONDAY, units={1: 10})
    for user in crew[:4]:  # only four of them worked the next week
        past_shift(user, MONDAY + timedelta(days=7), units={1: 10})
    two_weeks = report_for(health, team.department, period="custom", start=MONDAY.isoformat(),
                           end=(MONDAY + timedelta(days=8)).isoformat())
    assert two_weeks.period.weeks == [MONDAY, MONDAY + timedelta(days=7)]
    assert two_weeks.table.row(team.pk).cell("units_low").hidden == "primary"
    # The first week alone is fine; so "two weeks minus the first" cannot reveal the small second week.
    assert report_for(health, team.department).table.row(team.pk).cell("units_low").hidden is None
    assert two_weeks.weekly[MONDAY + timedelta(days=7)].row(team.pk).cell("units_low").hidden == "primary"


def test_people_are_counted_once_over_several_weeks(health):
    crew = people("g", 5)
    team = make_team("G", department="Ops", members=crew, health=[health])
    for week in range(3):
        for user in crew:
            past_shift(user, MONDAY + timedelta(weeks=week), units={2: 10})
    report = report_for(health, team.department, period="custom", start=MONDAY.isoformat(),
                        end=(MONDAY + timedelta(days=20)).isoformat())
    row = report.table.row(team.pk)
    assert (row.cell("people").value, row.cell("shifts").value, row.cell("units_medium").value) == (5, 15, 150)


def test_periods_are_whole_weeks():
    today = date(2026, 3, 18)
    assert reports.period_from({}, today=today) == reports.Period("week", date(2026, 3, 9), date(2026, 3, 15))
    week = reports.period_from({"period": "week", "start": "2026-03-05"}, today=today)
    assert (week.start, week.end) == (date(2026, 3, 2), date(2026, 3, 8))
    month = reports.period_from({"period": "month", "month": "2026-03"}, today=today)
    assert month.weeks == [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16), date(2026, 3, 23),
                           date(2026, 3, 30)] and month.end == date(2026, 4, 5)
    custom = reports.period_from({"period": "custom", "start": "2026-02-04", "end": "2026-02-17"}, today=today)
    assert (custom.start, custom.end) == (date(2026, 2, 2), date(2026, 2, 22))
    # By default, the month the last complete week starts in, whatever day of the week the month began on: on the
    # first days of a month the report still holds the week just finished (Monday 7 Dec 2026: Nov 30 - Dec 6).
    for day, first, last in ((date(2026, 12, 7), date(2026, 11, 2), date(2026, 12, 6)),
                             (date(2026, 3, 18), date(2026, 3, 2), date(2026, 4, 5)),
                             (date(2027, 2, 1), date(2027, 1, 4), date(2027, 1, 31))):
        default = reports.period_from({"period": "month"}, today=day)
        assert (default.start, default.end) == (first, last)
        assert week_start(day) - timedelta(weeks=1) in default.weeks
    assert len(week.trend_weeks) == 8 and week.trend_weeks[-1] == week.start
    for bad in ({"period": "custom", "start": "2026-03-10", "end": "2026-03-01"}, {"period": "year"},
                {"period": "week", "start": "soon"}, {"period": "custom", "start": "2025-01-01", "end": "2026-01-01"}):
        with pytest.raises(reports.PeriodError):
            reports.period_from(bad, today=today)


def test_every_view_and_export_is_audited(department_of_nine, health):
    team_a, _ = department_of_nine
    client = logged_in(health)
    base = f"/health/departments/{team_a.department_id}"
    for url in (f"{base}/report/?{WEEK}&team={team_a.pk}", f"{base}/report.csv?{WEEK}", f"{base}/report.pdf?{WEEK}",
                f"/api/v1/health/departments/{team_a.department_id}/report/?{WEEK}", "/health/follow-up/"):
        assert client.get(url).status_code == 200, url
    rows = list(DataAccess.objects.order_by("pk").values_list("what", "viewer", "department", "team", "period_start",
                                                              "subject"))
    assert [r[0] for r in rows] == ["report_page", "report_csv", "report_pdf", "report_api", "followup"]
    assert all(r[1] == health.pk and r[5] is None for r in rows)
    assert rows[0][2:5] == (team_a.department_id, team_a.pk, MONDAY)
    assert rows[1][3] is None and rows[1][4] == MONDAY


def test_exports_are_private_downloads(department_of_nine, health):
    team_a, _ = department_of_nine
    client = logged_in(health)
    for suffix, kind in (("csv", "text/csv"), ("pdf", "application/pdf")):
        response = client.get(f"/health/departments/{team_a.department_id}/report.{suffix}?{WEEK}")
        assert response["Content-Type"].startswith(kind)
        assert response["Cache-Control"] == "no-store" and "attachment" in response["Content-Disposition"]
    bad = client.get(f"/health/departments/{team_a.department_id}/report.csv?period=week&start=never")
    assert bad.status_code == 400


def test_the_pdf_opens_and_shows_the_chart(department_of_nine, health, tmp_path: Path):
    team_a, _ = department_of_nine
    pdf = logged_in(health).get(f"/health/departments/{team_a.department_id}/report.pdf?{WEEK}").content
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-1024:]
    pdftoppm, pdftotext = shutil.which("pdftoppm"), shutil.which("pdftotext")
    if pdftoppm is None or pdftotext is None:
        if REQUIRE_SERVICES:
            pytest.fail("VEIL_REQUIRE_SERVICES=1 but pdftoppm/pdftotext (Debian's poppler-utils) are missing")
        pytest.skip("pdftoppm is not installed (apt-get install -y poppler-utils)")
    source = tmp_path / "report.pdf"
    source.write_bytes(pdf)
    subprocess.run([pdftoppm, "-png", "-r", "60", "-f", "1", "-l", "1", str(source), str(tmp_path / "page")],
                   check=True, timeout=60)
    page = Image.open(next(tmp_path.glob("page*.png"))).convert("RGB")
    # Not type-checked below: Pillow types getcolors for every mode; this page is RGB
    colours: list[tuple[int, tuple[int, int, int]]] = page.getcolors(maxcolors=1_000_000) or []  # type: ignore[assignment]
    severe = sum(count for count, rgb in colours if _near(rgb, (0x1F, 0x4F, 0x4A)))
    lighter = sum(count for count, rgb in colours if _near(rgb, (0xC9, 0xD6, 0xD3)))
    assert severe > 150 and lighter > 20, (severe, lighter)  # the stacked bar of the week is drawn
    text = subprocess.run([pdftotext, "-layout", str(source), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    assert "Exposure report: Operations" in text and "Team A" in text and "All these teams" in text
    assert "fewer than 5 people are suppressed" in text
    for user in team_a.memberships.all():
        assert user.user.username not in text


def _near(rgb: tuple[int, int, int], target: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(rgb, target, strict=True))


def test_the_page_shows_charts_and_a_period_picker(department_of_nine, health):
    team_a, _ = department_of_nine
    html = logged_in(health).get(f"/health/departments/{team_a.department_id}/report/?{WEEK}").content.decode()
    assert html.count('<svg class="chart"') == 3 and "<title id=\"chart-exposure-t\">" in html
    assert 'name="period"' in html and "sev-3" in html
    assert "<script" not in html.split("<main")[1]  # the report needs no script
    month = logged_in(health).get(f"/health/departments/{team_a.department_id}/report/?period=month&month=2026-03")
    assert month.status_code == 200 and "March 2026" in month.content.decode()
    bad = logged_in(health).get(f"/health/departments/{team_a.department_id}/report/?period=custom&start=x&end=y")
    assert bad.status_code == 302


def test_minimum_group_size_can_be_raised(department_of_nine, health, settings):
    settings.VEIL_MIN_GROUP_SIZE = 10
    team_a, _ = department_of_nine
    report = report_for(health, team_a.department)
    assert report.table.row(reports.TOTAL).cell("people").hidden == "primary"  # 9 < 10


def test_an_oh_professional_sees_only_the_teams_assigned_to_them(department_of_nine, health):
    team_a, team_b = department_of_nine
    team_b.health_staff.remove(health)
    api = logged_in(health).get(f"/api/v1/health/departments/{team_a.department_id}/report/?{WEEK}").json()
    assert [row["label"] for row in api["rows"]] == ["Team A", "Total"]
    assert all(value == {"suppressed": "primary"} or key.startswith(("mood", "who5"))
               for row in api["rows"] for key, value in row["figures"].items())
    other = make_user("olga", "occupational_health")
    assert logged_in(other).get(f"/health/departments/{team_a.department_id}/report/").status_code == 404
