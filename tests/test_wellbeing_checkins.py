"""Check-ins are health data: only the person and occupational health read them, every read is logged, nobody else
gets them (not team leads, not administrators: not through pages, the admin, the ORM, or the export), and they are
deleted after the retention period."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.management import call_command

from core.errors import ReviewError
from tests.helpers.factories import logged_in
from tests.helpers.wellbeing import T0
from wellbeing import health_access, selectors, services, tasks
from wellbeing.models import CheckIn, CheckInRead, CheckInReadRefused, Department, Team, TeamMembership

pytestmark = pytest.mark.django_db



@pytest.fixture
def answered(moderator):
    services.checkin_record(user=moderator, kind="after_break", mood=2)
    services.checkin_record(user=moderator, kind="who5", who5_answers=[1, 2, 2, 1, 3])
    return moderator


def test_answers_are_validated_and_who5_is_scored(moderator):
    services.checkin_record(user=moderator, kind="who5", who5_answers=[5, 4, 3, 2, 1])
    services.checkin_record(user=moderator, kind="shift_end", mood=5)
    for bad in ({"kind": "who5", "who5_answers": [5, 5, 5, 5]}, {"kind": "who5", "who5_answers": [6, 0, 0, 0, 0]},
                {"kind": "after_break", "mood": 0}, {"kind": "after_break", "mood": 6}, {"kind": "nope", "mood": 3}):
        with pytest.raises(ReviewError):
            services.checkin_record(user=moderator, **bad)
    rows = selectors.checkins_read(subject=moderator, reader=moderator, purpose="test")
    who5 = next(r for r in rows if r.kind == "who5")
    assert (who5.who5_raw, who5.who5_percent) == (15, 60)


def test_the_orm_refuses_to_load_answers_outside_the_logged_selector(answered):
    with pytest.raises(CheckInReadRefused):
        list(CheckIn.objects.all())
    with pytest.raises(CheckInReadRefused):
        CheckIn.objects.filter(user=answered).first()
    with pytest.raises(CheckInReadRefused):
        list(answered.checkins.values_list("mood", flat=True))
    assert CheckIn.objects.count() == 2  # counting reveals no answer
    assert not CheckInRead.objects.exists()


def test_the_person_and_occupational_health_may_read_and_every_read_is_logged(answered, health, admin_user):
    team = Team.objects.create(name="Crew", department=Department.objects.create(name="Trust"))
    TeamMembership.objects.create(team=team, user=answered)
    health_access.health_access_grant(team=team, staff=health, granted_by=admin_user)
    assert len(selectors.checkins_read(subject=answered, reader=answered, purpose="own page")) == 2
    assert len(selectors.checkins_read(subject=answered, reader=health, purpose="follow-up")) == 2
    logged = list(CheckInRead.objects.order_by("pk").values_list("reader_id", "subject_id", "purpose", "allowed",
                                                                  "rows"))
    assert logged == [(answered.pk, answered.pk, "own page", True, 2), (health.pk, answered.pk, "follow-up", True, 2)]


def test_leads_admins_and_other_moderators_are_refused_and_the_attempt_is_logged(answered, lead, admin_user,
                                                                                 moderator2):
    for reader in (lead, admin_user, moderator2):
        with pytest.raises(CheckInReadRefused):
            selectors.checkins_read(subject=answered, reader=reader, purpose="curious")
    refused = CheckInRead.objects.filter(allowed=False)
    assert sorted(refused.values_list("reader_id", flat=True)) == sorted([lead.pk, admin_user.pk, moderator2.pk])
    assert not CheckInRead.objects.filter(allowed=True).exists()


def test_a_superuser_never_reads_even_in_the_oh_group_and_a_teams_health_staff(answered, admin_user):
    """The issue-22 attack: an administrator adds itself to the OH group, then to the team's health staff."""
    admin_user.groups.add(Group.objects.get_or_create(name="occupational_health")[0])
    team = Team.objects.create(name="Crew", department=Department.objects.create(name="Trust"))
    TeamMembership.objects.create(team=team, user=answered)
    team.health_staff.add(admin_user)
    with pytest.raises(CheckInReadRefused):
        selectors.checkins_read(subject=answered, reader=admin_user, purpose="oh")
    assert CheckInRead.objects.filter(reader=admin_user, allowed=False).count() == 1


def test_the_admin_has_no_check_in_pages(answered, admin_user):
    client = logged_in(admin_user)
    index = client.get("/admin/").content.decode()
    assert "Check-in" not in index and "check-in" not in index.lower().replace("check-ins are", "")
    assert client.get("/admin/wellbeing/checkin/").status_code == 404
    assert client.get("/admin/wellbeing/checkinread/").status_code == 404
    assert client.get("/admin/wellbeing/personalpolicy/").status_code == 404


def test_a_leads_own_page_and_export_show_only_their_own(answered, lead):
    client = logged_in(lead)
    page = client.get(f"/wellbeing/?user={answered.pk}").content.decode()
    assert "No check-ins in the last 30 days" in page
    exported = client.get(f"/wellbeing/export.json?user={answered.pk}").json()
    assert exported["user"] == lead.username and exported["checkins"] == []
    csv_body = client.get("/wellbeing/export/checkins.csv").content.decode()
    assert csv_body == ""
    assert not CheckInRead.objects.filter(subject=answered).exists()


def test_the_moderators_page_shows_their_answers_and_logs_the_read(answered):
    page = logged_in(answered).get("/wellbeing/").content.decode()
    assert "2 out of 5" in page and "36 out of 100" in page
    assert "Weekly check-in" not in page  # done this week
    assert CheckInRead.objects.filter(reader=answered, subject=answered, purpose="own page").count() == 1


def test_check_ins_from_the_pages(moderator):
    client = logged_in(moderator)
    response = client.post("/wellbeing/check-in/", {"kind": "after_break", "mood": "4", "next": "/console/"})
    assert response.status_code == 302 and response["Location"] == "/console/"
    response = client.post("/wellbeing/check-in/", {"kind": "after_break", "mood": "4", "next": "https://evil.test/"})
    assert response["Location"] == "/wellbeing/"
    assert client.post("/wellbeing/check-in/", {"kind": "who5", "mood": "4"}).status_code == 404
    answers = {f"q{n}": "2" for n in range(5)}
    page = client.post("/wellbeing/check-in/weekly/", answers).content.decode()
    assert "40 out of 100" in page and "occupational health" in page.lower() and "low side" in page
    assert CheckIn.objects.count() == 3


def test_retention_deletes_old_check_ins_and_old_read_logs(moderator, settings):
    settings.VEIL_CHECKIN_RETENTION_DAYS = 365
    with time_machine.travel(T0, tick=False) as clock:
        services.checkin_record(user=moderator, kind="after_break", mood=3)
        selectors.checkins_read(subject=moderator, reader=moderator, purpose="own page")
        clock.move_to(T0 + timedelta(days=200))
        services.checkin_record(user=moderator, kind="after_break", mood=4)
        clock.move_to(T0 + timedelta(days=366))
        assert tasks.checkins_purge_expired.delay().get() == 1
        assert CheckIn.objects.count() == 1 and not CheckInRead.objects.exists()
        clock.move_to(T0 + timedelta(days=566))
        call_command("purge_expired_checkins", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert CheckIn.objects.count() == 0


def test_the_retention_task_is_scheduled():
    from config.celery import app

    entry = app.conf.beat_schedule["purge-expired-checkins"]
    assert entry["task"] == tasks.checkins_purge_expired.name


def test_deleting_an_account_deletes_its_check_ins(answered):
    answered.delete()
    assert CheckIn.objects.count() == 0
