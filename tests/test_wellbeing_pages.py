"""Wellbeing pages: who reaches them, My wellbeing, the export, personal limits, and the audited admin policy."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from review.services import item_claim
from tests.helpers.factories import make_queue
from tests.helpers.wellbeing import T0, finish, ready_item, set_policy
from wellbeing import selectors
from wellbeing.models import OrganisationPolicy, PersonalPolicy, PolicyChange, QueuePolicy, Shift

pytestmark = pytest.mark.django_db

PAGES = ["/wellbeing/", "/wellbeing/break/", "/wellbeing/break/state/", "/wellbeing/check-in/weekly/",
         "/wellbeing/limits/", "/wellbeing/export.json", "/wellbeing/export/exposure.csv"]
POSTS = ["/wellbeing/break/start/", "/wellbeing/break/end/", "/wellbeing/shift/start/", "/wellbeing/shift/end/",
         "/wellbeing/check-in/"]


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", PAGES + POSTS)
def test_anonymous_is_sent_to_login(path):
    response = Client().post(path) if path in POSTS else Client().get(path)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize("path", PAGES + POSTS)
def test_people_who_do_not_review_are_refused(path, health, requester, stranger):
    for user in (health, requester, stranger):
        client = logged_in(user)
        response = client.post(path) if path in POSTS else client.get(path)
        assert response.status_code == 403, (user, path)


def test_my_wellbeing_shows_a_calm_gauge_not_a_countdown(moderator):
    set_policy(item_seconds_min=60, item_seconds_max=60)
    queue = make_queue()
    ready_item(queue, severity=3)
    ready_item(queue, severity=2)
    client = logged_in(moderator)
    with time_machine.travel(T0, tick=False):
        finish(item_claim(reviewer=moderator, queue=queue))
        finish(item_claim(reviewer=moderator, queue=queue))
        html = client.get("/wellbeing/").content.decode()
    assert "<meter" in html and 'value="2"' in html and 'max="240"' in html  # 1.5 min rounds to 2 of 240
    assert "gauge__fill--0" in html  # 2 of 240 is under 5 %
    assert "Light so far" in html and "of 4 h a shift" in html
    assert "On shift since 09:00" in html and "17:00" in html
    for pressure in ("remaining", "left:", "countdown", "hurry"):
        assert pressure not in html.lower()


def test_export_has_all_of_my_data_and_nothing_of_anyone_elses(moderator, moderator2):
    queue = make_queue()
    for _ in range(3):
        ready_item(queue, severity=1)
    with time_machine.travel(T0, tick=False):
        finish(item_claim(reviewer=moderator, queue=queue))
        finish(item_claim(reviewer=moderator2, queue=queue))
    response = logged_in(moderator).get("/wellbeing/export.json")
    assert response["Cache-Control"] == "no-store" and "attachment" in response["Content-Disposition"]
    data = response.json()
    assert set(data) >= {"shifts", "exposure", "breaks", "checkins", "limits"}
    assert len(data["exposure"]) == 1 and len(data["shifts"]) == 1
    assert data["exposure"][0]["exposure"] == 4  # low: 25 % of 15 s, rounded up
    rows = list(csv.DictReader(io.StringIO(logged_in(moderator).get("/wellbeing/export/exposure.csv").content
                                           .decode())))
    assert len(rows) == 1 and rows[0]["severity"] == "1"
    assert logged_in(moderator).get("/wellbeing/export/secrets.csv").status_code == 404


def test_shift_start_and_end_from_the_page(moderator):
    client = logged_in(moderator)
    with time_machine.travel(T0, tick=False) as clock:
        response = client.post("/wellbeing/shift/start/")
        assert response.status_code == 302 and response["Location"] == "/console/"
        clock.shift(timedelta(hours=1))
        response = client.post("/wellbeing/shift/end/")
        assert response["Location"] == "/wellbeing/?ended=1"
        html = client.get(response["Location"]).content.decode()
    assert "Your shift has ended" in html and 'value="shift_end"' in html
    assert Shift.objects.get(reviewer=moderator).end_reason == "manual"


def test_personal_limits_only_stricter_and_audited(moderator):
    client = logged_in(moderator)
    response = client.post("/wellbeing/limits/", {"exposure_cap_units": "180", "break_every": "40",
                                                  "opt_out": ["self_harm", "bogus"]})
    assert response.status_code == 302
    mine = PersonalPolicy.objects.get(user=moderator)
    assert mine.exposure_cap_units == 180 and mine.break_every == timedelta(minutes=40)
    assert mine.opted_out_categories == ["self_harm"]
    change = PolicyChange.objects.get(layer="personal")
    assert change.subject == moderator and change.after["exposure_cap_units"] == 180
    assert selectors.policy_effective(reviewer=moderator).break_every == timedelta(minutes=40)

    html = client.post("/wellbeing/limits/", {"exposure_cap_units": "400"}, follow=True).content.decode()
    assert "never looser" in html
    html = client.post("/wellbeing/limits/", {"break_length": "2"}, follow=True).content.decode()
    assert "between 5 min and 1 h" in html
    assert PersonalPolicy.objects.get(user=moderator).exposure_cap_units == 180
    assert PolicyChange.objects.count() == 1


def test_admins_edit_the_organisation_policy_validated_and_audited(admin_user):
    client = logged_in(admin_user)
    OrganisationPolicy.objects.get_or_create(pk=1)
    url = "/admin/wellbeing/organisationpolicy/1/change/"
    form = {
        "shift_length": "08:00:00", "day_start": "", "day_cutoff": "", "rest_between_shifts": "11:00:00",
        "exposure_cap_units": "200", "weight_none": "10", "weight_low": "25", "weight_medium": "50",
        "near_cap_percent": "75", "severe_per_hour": "12", "cooldown": "00:01:00", "interleave_benign": "on",
        "break_every": "00:50:00", "break_length": "00:10:00", "break_window": "00:05:00",
        "item_seconds_min": "15", "item_seconds_max": "300", "reveal_extra_percent": "100",
    }
    assert client.post(url, form).status_code == 302
    change = PolicyChange.objects.get(layer="organisation")
    assert (change.before, change.after, change.changed_by) == ({"exposure_cap_units": 240},
                                                                {"exposure_cap_units": 200}, admin_user)
    for bad in ({"break_length": "00:01:00"}, {"weight_low": "5"}, {"exposure_cap_units": "5000"}):
        response = client.post(url, {**form, **bad})
        assert response.status_code == 200 and "errornote" in response.content.decode(), bad
    assert OrganisationPolicy.objects.get().exposure_cap_units == 200
    assert PolicyChange.objects.count() == 1
    assert client.get("/admin/wellbeing/organisationpolicy/add/").status_code == 403


def test_admins_set_queue_policies_stricter_only_and_audited(admin_user):
    queue = make_queue()
    client = logged_in(admin_user)
    form = {"queue": str(queue.pk), "specialist_category": "self_harm", "exposure_cap_units": "120",
            "severe_per_hour": "", "cooldown": "", "weight_none": "", "weight_low": "", "weight_medium": ""}
    assert client.post("/admin/wellbeing/queuepolicy/add/", form).status_code == 302
    assert PolicyChange.objects.get(layer="queue").after["exposure_cap_units"] == 120
    response = client.post("/admin/wellbeing/queuepolicy/add/", {**form, "queue": str(make_queue().pk),
                                                                 "exposure_cap_units": "999"})
    assert response.status_code == 200 and "stricter" in response.content.decode()
    assert QueuePolicy.objects.count() == 1


def test_the_nav_offers_a_break_on_every_console_page(moderator):
    html = logged_in(moderator).get("/console/").content.decode()
    assert 'href="/wellbeing/break/"' in html and "Take a break" in html and 'href="/wellbeing/"' in html


def test_my_wellbeing_shows_the_latest_check_ins_and_folds_older_ones_away(moderator):
    from django.utils import timezone

    from wellbeing.services import checkin_record

    now = timezone.now()
    for hours in range(12):  # newest has mood 5, then 4, 3, ... cycling
        checkin_record(user=moderator, kind="after_break", mood=5 - hours % 5, now=now - timedelta(hours=hours + 1))
    html = logged_in(moderator).get("/wellbeing/").content.decode()
    latest, _, older = html.partition('<details class="wb-older">')
    assert older, "older check-ins should be folded into a <details> element"
    assert "Earlier check-ins in the last 30 days (4)" in older
    assert latest.count("out of 5</td>") == 8
    assert older.split("</details>")[0].count("out of 5</td>") == 4
