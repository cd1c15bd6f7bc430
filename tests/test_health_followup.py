"""Follow-up for occupational health: patterns that need attention, named only with consent (given and withdrawn on
the reviewer's own page, without consequence), otherwise counted; the person page and its audit, which the reviewer
sees; and the admin pages for teams, which show no health data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from oversight import reports, team_services
from tests.helpers.factories import logged_in, make_user
from tests.helpers.lead import MONDAY, NOW, make_team, past_shift, people
from wellbeing import own_data, services
from wellbeing.models import CheckInRead, DataAccess, FollowUpConsent, PolicyChange, TeamPolicy

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
PERIOD = reports.Period("custom", MONDAY, MONDAY + timedelta(days=13))


@pytest.fixture
def team(health):
    crew = people("p", 8)
    team = make_team("Crew", department="Ops", members=crew, health=[health])
    heavy_consenting, heavy_other, low_consenting = crew[0], crew[1], crew[2]
    for user in (heavy_consenting, heavy_other):
        for day in range(3):  # three shifts at >= 90 % of the 240-unit cap in one week
            past_shift(user, MONDAY + timedelta(days=day), units={3: 220})
    for user in crew[2:]:
        past_shift(user, MONDAY, units={1: 40})
    with time_machine.travel(datetime(2026, 3, 4, 12, tzinfo=UTC), tick=False) as clock:
        for mood in (2, 1, 2):
            services.checkin_record(user=low_consenting, kind="after_break", mood=mood)
            clock.shift(timedelta(hours=2))
        services.checkin_record(user=crew[3], kind="after_break", mood=2)  # one low answer is not a pattern
    for user in (heavy_consenting, low_consenting):
        own_data.followup_consent_set(user=user, given=True)
    return team, crew


def test_named_with_consent_and_counted_without(team):
    team_obj, _crew = team
    found = reports.followup(teams=[team_obj], period=PERIOD)
    named = {p.user.username: p.reasons for p in found.named}
    assert set(named) == {"p0", "p2"}
    assert "3 or more shifts at ≥ 90 % of the cap" in named["p0"][0]
    assert "last 3 check-ins in the period were low" in named["p2"][0]
    assert (found.screened_unnamed, found.flagged_unnamed, found.flagged_total) == (6, 1, 3)


def test_withdrawing_consent_turns_a_name_into_a_count(team):
    team_obj, crew = team
    own_data.followup_consent_set(user=crew[0], given=False)
    found = reports.followup(teams=[team_obj], period=PERIOD)
    assert [p.user.username for p in found.named] == ["p2"]
    assert (found.screened_unnamed, found.flagged_unnamed) == (7, 2)


def test_counts_are_withheld_for_fewer_than_five_or_when_they_would_tell_about_each(health):
    crew = people("q", 5)
    team_obj = make_team("Small", department="Ops", members=crew, health=[health])
    for user in crew:
        past_shift(user, MONDAY, units={1: 10})
    own_data.followup_consent_set(user=crew[0], given=True)
    found = reports.followup(teams=[team_obj], period=PERIOD)
    assert found.screened_unnamed == 4 and found.flagged_unnamed is None
    own_data.followup_consent_set(user=crew[0], given=False)
    for user in crew:  # everyone heavy: "5 of 5" would say it about each of them
        for day in range(1, 4):
            past_shift(user, MONDAY + timedelta(days=day), units={3: 230})
    assert reports.followup(teams=[team_obj], period=PERIOD).flagged_unnamed is None
    html = logged_in(health).get("/health/follow-up/?period=custom&start=2026-03-02&end=2026-03-15").content.decode()
    assert "The count is withheld" in html


def test_the_follow_up_page_names_and_audits(team, health):
    html = logged_in(health).get("/health/follow-up/?period=custom&start=2026-03-02&end=2026-03-15").content.decode()
    assert ">p0<" in html and ">p2<" in html and ">p1<" not in html
    assert "<strong>1</strong> of the 6 people" in html
    audited = set(DataAccess.objects.filter(what="followup").values_list("subject__username", flat=True))
    assert audited == {"p0", "p2"}


def test_the_person_page_only_with_consent_and_every_read_is_shown_to_them(team, health):
    _team, crew = team
    client = logged_in(health)
    assert client.get(f"/health/people/{crew[1].pk}/").status_code == 404  # heavy, but did not consent
    assert client.get("/health/people/999999/").status_code == 404
    with time_machine.travel(NOW, tick=False):
        page = client.get(f"/health/people/{crew[2].pk}/?period=custom&start=2026-03-02&end=2026-03-15")
        own = logged_in(crew[2]).get("/wellbeing/").content.decode()
    assert page.status_code == 200
    html = page.content.decode()
    assert "2 out of 5" in html and "1 out of 5" in html
    read = CheckInRead.objects.exclude(reader=crew[2]).get(subject=crew[2])
    assert (read.reader, read.purpose, read.allowed, read.rows) == (health, "OH follow-up", True, 3)
    assert DataAccess.objects.filter(what="person", subject=crew[2], viewer=health).count() == 1
    bad = client.get(f"/health/people/{crew[2].pk}/?period=custom&start=2026-03-10&end=2026-03-01")
    assert bad.status_code == 302 and DataAccess.objects.filter(what="person").count() == 1
    looks = own[own.index('id="looks-title"'):own.index('id="data-title"')]
    assert "Individual follow-up page" in looks and "Read your check-in answers (OH follow-up)" in looks
    assert ">hana<" in looks


def test_consent_is_given_and_withdrawn_on_the_wellbeing_page(moderator):
    client = logged_in(moderator)
    page = client.get("/wellbeing/").content.decode()
    assert "You are not named to occupational health" in page and "no consequence of any kind" in page
    response = client.post("/wellbeing/follow-up-consent/", {"consent": "yes"}, follow=True)
    assert "You agreed that occupational health may contact you by name" in response.content.decode()
    client.post("/wellbeing/follow-up-consent/", {"consent": "yes"})  # unchanged: not recorded twice
    response = client.post("/wellbeing/follow-up-consent/", {"consent": "no"}, follow=True)
    assert "will not see your name" in response.content.decode()
    assert list(FollowUpConsent.objects.order_by("at", "pk").values_list("given", flat=True)) == [True, False]
    assert not own_data.consent_given(user=moderator)


def test_consent_reaches_nobody_but_the_follow_up_list(team, lead, admin_user):
    team_obj, crew = team
    team_obj.leads.add(lead)
    services.shift_start(reviewer=crew[0])
    payload = logged_in(lead).get(f"/api/v1/lead/teams/{team_obj.pk}/").content.decode()
    assert "consent" not in payload.lower()
    client = logged_in(admin_user)
    assert client.get("/admin/wellbeing/followupconsent/").status_code == 404
    index = client.get("/admin/").content.decode()
    assert "consent" not in index.lower()


def test_admins_manage_teams_without_seeing_health_data(team, admin_user, lead, health):
    team_obj, crew = team
    client = logged_in(admin_user)
    page = client.get(f"/admin/wellbeing/team/{team_obj.pk}/change/").content.decode()
    assert "Crew" in page
    for private in ("mood", "who5", "check-in", "checkin", "consent"):
        assert private not in page.lower(), private
    form = {"name": "Night", "department": str(team_obj.department_id), "leads": [str(crew[5].pk)],
            "health_staff": [str(health.pk)], "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    response = client.post("/admin/wellbeing/team/add/", form)
    assert response.status_code == 200 and "Not in the team_lead group: p5" in response.content.decode()
    form["leads"] = [str(lead.pk)]
    form.update({"memberships-TOTAL_FORMS": "1", "memberships-0-user": str(crew[0].pk)})
    response = client.post("/admin/wellbeing/team/add/", form)
    assert response.status_code == 200 and "already exists" in response.content.decode()  # one team per reviewer
    newcomer = make_user("nova", "moderator")
    form["memberships-0-user"] = str(newcomer.pk)
    assert client.post("/admin/wellbeing/team/add/", form).status_code == 302
    assert newcomer.team_membership.team.name == "Night"


def test_admins_may_loosen_a_team_policy_back_but_never_past_the_organisation(team, admin_user, lead):
    team_obj, _crew = team
    team_services.team_policy_tighten(lead=lead, team=team_obj, values={"exposure_cap_units": 150})
    policy = TeamPolicy.objects.get(team=team_obj)
    client = logged_in(admin_user)
    url = f"/admin/wellbeing/teampolicy/{policy.pk}/change/"
    form = {"team": str(team_obj.pk), "shift_length": "", "exposure_cap_units": "200", "severe_per_hour": "",
            "cooldown": "", "break_every": "", "break_length": ""}
    assert client.post(url, form).status_code == 302
    assert TeamPolicy.objects.get().exposure_cap_units == 200
    response = client.post(url, {**form, "exposure_cap_units": "400"})
    assert response.status_code == 200 and "stricter" in response.content.decode()
    changes = PolicyChange.objects.filter(layer="team").order_by("at", "pk")
    assert list(changes.values_list("changed_by__username", flat=True)) == ["lee", "root"]
