"""The team lead's live view: what it shows (and never shows), and the actions that lighten a reviewer's load, each
through the same wellbeing machinery as the reviewer's own, audited, and stricter-only."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.utils import timezone

from core.errors import ReviewError
from oversight import team_selectors, team_services
from review.services import item_claim
from tests.helpers.factories import logged_in, make_queue, make_user
from tests.helpers.lead import make_team
from tests.helpers.realtime import communicator, lead_socket, session_cookie
from tests.helpers.wellbeing import finish, ready_item, set_policy
from wellbeing import selectors, services
from wellbeing.models import Break, DataAccess, LeadAction, PolicyChange, QueuePolicy, Shift

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_passwords")]

ALLOWED_ROW_KEYS = {"reviewer_id", "name", "state", "state_text", "exposure_percent", "exposure_step",
                    "exposure_level", "exposure_text", "since_break_text", "queue", "queue_id", "moved",
                    "can_send_on_break", "can_move", "can_end_shift"}
FORBIDDEN = re.compile(r"decision|decided|items? (per|an|a) hour|speed|accura|score|rank|mood|who-?5|check-?in|"
                       r"per minute|throughput|fastest|slowest", re.IGNORECASE)


@pytest.fixture
def crew(moderator, moderator2, lead):
    """The lead's team: mo (on shift, reviewing) and mia (off shift)."""
    heavy = make_queue(slug="heavy", name="Heavy queue")
    light = make_queue(slug="light", name="Light queue")
    for _ in range(4):
        ready_item(heavy, severity=2)
        ready_item(light, severity=0)
    team = make_team("Riverbank", department="Ops", members=[moderator, moderator2], leads=[lead])
    return team, heavy, light


def test_the_live_load_of_a_team(crew, moderator, moderator2):
    team, heavy, _light = crew
    set_policy(item_seconds_min=120, item_seconds_max=120)  # a medium item counts 50 %: one minute
    finish(item_claim(reviewer=moderator, queue=heavy))
    item_claim(reviewer=moderator, queue=heavy)
    load = team_selectors.team_load(team=team)
    mo, mia = load.rows
    assert set(team_selectors.load_payload(load)["reviewers"][0]) == ALLOWED_ROW_KEYS == team_selectors.LOAD_FIELDS
    assert (mo.name, mo.state, mo.state_text) == ("mo", "reviewing", "Reviewing")
    assert mo.exposure_percent == 0 and "1 min of 4 h" in mo.exposure_text  # finished items only: 1 of 240 units
    assert mo.since_break_text.startswith("under a minute (since ") and mo.queue == "Heavy queue"
    assert mo.can_send_on_break and mo.can_move and mo.can_end_shift
    assert (mia.state, mia.exposure_percent, mia.can_send_on_break) == ("off", None, False)
    services.break_start(reviewer=moderator, minutes=10)
    mo = team_selectors.team_load(team=team).rows[0]
    assert mo.state == "on_break" and mo.state_text.startswith("On break until ") and not mo.can_send_on_break


def test_no_decision_counts_speed_accuracy_or_check_ins_reach_the_page_api_or_socket(crew, moderator, lead):
    team, heavy, _ = crew
    for _ in range(3):
        finish(item_claim(reviewer=moderator, queue=heavy))
    services.checkin_record(user=moderator, kind="after_break", mood=1)
    services.checkin_record(user=moderator, kind="who5", who5_answers=[0, 1, 0, 1, 0])
    client = logged_in(lead)
    html = client.get(f"/lead/teams/{team.pk}/").content.decode()
    live = html[html.index('id="team-live"'):html.index('id="limits-title"')]
    assert not FORBIDDEN.search(re.sub(r"<[^>]+>", " ", live)), FORBIDDEN.search(live)
    payload = client.get(f"/api/v1/lead/teams/{team.pk}/").json()
    assert set(payload) == {"team", "generated_at", "generated_at_text", "on_shift", "reviewers"}
    assert all(set(row) == ALLOWED_ROW_KEYS for row in payload["reviewers"])
    assert not FORBIDDEN.search(str(payload))
    cookie = session_cookie(lead)

    async def scenario() -> list[dict[str, Any]]:
        comm = lead_socket(cookie, team.pk)
        assert (await comm.connect())[0]
        first = await comm.receive_json_from(timeout=5)
        await database_sync_to_async(finish)(await database_sync_to_async(item_claim)(reviewer=moderator,
                                                                                       queue=heavy))
        second = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return [first, second]

    for message in async_to_sync(scenario)():
        assert message["type"] == "team.state"
        assert all(set(row) == ALLOWED_ROW_KEYS for row in message["reviewers"])
        assert not FORBIDDEN.search(str(message))
    from wellbeing.models import CheckInRead

    assert not CheckInRead.objects.exclude(reader=moderator).exists()  # nothing read the answers


def test_sending_on_a_break_uses_the_break_machinery(crew, moderator, lead):
    team, heavy, _ = crew
    claim = item_claim(reviewer=moderator, queue=heavy)
    finish(claim)
    console = session_cookie(moderator)

    async def scenario() -> dict[str, Any]:
        comm = communicator(console)
        assert (await comm.connect())[0]
        await comm.receive_json_from(timeout=5)  # queue counts
        await database_sync_to_async(team_services.lead_send_on_break)(lead=lead, team=team,
                                                                        reviewer_id=moderator.pk)
        pushed = await comm.receive_json_from(timeout=5)
        while pushed["type"] == "queue.counts":
            pushed = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return dict(pushed)

    pushed = async_to_sync(scenario)()
    assert (pushed["type"], pushed["phase"]) == ("break.started", "on_break")
    row = Break.objects.get(reviewer=moderator)
    assert (row.kind, row.started_by) == ("lead", lead)
    assert row.ends_at is not None and row.started_at is not None
    assert row.ends_at - row.started_at == timedelta(minutes=10)
    with pytest.raises(ReviewError) as refused:
        item_claim(reviewer=moderator, queue=heavy)
    assert refused.value.code == "on_break"
    with pytest.raises(ReviewError) as enforced:
        services.break_end(reviewer=moderator)
    assert enforced.value.code == "break_enforced" and "team lead" in enforced.value.detail
    action = LeadAction.objects.get()
    assert (action.lead, action.subject, action.action, action.team) == (lead, moderator, "break", team)
    page = logged_in(moderator).get("/wellbeing/break/").content.decode()
    assert "Your team lead started this break for you" in page
    with pytest.raises(ReviewError) as again:
        team_services.lead_send_on_break(lead=lead, team=team, reviewer_id=moderator.pk)
    assert again.value.code == "on_break"


def test_a_due_break_is_the_scheduled_one(crew, moderator, lead):
    team, *_ = crew
    heavy = make_queue(slug="slow", lease_seconds=3600)
    ready_item(heavy, severity=1)
    ready_item(heavy, severity=1)
    now = timezone.now()
    with time_machine.travel(now - timedelta(minutes=52), tick=False) as clock:
        claim = item_claim(reviewer=moderator, queue=heavy)
        clock.move_to(now - timedelta(minutes=1))
        finish(claim)
    item_claim(reviewer=moderator, queue=heavy)  # the gate records the due break
    team_services.lead_send_on_break(lead=lead, team=team, reviewer_id=moderator.pk)
    row = Break.objects.get(reviewer=moderator)
    assert row.kind == "scheduled" and row.started_by == lead and row.started_at is not None


def test_only_reviewers_on_shift_and_in_the_team(crew, moderator, moderator2, lead):
    team, *_ = crew
    with pytest.raises(ReviewError) as off:
        team_services.lead_send_on_break(lead=lead, team=team, reviewer_id=moderator2.pk)
    assert off.value.code == "not_on_shift"
    outsider = make_user("otto", "moderator")
    services.shift_start(reviewer=outsider)
    for act in (team_services.lead_send_on_break, team_services.lead_end_shift):
        with pytest.raises(ReviewError) as foreign:
            act(lead=lead, team=team, reviewer_id=outsider.pk)
        assert foreign.value.status == 404
    assert not LeadAction.objects.exists()


def test_moving_to_a_lighter_queue_only(crew, moderator, lead):
    team, heavy, light = crew
    specialist = make_queue(slug="specialist", name="Specialist")
    ready_item(specialist, severity=0)
    QueuePolicy.objects.create(queue=specialist, specialist_category="violence")
    finish(item_claim(reviewer=moderator, queue=heavy))
    offered = team_selectors.lighter_queues(current_queue_id=heavy.pk)
    assert offered == [light]  # never the specialist queue, never the same one
    with pytest.raises(ReviewError) as refused:
        team_services.lead_move_to_queue(lead=lead, team=team, reviewer_id=moderator.pk, queue_id=specialist.pk)
    assert refused.value.code == "not_lighter"
    console = session_cookie(moderator)

    async def scenario() -> dict[str, Any]:
        comm = communicator(console)
        assert (await comm.connect())[0]
        await comm.receive_json_from(timeout=5)
        await database_sync_to_async(team_services.lead_move_to_queue)(lead=lead, team=team,
                                                                        reviewer_id=moderator.pk, queue_id=light.pk)
        pushed = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return dict(pushed)

    pushed = async_to_sync(scenario)()
    assert pushed["type"] == "queue.moved" and "Light queue" in pushed["message"]
    with pytest.raises(ReviewError) as moved:
        item_claim(reviewer=moderator, queue=heavy)
    assert moved.value.code == "moved" and "Light queue" in moved.value.detail
    assert item_claim(reviewer=moderator, queue=light).item.severity == 0
    with pytest.raises(ReviewError) as twice:
        team_services.lead_move_to_queue(lead=lead, team=team, reviewer_id=moderator.pk, queue_id=light.pk)
    assert twice.value.code == "already_moved"
    assert LeadAction.objects.get().detail["to_queue"] == light.pk
    row = team_selectors.team_load(team=team).rows[0]
    assert row.queue == "Light queue (moved there)" and not row.can_move


def test_ending_a_shift_early(crew, moderator, lead):
    team, heavy, _ = crew
    finish(item_claim(reviewer=moderator, queue=heavy))
    services.break_start(reviewer=moderator, minutes=15)
    team_services.lead_end_shift(lead=lead, team=team, reviewer_id=moderator.pk)
    shift = Shift.objects.get(reviewer=moderator)
    assert shift.end_reason == "lead" and shift.ended_at is not None
    assert Break.objects.get(reviewer=moderator).cut_short
    with pytest.raises(ReviewError) as refused:
        item_claim(reviewer=moderator, queue=heavy)
    assert refused.value.code == "shift_over" and "team lead ended your shift early" in refused.value.detail
    with pytest.raises(ReviewError):
        services.shift_start(reviewer=moderator)  # not resumable, unlike a shift the moderator ended
    assert LeadAction.objects.get().action == "end_shift"


def test_team_limits_only_tighten_and_are_audited(crew, moderator, lead):
    team, *_ = crew
    policy = team_services.team_policy_tighten(lead=lead, team=team, values={
        "exposure_cap_units": 200, "break_every": timedelta(minutes=40)})
    assert policy.exposure_cap_units == 200
    effective = selectors.policy_effective(reviewer=moderator)
    assert (effective.exposure_cap_units, effective.break_every) == (200, timedelta(minutes=40))
    assert effective.sources["exposure_cap_units"] == "team"
    change = PolicyChange.objects.get(layer="team")
    assert (change.team, change.changed_by, change.after) == (team, lead, {"exposure_cap_units": 200,
                                                                           "break_every": 2400})
    for looser in ({"exposure_cap_units": 220}, {"break_every": timedelta(minutes=45)},
                   {"break_length": timedelta(minutes=5)}):
        with pytest.raises(ReviewError) as refused:
            team_services.team_policy_tighten(lead=lead, team=team, values=looser)
        assert refused.value.code == "not_stricter", looser
    with pytest.raises(ReviewError) as bounds:
        team_services.team_policy_tighten(lead=lead, team=team, values={"break_length": timedelta(hours=3)})
    assert bounds.value.code == "invalid_limit"
    # A personal limit stricter still wins; the team's never loosens it.
    services.personal_policy_update(user=moderator, values={"exposure_cap_units": 150}, opted_out_categories=[])
    assert selectors.policy_effective(reviewer=moderator).exposure_cap_units == 150
    response = logged_in(lead).post(f"/lead/teams/{team.pk}/limits/", {"exposure_cap_units": "300"}, follow=True)
    assert "can only be tightened" in response.content.decode()
    assert PolicyChange.objects.filter(layer="team").count() == 1


def test_the_lead_page_actions_and_their_messages(crew, moderator, lead):
    team, heavy, light = crew
    finish(item_claim(reviewer=moderator, queue=heavy))
    client = logged_in(lead)
    html = client.get(f"/lead/teams/{team.pk}/").content.decode()
    assert f'data-reviewer="{moderator.pk}" data-state="reviewing"' in html
    assert f'<option value="{light.pk}">Light queue</option>' in html
    assert f"/ws/lead/{team.pk}/" in html
    response = client.post(f"/lead/teams/{team.pk}/reviewers/{moderator.pk}/break/", follow=True)
    assert "Sent on a break until" in response.content.decode()
    response = client.post(f"/lead/teams/{team.pk}/reviewers/{moderator.pk}/move/", {"queue": str(light.pk)},
                           follow=True)
    assert "Moved to Light queue" in response.content.decode()
    response = client.post(f"/lead/teams/{team.pk}/reviewers/{moderator.pk}/end-shift/", follow=True)
    assert "The shift has ended" in response.content.decode()
    assert client.post(f"/lead/teams/{team.pk}/reviewers/{moderator.pk}/promote/").status_code == 404
    assert list(LeadAction.objects.order_by("at", "pk").values_list("action", flat=True)) == [
        "break", "move", "end_shift"]
    assert DataAccess.objects.filter(what="lead_page", subject=moderator).exists()


def test_a_reviewer_sees_who_looked_and_what_a_lead_did(crew, moderator, lead):
    team, heavy, _ = crew
    finish(item_claim(reviewer=moderator, queue=heavy))
    logged_in(lead).get(f"/lead/teams/{team.pk}/")
    logged_in(lead).get(f"/lead/teams/{team.pk}/")
    team_services.lead_send_on_break(lead=lead, team=team, reviewer_id=moderator.pk)
    html = logged_in(moderator).get("/wellbeing/").content.decode()
    section = html[html.index('id="looks-title"'):html.index('id="data-title"')]
    assert "Live team view" in section and "(2 times that day)" in section and "Sent on a break" in section
    assert section.count(">lee<") == 2


def test_the_lead_socket_follows_a_team_member_going_on_a_break(crew, moderator, lead):
    team, heavy, _ = crew
    finish(item_claim(reviewer=moderator, queue=heavy))
    cookie = session_cookie(lead)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        comm = lead_socket(cookie, team.pk)
        assert (await comm.connect())[0]
        before = await comm.receive_json_from(timeout=5)
        await database_sync_to_async(services.break_start)(reviewer=moderator, minutes=5)
        after = await comm.receive_json_from(timeout=5)
        await comm.send_json_to({"type": "ping"})
        assert (await comm.receive_json_from(timeout=5))["type"] == "pong"
        await comm.disconnect()
        return before, after

    before, after = async_to_sync(scenario)()
    state = {row["name"]: row["state"] for row in before["reviewers"]}
    assert state == {"mo": "reviewing", "mia": "off"}
    assert {row["name"]: row["state"] for row in after["reviewers"]}["mo"] == "on_break"
    assert DataAccess.objects.filter(what="lead_socket", viewer=lead).count() == 2  # one row per person shown
