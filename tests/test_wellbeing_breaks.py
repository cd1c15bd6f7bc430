"""Breaks, enforced at claim: due after 50 minutes, a window to choose the moment, then claiming stops until the
break ends. Voluntary breaks are always possible and never counted against anyone. Time moves with time-machine."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from core.errors import ReviewError
from review.services import item_claim
from tests.helpers.factories import make_queue
from tests.helpers.wellbeing import T0, finish, ready_item, work_until
from wellbeing import rules, selectors, services
from wellbeing.models import Break, Shift

pytestmark = pytest.mark.django_db
MIN = timedelta(minutes=1)


@pytest.fixture
def queue():
    queue = make_queue(slug="work")
    for _ in range(24):
        ready_item(queue)
    return queue


def refused(reviewer, queue) -> ReviewError:
    with pytest.raises(ReviewError) as exc:
        item_claim(reviewer=reviewer, queue=queue)
    return exc.value


def test_a_break_falls_due_the_window_passes_and_claiming_stops_until_it_ends(moderator, queue):
    with time_machine.travel(T0, tick=False) as clock:
        work_until(clock, moderator, queue, 50)  # last item at 09:45
        clock.move_to(T0 + 51 * MIN)
        assert selectors.break_state(reviewer_id=moderator.pk).phase == rules.Phase.DUE
        finish(item_claim(reviewer=moderator, queue=queue))  # inside the window: still fine
        pending = Break.objects.get(reviewer=moderator)
        assert (pending.kind, pending.due_at, pending.started_at) == ("scheduled", T0 + 50 * MIN, None)

        clock.move_to(T0 + 56 * MIN)  # the window closed at 09:55
        error = refused(moderator, queue)
        assert error.code == "break_due" and "09:55" not in error.detail and "10:05" in error.detail
        taken = Break.objects.get(reviewer=moderator)
        assert (taken.started_at, taken.ends_at, taken.started_automatically) == (T0 + 55 * MIN, T0 + 65 * MIN, True)

        clock.move_to(T0 + 60 * MIN)
        error = refused(moderator, queue)
        assert error.code == "on_break" and "10:05" in error.detail
        clock.move_to(T0 + 65 * MIN)
        finish(item_claim(reviewer=moderator, queue=queue))
        # The next one falls due 50 minutes after the break ended.
        assert selectors.break_state(reviewer_id=moderator.pk).due_at == T0 + 115 * MIN
    counted = selectors.breaks_counted(reviewer=moderator, since=T0)
    assert (counted.due, counted.taken, counted.voluntary, counted.cut_short) == (1, 1, 0, 0)


def test_the_item_in_hand_is_finished_before_the_break_starts(moderator, queue):
    with time_machine.travel(T0, tick=False) as clock:
        work_until(clock, moderator, queue, 50)
        clock.move_to(T0 + 53 * MIN)
        claim = item_claim(reviewer=moderator, queue=queue)  # in the window
        clock.move_to(T0 + 58 * MIN)
        assert selectors.break_state(reviewer_id=moderator.pk).phase == rules.Phase.FINISH_ITEM
        # Holding an item: the gate never stands between a reviewer and the item they hold.
        assert item_claim(reviewer=moderator, queue=queue).pk == claim.pk
        clock.move_to(T0 + 59 * MIN)
        finish(claim)
        error = refused(moderator, queue)
        assert error.code == "break_due"
    taken = Break.objects.get(reviewer=moderator)
    assert (taken.started_at, taken.ends_at) == (T0 + 59 * MIN, T0 + 69 * MIN)


def test_starting_the_due_break_in_the_window_is_the_moderators_choice(moderator, queue):
    with time_machine.travel(T0, tick=False) as clock:
        work_until(clock, moderator, queue, 50)
        clock.move_to(T0 + 52 * MIN)
        finish(item_claim(reviewer=moderator, queue=queue))  # records the due break
        row = services.break_start(reviewer=moderator)
        assert (row.kind, row.started_at, row.ends_at) == ("scheduled", T0 + 52 * MIN, T0 + 62 * MIN)
        assert refused(moderator, queue).code == "on_break"
        with pytest.raises(ReviewError) as exc:
            services.break_end(reviewer=moderator)
        assert exc.value.code == "break_enforced"
        clock.move_to(T0 + 62 * MIN)
        item_claim(reviewer=moderator, queue=queue)
    assert Break.objects.filter(reviewer=moderator).count() == 1


def test_a_voluntary_break_is_never_counted_against_anyone(moderator, queue):
    with time_machine.travel(T0, tick=False) as clock:
        work_until(clock, moderator, queue, 20)
        clock.move_to(T0 + 20 * MIN)
        row = services.break_start(reviewer=moderator, minutes=5)
        assert row.kind == "voluntary" and row.ends_at == T0 + 25 * MIN
        assert refused(moderator, queue).code == "on_break"
        clock.move_to(T0 + 22 * MIN)
        services.break_end(reviewer=moderator)  # cut short: fine
        finish(item_claim(reviewer=moderator, queue=queue))
        # The scheduled break is still due at 09:50, in full: a short pause did not use it up.
        assert selectors.break_state(reviewer_id=moderator.pk).due_at == T0 + 50 * MIN
    row.refresh_from_db()
    assert row.cut_short
    counted = selectors.breaks_counted(reviewer=moderator, since=T0)
    assert (counted.taken, counted.voluntary, counted.cut_short) == (0, 1, 1)


def test_a_full_length_voluntary_break_restarts_the_schedule(moderator, queue):
    with time_machine.travel(T0, tick=False) as clock:
        work_until(clock, moderator, queue, 30)
        clock.move_to(T0 + 30 * MIN)
        services.break_start(reviewer=moderator, minutes=10)
        clock.move_to(T0 + 40 * MIN)
        finish(item_claim(reviewer=moderator, queue=queue))
        assert selectors.break_state(reviewer_id=moderator.pk).due_at == T0 + 90 * MIN


def test_time_away_long_enough_counts_as_rest(moderator, queue):
    with time_machine.travel(T0, tick=False) as clock:
        work_until(clock, moderator, queue, 40)  # last item at 09:35
        clock.move_to(T0 + 58 * MIN)  # away through the due moment and the window
        assert selectors.break_state(reviewer_id=moderator.pk).phase == rules.Phase.RESTED
        finish(item_claim(reviewer=moderator, queue=queue))
        assert selectors.break_state(reviewer_id=moderator.pk).due_at == T0 + 108 * MIN
    rest = Break.objects.get(reviewer=moderator)
    assert rest.started_automatically and rest.started_at == T0 + 35 * MIN and rest.ends_at == T0 + 58 * MIN


def test_a_break_off_shift_is_fine_and_ending_a_shift_cuts_a_break_short(moderator, queue):
    with time_machine.travel(T0, tick=False) as clock:
        loose = services.break_start(reviewer=moderator)
        assert loose.shift_id is None and selectors.break_state(reviewer_id=moderator.pk).phase == "on_break"
        clock.move_to(T0 + 5 * MIN)
        assert refused(moderator, queue).code == "on_break"  # the shift starts, and waits for the break
        loose.refresh_from_db()
        assert loose.shift_id is not None
        clock.move_to(T0 + 15 * MIN)
        finish(item_claim(reviewer=moderator, queue=queue))
        clock.move_to(T0 + 20 * MIN)
        row = services.break_start(reviewer=moderator)
        clock.move_to(T0 + 25 * MIN)
        services.shift_end(reviewer=moderator)
    row.refresh_from_db()
    assert row.cut_short and row.ended_at == T0 + 25 * MIN
    assert Shift.objects.get(reviewer=moderator).end_reason == "manual"


def test_the_banner_and_the_break_screen_say_it_calmly(moderator, queue):
    client = Client()
    client.force_login(moderator)
    with time_machine.travel(T0, tick=False) as clock:
        work_until(clock, moderator, queue, 50)
        clock.move_to(T0 + 51 * MIN)
        html = client.get("/console/").content.decode()
        assert 'id="break-banner"' in html and 'data-phase="due"' in html
        assert "A break is due" in html and "09:55" in html
        assert client.post("/wellbeing/break/start/").status_code == 302
        html = client.get("/wellbeing/break/").content.decode()
        assert "Time to rest" in html and "10:01" in html
        assert "<img" not in html  # no imagery on the break screen
        assert client.get("/console/")["Location"] == "/wellbeing/break/"  # console pages are the break screen
        assert client.get("/wellbeing/break/state/").json()["phase"] == "on_break"
