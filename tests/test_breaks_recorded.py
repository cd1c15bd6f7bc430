"""Issue 21, point 4: breaks that start on their own are recorded, and every "since the last break" reads that record,
so the lead's view cannot say "On break until 09:65" and then "1 h 7 min since the last break" with no break row."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from oversight import team_services
from review.services import item_claim, item_release
from tests.helpers.factories import logged_in, make_queue
from tests.helpers.lead import make_team
from tests.helpers.wellbeing import T0, ready_item, work_until
from wellbeing import services, tasks
from wellbeing.models import Break

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
MIN = timedelta(minutes=1)


@pytest.fixture
def queue():
    queue = make_queue(slug="work")
    for _ in range(14):
        ready_item(queue)
    return queue


def test_the_lead_view_records_the_break_it_shows_and_counts_from_its_end(moderator, lead, queue):
    team = make_team("Riverbank", department="Ops", members=[moderator], leads=[lead])
    client = logged_in(lead)
    with time_machine.travel(T0, tick=False) as clock:
        work_until(clock, moderator, queue, 55)  # last item finished at 09:50; due 09:50, window until 09:55
        clock.move_to(T0 + 56 * MIN)  # nothing claimed since: the break began by itself at 09:55
        row = client.get(f"/api/v1/lead/teams/{team.pk}/").json()["reviewers"][0]
        assert (row["state"], row["state_text"]) == ("on_break", "On break until 10:05")
        taken = Break.objects.get(reviewer=moderator)
        assert (taken.kind, taken.started_automatically) == ("scheduled", True)
        assert (taken.started_at, taken.ends_at) == (T0 + 55 * MIN, T0 + 65 * MIN)

        clock.move_to(T0 + 67 * MIN)  # after it, still nothing claimed
        row = client.get(f"/api/v1/lead/teams/{team.pk}/").json()["reviewers"][0]
        assert row["state"] == "reviewing" and row["since_break_text"] == "2 min (since 10:05)"
        assert "2 min (since 10:05)" in client.get(f"/lead/teams/{team.pk}/").content.decode()
        assert team_services.team_load_now(team=team).rows[0].since_break_text == "2 min (since 10:05)"
    assert Break.objects.filter(reviewer=moderator).count() == 1


def test_a_break_nobody_looked_at_is_recorded_by_the_minute_task(moderator, queue):
    with time_machine.travel(T0, tick=False) as clock:
        work_until(clock, moderator, queue, 55)
        clock.move_to(T0 + 70 * MIN)  # the break came and went (09:55-10:05) with nothing claimed
        assert tasks.breaks_catch_up.delay().get() == 1
        assert tasks.breaks_catch_up.delay().get() == 0  # idempotent
        taken = Break.objects.get(reviewer=moderator)
        assert (taken.started_at, taken.ends_at, taken.started_automatically) == (T0 + 55 * MIN, T0 + 65 * MIN, True)
        # The next claim goes on from that record: the next break falls due 50 minutes after it ended.
        item_claim(reviewer=moderator, queue=queue)
        from wellbeing import selectors

        assert selectors.break_state(reviewer_id=moderator.pk).due_at == T0 + 115 * MIN
    assert Break.objects.filter(reviewer=moderator).count() == 1


def test_since_the_last_break_counts_any_break_that_ended(moderator, lead, queue):
    team = make_team("Riverbank", department="Ops", members=[moderator], leads=[lead])
    with time_machine.travel(T0, tick=False) as clock:
        work_until(clock, moderator, queue, 20)
        clock.move_to(T0 + 20 * MIN)
        services.break_start(reviewer=moderator, minutes=5)
        clock.move_to(T0 + 30 * MIN)
        row = team_services.team_load_now(team=team).rows[0]
        assert row.since_break_text == "5 min (since 09:25)"


def test_the_minute_task_looks_only_at_shifts_where_a_break_can_have_begun(moderator, moderator2, queue, monkeypatch):
    """Issue 20: with a thousand reviewers at work the task took 8 s a minute, locking each shift. A reviewer with
    an item in hand, or whose shift began less than the shortest possible break_every + break_window ago, cannot
    have a break that started by itself: they are not even locked."""
    from tests.helpers.factories import make_user

    third = make_user("fresh", "moderator")
    for _ in range(30):
        ready_item(queue)
    looked_at: list[int] = []
    real = services.breaks_catch_up

    def counting(*, reviewer_id: int, now=None):
        looked_at.append(reviewer_id)
        return real(reviewer_id=reviewer_id, now=now)

    monkeypatch.setattr(services, "breaks_catch_up", counting)
    with time_machine.travel(T0, tick=False) as clock:
        work_until(clock, moderator, queue, 55)  # idle since 09:50: the break began by itself at 09:55
        clock.move_to(T0 + 56 * MIN)
        held = item_claim(reviewer=moderator2, queue=queue)  # a shift of 14 minutes by 10:10...
        clock.move_to(T0 + 65 * MIN)
        item_release(item=held.item, reviewer=moderator2)
        clock.move_to(T0 + 66 * MIN)
        item_claim(reviewer=moderator2, queue=queue)  # ...with an item in hand
        clock.move_to(T0 + 69 * MIN)
        item_claim(reviewer=third, queue=queue)  # a shift that began a minute ago
        clock.move_to(T0 + 70 * MIN)
        assert services.breaks_catch_up_all() == 1
    assert looked_at == [moderator.pk]
