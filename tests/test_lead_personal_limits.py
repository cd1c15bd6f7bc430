"""Issue 21, point 2: a lead's view never reveals a reviewer's personal limits. Leads see headroom against the
team/organisation limit only; the same row, on the page, the API and the socket, whether or not the reviewer chose a
stricter limit of their own."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from oversight import team_selectors
from review.services import item_claim
from tests.helpers.factories import logged_in, make_queue
from tests.helpers.lead import make_team
from tests.helpers.realtime import lead_socket, session_cookie
from tests.helpers.wellbeing import finish, ready_item, set_policy
from wellbeing import services

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_passwords")]


def seen_by_lead(lead, team) -> dict[str, Any]:
    """The reviewer's row as the lead gets it: page text, API row, socket row."""
    client = logged_in(lead)
    html = client.get(f"/lead/teams/{team.pk}/").content.decode()
    api_row = client.get(f"/api/v1/lead/teams/{team.pk}/").json()["reviewers"][0]

    cookie = session_cookie(lead)

    async def first_push() -> dict[str, Any]:
        comm = lead_socket(cookie, team.pk)
        assert (await comm.connect())[0]
        message: dict[str, Any] = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return message

    socket_row = async_to_sync(first_push)()["reviewers"][0]
    live = html[html.index('id="team-live"'):html.index('id="limits-title"')]
    return {"page": live, "api": api_row, "socket": socket_row}


def test_the_lead_sees_the_team_limit_never_the_personal_one(moderator, lead):
    set_policy(item_seconds_min=120, item_seconds_max=120, exposure_cap_units=240, cooldown=timedelta(0))
    queue = make_queue(slug="heavy")
    for _ in range(6):
        ready_item(queue, severity=3)  # severe: two minutes each
    team = make_team("Riverbank", department="Ops", members=[moderator], leads=[lead])
    services.personal_policy_update(user=moderator, values={"exposure_cap_units": 10, "break_every": None},
                                    opted_out_categories=[])
    for _ in range(2):
        finish(item_claim(reviewer=moderator, queue=queue))  # 4 min: 40 % of the personal 10, 2 % of the team's 240

    seen = seen_by_lead(lead, team)
    for row in (seen["api"], seen["socket"]):
        assert row["exposure_percent"] == 2 and row["exposure_level"] == "light"
        assert row["exposure_text"] == "2 % of the shift's limit (4 min of 4 h)"
    assert "4 min of 4 h" in seen["page"]
    for where in (seen["page"], str(seen["api"]), str(seen["socket"])):
        assert "10 min" not in where and "40 %" not in where

    # The row is exactly what it would be without the personal limit.
    with_personal = team_selectors.team_load(team=team).rows[0]
    services.personal_policy_update(user=moderator, values={}, opted_out_categories=[])
    assert team_selectors.team_load(team=team).rows[0] == with_personal


def test_a_team_limit_is_what_the_lead_measures_against(moderator, lead):
    """The team's own stricter cap is the lead's to see (they may set it): headroom is against it."""
    from oversight import team_services

    set_policy(item_seconds_min=120, item_seconds_max=120)
    queue = make_queue(slug="heavy")
    ready_item(queue, severity=3)
    team = make_team("Riverbank", department="Ops", members=[moderator], leads=[lead])
    team_services.team_policy_tighten(lead=lead, team=team, values={"exposure_cap_units": 20})
    finish(item_claim(reviewer=moderator, queue=queue))
    row = team_selectors.team_load(team=team).rows[0]
    assert row.exposure_percent == 10 and "2 min of 20 min" in row.exposure_text
    assert timedelta(minutes=20).total_seconds() == team_selectors.limits_seen_by_lead(reviewer=moderator).cap_seconds
