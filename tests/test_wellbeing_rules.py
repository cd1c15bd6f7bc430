"""The pure wellbeing rules: stricter-only policy layers, how an item is counted, where a break stands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from wellbeing import rules
from wellbeing.models import OrganisationPolicy

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def org(**values) -> rules.PolicyLayer:
    policy = OrganisationPolicy(**values)
    return rules.PolicyLayer.from_model("organisation", policy)


def policy(**values) -> rules.EffectivePolicy:
    return rules.policy_combine([org(**values)])


def test_defaults_are_the_documented_ones():
    p = policy()
    assert p.exposure_cap_units == 240  # 4 h of severe-equivalent exposure
    assert (p.break_every, p.break_length, p.break_window) == (50 * MIN, 10 * MIN, 5 * MIN)
    assert (p.weight_none, p.weight_low, p.weight_medium, p.weight(3)) == (10, 25, 50, 100)
    assert p.shift_length == timedelta(hours=8) and p.rest_between_shifts == timedelta(hours=11)
    assert p.reserve_for(3) == 300 and p.reserve_for(0) == 30


def test_later_layers_only_tighten_whatever_their_order():
    queue = rules.PolicyLayer("queue", {"exposure_cap_units": 120, "severe_per_hour": 40, "weight_medium": 80})
    personal = rules.PolicyLayer("personal", {"break_every": 30 * MIN, "break_length": 5 * MIN,
                                              "exposure_cap_units": 180, "cooldown": 5 * MIN})
    combined = rules.policy_combine([org(), queue, personal])
    assert combined.exposure_cap_units == 120  # the queue's is stricter than the person's
    assert combined.severe_per_hour == 12  # 40 would loosen: ignored
    assert combined.weight_medium == 80  # a heavier weight is stricter
    assert combined.break_every == 30 * MIN  # more often is stricter
    assert combined.break_length == 10 * MIN  # a shorter break would loosen: ignored
    assert combined.cooldown == 5 * MIN
    assert combined.sources["exposure_cap_units"] == "queue"
    assert combined.sources["break_every"] == "personal"
    assert combined.sources["break_length"] == "organisation"
    assert rules.policy_combine([org(), personal, queue]) == combined


def test_weights_keep_rising_with_severity():
    combined = rules.policy_combine([org(), rules.PolicyLayer("queue", {"weight_none": 60})])
    assert (combined.weight_none, combined.weight_low, combined.weight_medium) == (60, 60, 60)
    assert [combined.reserve_for(s) for s in range(4)] == sorted(combined.reserve_for(s) for s in range(4))


def test_a_team_layer_slots_in_between():
    team = rules.PolicyLayer("team", {"exposure_cap_units": 200, "break_window": 2 * MIN})
    combined = rules.policy_combine([org(), rules.PolicyLayer("queue", {}), team,
                                     rules.PolicyLayer("personal", {"exposure_cap_units": 220})])
    assert combined.exposure_cap_units == 200 and combined.sources["exposure_cap_units"] == "team"
    assert combined.break_window == 2 * MIN


def test_cutoff_layers_take_the_earliest_and_none_is_loosest():
    from datetime import time

    assert rules.policy_combine([org(), rules.PolicyLayer("queue", {"day_cutoff": time(20)})]).day_cutoff == time(20)
    combined = rules.policy_combine([org(day_cutoff=time(22)), rules.PolicyLayer("p", {"day_cutoff": time(23)})])
    assert combined.day_cutoff == time(22)


def test_looser_than_names_each_loosening_field():
    from wellbeing.models import PersonalPolicy

    mine = PersonalPolicy(exposure_cap_units=300, break_every=40 * MIN, break_length=5 * MIN)
    errors = rules.looser_than(mine, OrganisationPolicy())
    assert set(errors) == {"exposure_cap_units", "break_length"}
    assert "240" in errors["exposure_cap_units"]


def test_time_on_screen_is_bounded_and_reveals_count_extra():
    p = policy()
    assert rules.counted_seconds(screen_seconds=40, reveal_seconds=5, policy=p) == 45
    assert rules.counted_seconds(screen_seconds=2, reveal_seconds=0, policy=p) == 15  # at least
    assert rules.counted_seconds(screen_seconds=4000, reveal_seconds=10, policy=p) == 300  # at most
    assert rules.weighted(45, 25) == 12  # rounded up, never under-counted
    assert rules.weighted(45, 100) == 45


def phase(p: rules.EffectivePolicy, now: datetime, *, last: datetime | None = None, holding: bool = False,
          active: rules.BreakSpan | None = None, since: datetime = T0) -> rules.BreakState:
    return rules.break_phase(policy=p, work_since=since, last_activity=last, holding=holding, active=active, now=now)


def test_break_falls_due_then_the_window_then_claiming_stops():
    p = policy()
    working = phase(p, T0 + 30 * MIN, last=T0 + 29 * MIN)
    assert working.phase == rules.Phase.WORKING and working.next_change_at == T0 + 50 * MIN
    due = phase(p, T0 + 52 * MIN, last=T0 + 51 * MIN)
    assert due.phase == rules.Phase.DUE and due.claiming_allowed
    assert due.window_ends_at == T0 + 55 * MIN == due.next_change_at
    started = phase(p, T0 + 56 * MIN, last=T0 + 51 * MIN)
    assert started.phase == rules.Phase.ON_BREAK and started.starts_automatically and not started.claiming_allowed
    assert (started.break_starts_at, started.break_ends_at) == (T0 + 55 * MIN, T0 + 65 * MIN)


def test_the_item_in_hand_is_finished_first():
    p = policy()
    state = phase(p, T0 + 57 * MIN, last=T0 + 51 * MIN, holding=True)
    assert state.phase == rules.Phase.FINISH_ITEM
    # Finished at 58: the break runs from then, a full ten minutes.
    after = phase(p, T0 + 59 * MIN, last=T0 + 58 * MIN)
    assert (after.phase, after.break_starts_at, after.break_ends_at) == (rules.Phase.ON_BREAK, T0 + 58 * MIN,
                                                                          T0 + 68 * MIN)


def test_idle_time_of_a_full_break_counts_as_rest():
    p = policy()
    assert phase(p, T0 + 45 * MIN, last=T0 + 34 * MIN).phase == rules.Phase.RESTED
    # Idle across the due moment and past the window: rested, nothing to enforce.
    assert phase(p, T0 + 70 * MIN, last=T0 + 40 * MIN).phase == rules.Phase.RESTED
    # A running automatic break is not cut short by the idle rule.
    assert phase(p, T0 + 63 * MIN, last=T0 + 52 * MIN).phase == rules.Phase.ON_BREAK


def test_a_running_break_wins_and_short_breaks_do_not_cost_the_scheduled_one():
    p = policy()
    short = rules.BreakSpan(T0 + 20 * MIN, T0 + 23 * MIN, voluntary=True)
    assert phase(p, T0 + 21 * MIN, active=short).phase == rules.Phase.ON_BREAK
    since = rules.work_stretch_start(shift_started_at=T0, rested_at=None, breaks=[short], policy=p, now=T0 + 40 * MIN)
    assert since == T0  # a three-minute pause does not push the scheduled break back
    full = rules.BreakSpan(T0 + 20 * MIN, T0 + 35 * MIN, voluntary=True)
    since = rules.work_stretch_start(shift_started_at=T0, rested_at=None, breaks=[full], policy=p, now=T0 + 40 * MIN)
    assert since == T0 + 35 * MIN
