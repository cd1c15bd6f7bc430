"""Who may reach the live team view and the OH reports: a role x endpoint denial matrix over pages, API, exports and
sockets (moderator, lead of another team, OH, admin, anonymous, and the rightful lead / OH professional), and
nothing is written or acted on for a refused request."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from config.asgi import application
from tests.helpers.factories import logged_in, make_user
from tests.helpers.lead import MONDAY, make_team, past_shift, people
from tests.helpers.realtime import session_cookie
from wellbeing import own_data, services
from wellbeing.models import DataAccess, LeadAction, PolicyChange

pytestmark = pytest.mark.usefixtures("fast_passwords")

ROLES = ("moderator", "other_lead", "health", "stranger_health", "admin", "anonymous", "own_lead", "team_health")


@pytest.fixture
def world(db: None) -> dict[str, Any]:
    members = people("m", 5)
    own_lead, other_lead = make_user("lena", "team_lead"), make_user("otto", "team_lead")
    health, stranger_health = make_user("hana", "occupational_health"), make_user("olga", "occupational_health")
    team = make_team("Riverbank", department="Ops", members=members, leads=[own_lead], health=[health])
    make_team("Harbour", department="Elsewhere", members=people("h", 2), leads=[other_lead], health=[stranger_health])
    for user in members:
        past_shift(user, MONDAY, units={1: 30})
    services.shift_start(reviewer=members[0])
    own_data.followup_consent_set(user=members[1], given=True)
    users: dict[str, User | None] = {
        "moderator": members[2], "other_lead": other_lead, "health": health, "stranger_health": stranger_health,
        "admin": make_user("root", None, superuser=True), "anonymous": None, "own_lead": own_lead,
        "team_health": health,
    }
    return {"team": team, "on_shift": members[0], "consented": members[1], "users": users}


def lead_endpoints(w: dict[str, Any]) -> list[tuple[str, str, str]]:
    team, on_shift = w["team"].pk, w["on_shift"].pk
    return [
        ("page", "GET", f"/lead/teams/{team}/"),
        ("page", "POST", f"/lead/teams/{team}/limits/"),
        ("page", "POST", f"/lead/teams/{team}/reviewers/{on_shift}/break/"),
        ("page", "POST", f"/lead/teams/{team}/reviewers/{on_shift}/end-shift/"),
        ("api", "GET", f"/api/v1/lead/teams/{team}/"),
        ("api", "POST", f"/api/v1/lead/teams/{team}/reviewers/{on_shift}/break/"),
        ("api", "POST", f"/api/v1/lead/teams/{team}/reviewers/{on_shift}/move/"),
    ]


def health_endpoints(w: dict[str, Any]) -> list[tuple[str, str, str]]:
    department, consented = w["team"].department_id, w["consented"].pk
    week = f"period=week&start={MONDAY.isoformat()}"
    return [
        ("page", "GET", f"/health/departments/{department}/report/?{week}"),
        ("export", "GET", f"/health/departments/{department}/report.csv?{week}"),
        ("export", "GET", f"/health/departments/{department}/report.pdf?{week}"),
        ("page", "GET", f"/health/people/{consented}/"),
        ("api", "GET", f"/api/v1/health/departments/{department}/report/?{week}"),
    ]


LEAD_EXPECTED: dict[str, int | str] = {
    "moderator": 403, "other_lead": 404, "health": 403, "stranger_health": 403, "admin": 404, "anonymous": "login",
    "own_lead": "ok", "team_health": 403,
}
HEALTH_EXPECTED: dict[str, int | str] = {
    "moderator": 403, "other_lead": 403, "health": "ok", "stranger_health": 404, "admin": 403, "anonymous": "login",
    "own_lead": 403, "team_health": "ok",
}


def request(user: User | None, method: str, url: str) -> Any:
    client = logged_in(user) if user is not None else Client()
    return client.post(url, {}) if method == "POST" else client.get(url)


def check(kind: str, response: Any, expected: int | str, role: str, url: str) -> None:
    if expected == "login":
        wanted = 401 if kind == "api" else 302
        assert response.status_code == wanted, (role, url, response.status_code)
        if wanted == 302:
            assert response["Location"].startswith("/login/")
        else:
            assert response.json()["error"] == "not_authenticated"
    elif expected == "ok":
        assert response.status_code in (200, 302), (role, url, response.status_code)
        if response.status_code == 302:
            assert not response["Location"].startswith("/login/")
    else:
        assert response.status_code == expected, (role, url, response.status_code)
        if kind == "api":
            assert response.json()["error"] in {"forbidden", "not_found"}


@pytest.mark.parametrize("role", [r for r in ROLES if r != "own_lead"])
def test_the_live_team_view_refuses_everyone_but_the_teams_lead(world, role):
    before = (LeadAction.objects.count(), PolicyChange.objects.count(), DataAccess.objects.count())
    for kind, method, url in lead_endpoints(world):
        check(kind, request(world["users"][role], method, url), LEAD_EXPECTED[role], role, url)
    assert (LeadAction.objects.count(), PolicyChange.objects.count(), DataAccess.objects.count()) == before
    assert world["on_shift"].breaks.count() == 0 and world["on_shift"].shifts.filter(ended_at__isnull=True).exists()


def test_the_teams_own_lead_gets_through(world):
    lead = world["users"]["own_lead"]
    for kind, method, url in lead_endpoints(world):
        if url.endswith("/move/"):
            response = request(lead, method, url)  # no lighter queue to move to: refused, but not for access
            assert response.status_code == 400 and response.json()["error"] == "not_lighter"
            continue
        if url.endswith(("/break/", "/end-shift/")):
            continue  # acted on below, in order
        check(kind, request(lead, method, url), "ok", "own_lead", url)
    on_shift = world["on_shift"]
    assert request(lead, "POST", f"/api/v1/lead/teams/{world['team'].pk}/reviewers/{on_shift.pk}/break/"
                   ).status_code == 200
    assert request(lead, "POST", f"/lead/teams/{world['team'].pk}/reviewers/{on_shift.pk}/end-shift/"
                   ).status_code == 302
    assert list(LeadAction.objects.order_by("pk").values_list("action", flat=True)) == ["break", "end_shift"]


@pytest.mark.parametrize("role", ROLES)
def test_the_oh_report_refuses_everyone_but_the_teams_oh_staff(world, role):
    before = DataAccess.objects.count()
    for kind, method, url in health_endpoints(world):
        check(kind, request(world["users"][role], method, url), HEALTH_EXPECTED[role], role, url)
    if HEALTH_EXPECTED[role] != "ok":
        assert DataAccess.objects.count() == before
    else:
        assert DataAccess.objects.filter(viewer=world["users"][role]).count() == 5


@pytest.mark.parametrize("role", ROLES)
def test_the_oh_landing_and_follow_up_pages(world, role):
    expected = {"health": 200, "team_health": 200, "stranger_health": 200, "anonymous": 302}.get(role, 403)
    for url in ("/health/", "/health/follow-up/"):
        response = request(world["users"][role], "GET", url)
        assert response.status_code == expected, (role, url)
    if role == "stranger_health":  # their own (empty) follow-up list: nobody from another team is named
        page = request(world["users"][role], "GET", "/health/follow-up/").content.decode()
        consented = world["consented"]
        # Markup, not the bare username: a short name like "m1" can turn up inside a random CSRF token.
        assert f"/health/people/{consented.pk}/" not in page
        assert f"<strong>{consented.get_full_name() or consented.username}</strong>" not in page


def socket_close_code(user: User | None, team_id: int) -> tuple[bool, Any]:
    cookie = session_cookie(user) if user is not None else None

    async def attempt() -> tuple[bool, Any]:
        headers = [(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000")]
        if cookie is not None:
            headers.append((b"cookie", cookie))
        comm = WebsocketCommunicator(application, f"/ws/lead/{team_id}/", headers=headers)
        connected, code = await comm.connect()
        if connected:
            message = await comm.receive_json_from(timeout=5)
            await comm.disconnect()
            return True, message["type"]
        await comm.disconnect()
        return False, code

    return async_to_sync(attempt)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", ROLES)
def test_the_lead_socket_refuses_everyone_but_the_teams_lead(world, role):
    expected = {"moderator": 4403, "other_lead": 4404, "health": 4403, "stranger_health": 4403, "admin": 4404,
                "anonymous": 4403, "own_lead": "team.state", "team_health": 4403}[role]
    connected, what = socket_close_code(world["users"][role], world["team"].pk)
    assert connected == (expected == "team.state") and what == expected, (role, what)
    assert DataAccess.objects.filter(what="lead_socket").exists() == (role == "own_lead")


@pytest.mark.django_db(transaction=True)
def test_the_console_socket_never_joins_a_team(world):
    """The lead's team group is reachable only through /ws/lead/: a console socket of a team member gets no team
    state, whatever it sends."""
    from tests.helpers.realtime import communicator

    cookie = session_cookie(world["on_shift"])

    async def scenario() -> bool:
        comm = communicator(cookie)
        assert (await comm.connect())[0]
        await comm.receive_json_from(timeout=5)
        await comm.send_json_to({"type": "team.changed"})
        await comm.send_json_to({"type": "subscribe", "team": world["team"].pk})
        quiet = await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()
        return bool(quiet)

    assert async_to_sync(scenario)()
