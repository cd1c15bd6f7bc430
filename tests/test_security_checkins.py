"""Issue 22, point 2: administrators cannot read check-in answers. Occupational-health access to a team is granted
only by an audited action (`manage.py health_access`) that the team's members see on their wellbeing page; a
superuser is refused by the check-in guard itself; and no query path gets past the check-in queryset guard."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Prefetch

from tests.helpers.factories import logged_in, make_user
from wellbeing import health_access, own_data, selectors, services
from wellbeing.models import (
    CheckIn,
    CheckInRead,
    CheckInReadRefused,
    DataAccess,
    Department,
    HealthAccessGrant,
    Team,
    TeamMembership,
)

pytestmark = pytest.mark.django_db



@pytest.fixture
def crew(moderator) -> tuple[Team, User]:
    """A team with one reviewer who answered two check-ins and agreed to be named to occupational health."""
    team = Team.objects.create(name="Crew", department=Department.objects.create(name="Trust"))
    TeamMembership.objects.create(team=team, user=moderator)
    services.checkin_record(user=moderator, kind="after_break", mood=2)
    services.checkin_record(user=moderator, kind="who5", who5_answers=[1, 2, 2, 1, 3])
    own_data.followup_consent_set(user=moderator, given=True)
    return team, moderator


def test_the_reported_attack_two_admin_saves_no_longer_open_check_ins(crew, admin_user) -> None:
    team, worker = crew
    client = logged_in(admin_user)
    # Save 1: the administrator puts itself in the OH group (the user form's groups; done here directly).
    admin_user.groups.add(Group.objects.get_or_create(name="occupational_health")[0])
    # Save 2: the team's form, with itself as health staff. The field is no longer editable: nothing changes.
    form = {"name": team.name, "department": str(team.department_id), "leads": [],
            "health_staff": [str(admin_user.pk)], "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "1",
            "memberships-0-id": str(worker.team_membership.pk), "memberships-0-team": str(team.pk),
            "memberships-0-user": str(worker.pk)}
    saved = client.post(f"/admin/wellbeing/team/{team.pk}/change/", form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert not team.health_staff.exists()
    page = client.get(f"/admin/wellbeing/team/{team.pk}/change/").content.decode()
    assert "manage.py health_access" in page
    # And the pages stay shut: no team in its care, the person page is a 404, nothing read.
    assert client.get("/health/").status_code == 200
    assert client.get(f"/health/people/{worker.pk}/").status_code == 404
    # Even a superuser put on the team's staff from a shell is refused by the guard, and the team sees the change.
    team.health_staff.add(admin_user)
    assert client.get(f"/health/people/{worker.pk}/").status_code == 404
    with pytest.raises(CheckInReadRefused):
        selectors.checkins_read(subject=worker, reader=admin_user, purpose="curious")
    assert not CheckInRead.objects.filter(allowed=True).exists()
    mine = logged_in(worker).get("/wellbeing/").content.decode()
    assert "Who can read your check-ins" in mine and "root" in mine and "outside health_access" in mine


def test_access_is_granted_by_the_audited_command_and_shown_to_the_team(crew, health, admin_user) -> None:
    team, worker = crew
    before = logged_in(worker).get("/wellbeing/").content.decode()
    assert "Nobody else" in before
    out = StringIO()
    call_command("health_access", "grant", health.username, "--team", "Crew", "--by", admin_user.username,
                 "--reason", "New OH nurse", stdout=out)
    assert "occupational health for Crew" in out.getvalue()
    grant = HealthAccessGrant.objects.get(team=team, staff=health, ended_at__isnull=True)
    assert grant.granted_by == admin_user and grant.how == "health_access" and grant.reason == "New OH nurse"
    page = logged_in(worker).get("/wellbeing/").content.decode()
    assert "Who can read your check-ins" in page and "hana" in page
    assert f"since {grant.granted_at.day} {grant.granted_at:%B %Y}" in page

    # Now OH reads (logged), through the follow-up page.
    person = logged_in(health).get(f"/health/people/{worker.pk}/")
    assert person.status_code == 200
    assert CheckInRead.objects.filter(reader=health, subject=worker, allowed=True, rows=2).exists()
    assert DataAccess.objects.filter(viewer=health, subject=worker).exists()

    call_command("health_access", "end", health.username, "--team", str(team.pk), "--by", admin_user.username,
                 stdout=StringIO())
    grant.refresh_from_db()
    assert grant.ended_at is not None and grant.ended_by == admin_user
    assert logged_in(health).get(f"/health/people/{worker.pk}/").status_code == 404
    assert "hana" not in logged_in(worker).get("/wellbeing/").content.decode().split("Who can read")[1][:600]


def test_the_command_refuses_superusers_and_accounts_outside_oh(crew, admin_user, lead) -> None:
    admin_user.groups.add(Group.objects.get_or_create(name="occupational_health")[0])
    with pytest.raises(CommandError, match="superuser"):
        call_command("health_access", "grant", admin_user.username, "--team", "Crew", "--by", admin_user.username)
    with pytest.raises(CommandError, match="occupational_health group"):
        call_command("health_access", "grant", lead.username, "--team", "Crew", "--by", admin_user.username)
    with pytest.raises(CommandError, match="--by"):
        call_command("health_access", "grant", lead.username, "--team", "Crew")
    assert not HealthAccessGrant.objects.exists()


def test_oh_staff_read_only_their_teams(crew, health, admin_user) -> None:
    team, worker = crew
    elsewhere = Team.objects.create(name="Other", department=team.department)
    health_access.health_access_grant(team=elsewhere, staff=health, granted_by=admin_user)
    with pytest.raises(CheckInReadRefused):
        selectors.checkins_read(subject=worker, reader=health, purpose="not my team")


# ---- no query path gets past the queryset guard ----------------------------------------------------------------------


QUERY_PATHS: dict[str, Any] = {
    "list": lambda: list(CheckIn.objects.all()),
    "iterator": lambda: list(CheckIn.objects.all().iterator()),
    "iterator_chunked": lambda: next(CheckIn.objects.filter(mood__isnull=False).iterator(chunk_size=1)),
    "values": lambda: list(CheckIn.objects.values("mood", "who5_raw")),
    "values_list": lambda: list(CheckIn.objects.values_list("mood", flat=True)),
    "get": lambda: CheckIn.objects.get(kind="after_break"),
    "first": lambda: CheckIn.objects.first(),
    "in_bulk": lambda: CheckIn.objects.in_bulk(),
    "raw": lambda: list(CheckIn.objects.raw("SELECT * FROM wellbeing_checkin")),
    "related_manager": lambda: list(User.objects.get(username="mo").checkins.all()),
    "related_iterator": lambda: list(User.objects.get(username="mo").checkins.iterator()),
    "prefetch": lambda: [list(u.checkins.all()) for u in User.objects.prefetch_related("checkins")],
    "prefetch_object": lambda: list(User.objects.prefetch_related(Prefetch("checkins", to_attr="answers"))),
    "bool": lambda: bool(CheckIn.objects.all()),
    "indexing": lambda: CheckIn.objects.all()[0],
}


@pytest.mark.parametrize("path", sorted(QUERY_PATHS))
def test_no_query_path_loads_answers_outside_the_logged_selector(crew, path: str) -> None:
    with pytest.raises(CheckInReadRefused):
        QUERY_PATHS[path]()
    assert not CheckInRead.objects.exists()


def test_dumpdata_cannot_export_check_ins(crew) -> None:
    out = StringIO()
    with pytest.raises((CommandError, CheckInReadRefused)):
        call_command("dumpdata", "wellbeing.checkin", stdout=out)
    assert '"mood"' not in out.getvalue()
    with pytest.raises((CommandError, CheckInReadRefused)):
        call_command("dumpdata", "wellbeing", stdout=StringIO())


def test_the_admin_has_no_path_to_check_ins(crew, admin_user) -> None:
    """No model admin, inline or list shows check-ins, and every admin list a superuser can open loads without
    touching them (a list that tried would fail with CheckInReadRefused, a 403)."""
    for model, model_admin in admin.site._registry.items():
        assert model is not CheckIn and model is not CheckInRead, model
        assert all(inline.model is not CheckIn for inline in model_admin.inlines), model
    client = logged_in(admin_user)
    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"who5" not in response.content.lower(), url
    assert client.get("/admin/wellbeing/checkin/").status_code == 404


def test_the_own_export_is_the_only_export_and_it_is_logged(crew, moderator2) -> None:
    _team, worker = crew
    mine = logged_in(worker).get("/wellbeing/export/checkins.csv")
    assert mine.status_code == 200 and mine.content.count(b"\n") == 3  # a header and two answers
    assert CheckInRead.objects.filter(reader=worker, subject=worker, purpose="export", rows=2).exists()
    # Another reviewer's export holds only their own (none): there is no parameter naming someone else.
    theirs = logged_in(moderator2).get(f"/wellbeing/export/checkins.csv?user={worker.pk}")
    assert theirs.status_code == 200 and theirs.content == b""


def test_reports_use_aggregates_only(crew, health, admin_user) -> None:
    """OH reports count and average in the database; they never need to load a row (the guard would refuse)."""
    team, _worker = crew
    for n in range(5):
        colleague = make_user(f"c{n}", "moderator")
        TeamMembership.objects.create(team=team, user=colleague)
        services.checkin_record(user=colleague, kind="after_break", mood=3)
    health_access.health_access_grant(team=team, staff=health, granted_by=admin_user)
    report = logged_in(health).get(f"/health/departments/{team.department_id}/report.csv")
    assert report.status_code == 200
    assert not CheckInRead.objects.exists()  # no answer was loaded for it
