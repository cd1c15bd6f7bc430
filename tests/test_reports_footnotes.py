"""Issue 21, point 7: in OH reports each hidden figure gives its own reason (a team of 5 hidden to protect a smaller
one does not read "fewer than 5 people"), and the PDF shows the same charts as the page, the mood chart included,
with the same footnote."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from oversight import reports
from tests.helpers.factories import logged_in, pdf_text
from tests.helpers.lead import MONDAY, NOW, make_team, past_shift, people
from wellbeing import services

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
WEEK = f"period=week&start={MONDAY.isoformat()}"


@pytest.fixture
def department(health):
    """Team A: 4 people; team B: 5 people, of whom 3 checked in that week."""
    small, larger = people("a", 4), people("b", 5)
    team_a = make_team("Team A", department="Operations", members=small, health=[health])
    make_team("Team B", department="Operations", members=larger, health=[health])
    for n, user in enumerate(small + larger):
        past_shift(user, MONDAY + timedelta(days=n % 5), units={0: 10, 3: 30 + n}, breaks_due=2, breaks_taken=2)
    with time_machine.travel(NOW.replace(day=3), tick=False):
        for user in larger[:3]:
            services.checkin_record(user=user, kind="after_break", mood=3)
    return team_a.department


def test_each_hidden_figure_gives_its_own_reason(department, health):
    html = logged_in(health).get(f"/health/departments/{department.pk}/report/?{WEEK}").content.decode()
    notes = html[html.index('class="plain-list report-notes"'):]
    notes = notes[:notes.index("</ul>")]
    team_b = notes[notes.index("<strong>Team B</strong>"):]
    team_b = team_b[:team_b.index("</li>")]
    # Team B has 5 people: its exposure is hidden only so that Team A's cannot be worked out from the total ...
    assert "Exposure: severe" in team_b and "hidden because it would let a suppressed figure be worked out" in team_b
    # ... and its mood, because only 3 of them answered.
    assert "Mood after breaks and shifts (1 to 5)" in team_b and "hidden because fewer than 5 people answered" in team_b
    assert "fewer than 5 people in it" not in team_b
    team_a = notes[notes.index("<strong>Team A</strong>"):]
    assert "hidden because fewer than 5 people in it" in team_a[:team_a.index("</li>")]
    # Each dash says its own reason too.
    assert 'title="Suppressed: fewer than 5 people answered"' in html


def test_the_pdf_has_the_pages_charts_and_footnote(department, health):
    client = logged_in(health)
    report = reports.build_report(department=department, teams=list(department.teams.all()),
                                  period=reports.period_from({"period": "week", "start": MONDAY.isoformat()},
                                                             today=NOW.date()))
    html = client.get(f"/health/departments/{department.pk}/report/?{WEEK}").content.decode()
    pdf = client.get(f"/health/departments/{department.pk}/report.pdf?{WEEK}").content
    text = " ".join(pdf_text(pdf).split())
    assert set(report.charts) == {"exposure", "mood", "who5"}
    for chart in report.charts.values():
        assert chart.title in html
        assert " ".join(chart.title.split()) in text, chart.title  # every chart of the page, mood included
    assert "hidden because it would let a suppressed figure be worked out from a total" in text
    assert "hidden because fewer than 5 people answered" in text
