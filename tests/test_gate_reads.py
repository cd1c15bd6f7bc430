"""The claim gate's one-statement read (wellbeing/gate_reads.py) says exactly what the per-question selectors say.

The gate used to ask each question with its own query; it now reads them all at once, before settling. Each test
builds a reviewer's history, takes the snapshot, and compares it with the selectors' answers (after settling, for
the values settling changes). Runs on SQLite and, in the PostgreSQL pass, through the prepared statement.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from moderation.models import RevealEvent
from review_queue.models import Claim
from review_queue.services import item_claim
from tests.factories import make_queue
from tests.test_lead_helpers import make_team
from tests.test_wellbeing_helpers import T0, finish, ready_item, set_policy
from wellbeing import selectors, services
from wellbeing.gate_reads import GateSnapshot, gate_snapshot
from wellbeing.models import Break, ExposureEntry, PersonalPolicy, QueuePolicy, Shift, TeamPolicy

pytestmark = pytest.mark.django_db
MIN = timedelta(minutes=1)


def _snapshot(reviewer: Any, queue: Any, now: datetime) -> GateSnapshot:
    shift = selectors.shift_open(reviewer_id=reviewer.pk)
    return gate_snapshot(reviewer_id=reviewer.pk, queue_id=queue.pk, shift_id=shift.pk if shift else None, now=now)


def _assert_matches_selectors(reviewer, queue, now, *, settled_spoken: int | None = None) -> None:  # type: ignore[no-untyped-def]
    snap = _snapshot(reviewer, queue, now)
    shift = selectors.shift_open(reviewer_id=reviewer.pk)
    assert snap.policy == selectors.policy_effective(reviewer=reviewer, queue=queue)
    assert snap.policy.sources == selectors.policy_effective(reviewer=reviewer, queue=queue).sources
    assert snap.opted_out == selectors.categories_excluded(reviewer=reviewer, queue=queue)
    assert (snap.severe_last_hour, snap.severe_oldest) == selectors.severe_in_last_hour(reviewer=reviewer, now=now)
    assert snap.spoken_for == (selectors.exposure_spoken_for(shift=shift) if shift else 0)
    held = Claim.objects.filter(reviewer=reviewer, ended_at__isnull=True, expires_at__gt=now).first()
    assert snap.held_claim_id == (held.pk if held else None)
    unsettled = ExposureEntry.objects.filter(reviewer=reviewer, exposure__isnull=True, claim__ended_at__isnull=False)
    assert snap.unsettled_count == unsettled.count()
    # What settling changes: compare with the selectors once everything is settled.
    with connection.cursor():
        services.exposure_settle(reviewer=reviewer)
    assert snap.last_severe_end == selectors.last_severe_end(reviewer=reviewer)
    if shift is not None:
        last = selectors.last_finished_entry(shift=shift)
        assert snap.last_finished_severity == (last.severity if last else None)
        assert snap.last_activity == selectors.last_activity(shift=shift)
        assert snap.break_rows == Break.objects.filter(shift=shift).count()
        if settled_spoken is not None:
            assert selectors.exposure_spoken_for(shift=shift) == settled_spoken


def test_a_reviewer_with_no_history_reads_the_organisation_defaults(moderator):
    queue = make_queue()
    snap = _snapshot(moderator, queue, T0)
    assert snap.held_claim_id is None and snap.team_id is None and snap.unsettled is None
    assert (snap.spoken_for, snap.break_rows, snap.severe_last_hour, snap.unsettled_count) == (0, 0, 0, 0)
    assert snap.last_finished is None and snap.last_severe_end is None and not snap.expired_leases_in_queue
    assert snap.policy == selectors.policy_effective(reviewer=moderator, queue=queue)


def test_every_policy_layer_and_the_opt_outs_combine_as_the_selectors_do(moderator):
    set_policy(exposure_cap_units=200, day_cutoff=time(22, 0), interleave_benign=True)
    queue = make_queue()
    QueuePolicy.objects.create(queue=queue, specialist_category="violence", severe_per_hour=6, weight_low=40)
    team = make_team("Night", department="Trust", members=[moderator])
    TeamPolicy.objects.create(team=team, shift_length=timedelta(hours=6), cooldown=timedelta(minutes=3))
    PersonalPolicy.objects.create(user=moderator, exposure_cap_units=120, break_every=timedelta(minutes=40),
                                  opted_out_categories=["violence", "sexual", "not-a-category"])
    snap = _snapshot(moderator, queue, T0)
    assert snap.team_id == team.pk
    assert snap.opted_out == {"sexual"}  # violence is this queue's specialist category
    effective = snap.policy
    assert (effective.exposure_cap_units, effective.shift_length, effective.cooldown) == (120, timedelta(hours=6),
                                                                                         timedelta(minutes=3))
    assert (effective.severe_per_hour, effective.weight_low, effective.day_cutoff) == (6, 40, time(22, 0))
    assert effective.sources["exposure_cap_units"] == "personal" and effective.sources["cooldown"] == "team"
    _assert_matches_selectors(moderator, queue, T0)


def test_a_shift_with_settled_unsettled_severe_and_revealed_items(moderator):
    set_policy(cooldown=timedelta(0), interleave_benign=False)
    queue = make_queue()
    for severity in (3, 1, 3, 2, 0, 3):
        ready_item(queue, severity=severity)
    with time_machine.travel(T0, tick=False) as clock:
        for n in range(5):
            claim = item_claim(reviewer=moderator, queue=queue)
            clock.shift(40 + 10 * n)
            if n in (1, 4):
                RevealEvent.objects.create(item=claim.item, claim=claim, reviewer=moderator,
                                           started_at=T0 + 30 * timedelta(seconds=1), allowed_seconds=10)
            finish(claim)
            clock.shift(5)
        now = T0 + 10 * MIN
        clock.move_to(now)
        snap = _snapshot(moderator, queue, now)
        # The 5th (benign, revealed) is finished and not settled: each claim's gate settled the one before.
        assert snap.unsettled_count == 1 and snap.unsettled is not None and snap.unsettled.reveal_count == 1
        assert snap.last_finished_severity == 0 and snap.held_claim_id is None
        _assert_matches_selectors(moderator, queue, now)
        held = item_claim(reviewer=moderator, queue=queue)  # the last one stays open
        assert _snapshot(moderator, queue, now).held_claim_id == held.pk
        _assert_matches_selectors(moderator, queue, now)


def test_two_unsettled_and_a_purged_claim_take_the_general_path_and_agree(moderator):
    queue = make_queue()
    for severity in (3, 3, 0, 0):
        ready_item(queue, severity=severity)
    with time_machine.travel(T0, tick=False) as clock:
        first = item_claim(reviewer=moderator, queue=queue)
        clock.shift(60)
        finish(first)
        # A second claim ends without the gate running in between (as a lead's or an expiry sweep's would).
        second = Claim.objects.create(item=ready_item(queue, severity=3), queue=queue, reviewer=moderator,
                                      claimed_at=T0 + 61 * timedelta(seconds=1),
                                      expires_at=T0 + 20 * MIN, ended_at=T0 + 90 * timedelta(seconds=1))
        ExposureEntry.objects.create(reviewer=moderator, shift=Shift.objects.get(), claim=second, item=second.item,
                                     queue=queue, severity=3, category="unspecified", weight_percent=100,
                                     claimed_at=second.claimed_at, reserved=300, day=T0.date(), week=T0.date())
        now = T0 + 2 * MIN
        clock.move_to(now)
        snap = _snapshot(moderator, queue, now)
        assert snap.unsettled_count == 2
        _assert_matches_selectors(moderator, queue, now)
        # The gate itself settles both and then offers a benign item (interleaving after a severe one).
        third = item_claim(reviewer=moderator, queue=queue)
        assert third.item.severity == 0
        assert not ExposureEntry.objects.filter(exposure__isnull=True, claim__ended_at__isnull=False).exists()


def test_the_snapshot_sees_breaks_and_expired_leases(moderator, moderator2):
    set_policy(break_every=timedelta(minutes=50))
    queue = make_queue(lease_seconds=60)
    ready_item(queue)
    ready_item(queue)
    with time_machine.travel(T0, tick=False) as clock:
        item_claim(reviewer=moderator2, queue=queue)  # abandoned: its lease runs out
        claim = item_claim(reviewer=moderator, queue=queue)
        finish(claim)
        services.break_start(reviewer=moderator, minutes=5)
        now = T0 + 2 * MIN
        clock.move_to(now)
        snap = _snapshot(moderator, queue, now)
        assert snap.break_rows == 1 and snap.expired_leases_in_queue
        _assert_matches_selectors(moderator, queue, now)


def test_a_routine_claim_is_a_handful_of_statements(moderator):
    """The point of the one-statement read: a routine claim (shift open, previous item finished) must not drift
    back to one query per question. Counted, not timed."""
    queue = make_queue()
    for _ in range(3):
        ready_item(queue, severity=1)
    with time_machine.travel(T0, tick=False) as clock:
        first = item_claim(reviewer=moderator, queue=queue)  # opens the shift
        clock.shift(30)
        finish(first)
        clock.shift(5)
        moderator.refresh_from_db()  # a request's fresh user: its roles are read once more
        with CaptureQueriesContext(connection) as queries:
            second = item_claim(reviewer=moderator, queue=queue)
    assert second.item_id != first.item_id
    statements = [q["sql"] for q in queries.captured_queries]
    # roles, shift lock, the snapshot, settling the first item, picking and leasing the item (one statement on
    # PostgreSQL, two here on SQLite), claim, audit, exposure. (The test's own transaction turns item_claim's into
    # a savepoint and holds back the after-commit broadcast.) It was 30 before the one-statement read.
    work = [s for s in statements if s not in ("BEGIN", "COMMIT") and not s.startswith(("SAVEPOINT", "RELEASE"))]
    assert len(work) <= 9, "\n".join(work)


@pytest.mark.postgres
def test_the_one_statement_claim_writes_what_the_portable_path_writes(moderator, moderator2, monkeypatch):
    """On PostgreSQL a claim is one statement (lease, claim, audit, exposure); SQLite runs the ORM path. Both must
    write the same rows: same item chosen, same claim, same audit event, same ledger entry."""
    from moderation.models import AuditEvent, ContentItem
    from review_queue import services as queue_services

    set_policy(weight_none=10, weight_low=30, weight_medium=60, item_seconds_max=290, cooldown=timedelta(0))
    severities = (2, 0, 3, 1, 3, 0)

    def run(reviewer: Any, one_statement: bool) -> list[tuple[Any, ...]]:
        monkeypatch.setattr(queue_services, "_claims_in_one_statement", lambda: one_statement)
        queue = make_queue(slug=f"same-{int(one_statement)}")
        for severity in severities:
            ready_item(queue, severity=severity, category="violence" if severity == 3 else "spam")
        rows = []
        with time_machine.travel(T0, tick=False) as clock:
            for _ in severities:
                claim = item_claim(reviewer=reviewer, queue=queue)
                claim_row = Claim.objects.get(pk=claim.pk)
                item = ContentItem.objects.get(pk=claim.item_id)
                entry = ExposureEntry.objects.get(claim=claim)
                audit = AuditEvent.objects.get(action=AuditEvent.Action.CLAIMED, item=item)
                assert claim.item.pk == item.pk and claim.item.status == item.status == "in_review"
                assert claim.item.lease_holder_id == reviewer.pk and claim.item.severity == item.severity
                rows.append((
                    item.severity, item.category, item.status, item.lease_expires_at,
                    claim_row.claimed_at, claim_row.expires_at, claim_row.ended_at, claim_row.outcome,
                    audit.actor_id == reviewer.pk, audit.data == {"claim": claim.pk,
                                                                 "expires_at": claim_row.expires_at.isoformat()},
                    entry.shift_id == Shift.objects.get(reviewer=reviewer).pk, entry.item_id == item.pk,
                    entry.queue_id == queue.pk, entry.severity, entry.category, entry.weight_percent,
                    entry.claimed_at, entry.reserved, entry.exposure, entry.day, entry.week, entry.ended_at,
                    entry.screen_seconds, entry.reveal_count, entry.counted_seconds,
                ))
                clock.shift(20)
                finish(claim)
        return rows

    one_statement = run(moderator, True)
    portable = run(moderator2, False)
    assert one_statement == portable
    # Interleaving held: after the severe item, the benign one came next.
    assert [row[0] for row in one_statement] == [2, 0, 3, 0, 1, 3]


@pytest.mark.postgres
def test_the_pick_sql_orders_as_the_queryset_does(moderator, moderator2):
    """The one-statement claim picks with SQL text kept beside the portable path's queryset (compiling the queryset
    on every claim cost more than running it). For every kind of pass the gate can ask for, the text must allow the
    same items in the same order as the queryset."""
    import itertools

    from moderation.models import ContentItem
    from review_queue import services as queue_services

    queue, other = make_queue(slug="pick"), make_queue(slug="pick-other")
    categories = ("spam", "violence", "sexual", "unspecified")
    items = [ready_item(queue, severity=n % 4, category=categories[n % 3 if n % 5 else 3]) for n in range(24)]
    ready_item(other, severity=0)
    ContentItem.objects.filter(pk__in=[i.pk for i in items[::4]]).update(second_opinion_excluded=moderator)
    ContentItem.objects.filter(pk__in=[i.pk for i in items[1::7]]).update(second_opinion_excluded=moderator2)
    ContentItem.objects.filter(pk__in=[i.pk for i in items[2::6]]).update(status=ContentItem.Status.ESCALATED)
    # Ties in created_at, so that the id tie-break matters.
    ContentItem.objects.filter(pk__in=[i.pk for i in items[5:9]]).update(created_at=items[5].created_at)
    policy = selectors.policy_effective(reviewer=moderator, queue=queue)
    checked = 0
    for wanted, max_severity, excluded, near_cap, benign in itertools.product(
        (ContentItem.Status.READY, ContentItem.Status.ESCALATED), (0, 2, 3),
        (frozenset(), frozenset({"violence"}), frozenset({"violence", "sexual"})), (False, True), (False, True),
    ):
        constraints = services.ClaimConstraints(shift_id=0, policy=policy, max_severity=max_severity,
                                                prefer_benign=benign, lower_severity_first=near_cap,
                                                excluded_categories=excluded)
        for batch in queue_services._batches(constraints):
            waiting = queue_services._waiting(queue=queue, wanted=wanted, reviewer=moderator)
            expected = list(queue_services._batch_queryset(waiting, constraints, batch).values_list("pk", flat=True))
            with connection.cursor() as cursor:
                cursor.execute(queue_services._pick_sql(batch=batch, excluded=len(excluded)),
                               queue_services._pick_params(queue=queue, wanted=wanted, reviewer=moderator,
                                                           constraints=constraints, batch=batch))
                got = [row[0] for row in cursor.fetchall()]
            assert got == expected, (wanted, max_severity, excluded, near_cap, benign, batch)
            checked += bool(expected)
    assert checked >= 40  # most combinations allow something, so the orders were compared, not two empty lists


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_claim_statements_are_prepared_on_the_server_and_only_when_allowed(moderator, settings):
    """Django opens psycopg connections with prepared statements off, and psycopg then ignores `prepare=True` too:
    for a while Veil's "prepared" gate read was planned on every claim. The server's own list says what it holds."""
    connection.close()
    if connection.pool is not None:  # type: ignore[attr-defined]  # PostgreSQL's wrapper: pooled, it may come back
        connection.close_pool()  # type: ignore[attr-defined]  # with earlier tests' statements; a new one has none
    queue = make_queue()
    for _ in range(8):
        ready_item(queue)

    def prepared() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            return [row[0] for row in cursor.fetchall()]

    settings.VEIL_DB_PREPARED_STATEMENTS = False
    with time_machine.travel(T0, tick=False) as clock:
        finish(item_claim(reviewer=moderator, queue=queue))
        assert prepared() == []
        settings.VEIL_DB_PREPARED_STATEMENTS = True
        for _ in range(3):
            clock.shift(30)
            finish(item_claim(reviewer=moderator, queue=queue))
    statements = prepared()
    assert any(s.strip().startswith("SELECT\n  (SELECT c.id FROM") for s in statements)  # the gate's read
    # The claim statement; in a routine claim it settles the item finished before it, too.
    assert any(s.lstrip().startswith("WITH settled AS (UPDATE wellbeing_exposureentry SET ended_at")
               and "leased AS (" in s for s in statements)
    assert any("FOR UPDATE" in s and "wellbeing_shift" in s for s in statements)  # the shift lock
    assert connection.connection.prepare_threshold is None  # Django's own statements: still never prepared


def test_the_item_finished_before_is_settled_even_when_nothing_is_left_to_claim(moderator):
    """The gate leaves a routine settlement to the claim's own statement (one round trip fewer on PostgreSQL); when
    that statement leases nothing, the settlement must still be written, and committed."""
    from review_queue.services import NothingToClaim

    queue = make_queue()
    ready_item(queue, severity=2)
    with time_machine.travel(T0, tick=False) as clock:
        first = item_claim(reviewer=moderator, queue=queue)
        clock.shift(40)
        finish(first)
        clock.shift(5)
        with pytest.raises(NothingToClaim):
            item_claim(reviewer=moderator, queue=queue)
    entry = ExposureEntry.objects.get(claim=first)
    assert entry.exposure is not None and entry.screen_seconds == 40
    assert entry.ended_at == T0 + timedelta(seconds=40)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_no_prepared_claim_statement_walks_a_whole_table_on_its_generic_plan(moderator, settings):
    """A server-side prepared statement is soon run on a generic plan: planned once, for any parameter values, from
    the tables' statistics alone. The gate read once bound the 'in_review' status, and its generic plan for "is any
    lease in this queue expired" walked the whole items table on every claim (1.5 ms a claim at 10,000 items,
    growing with the table). With statistics of a queue that has a few thousand items waiting and a ledger with a
    few thousand past entries of twenty reviewers, no statement of the claim path may plan a sequential scan of the
    items, claims or ledger tables."""
    from django.contrib.auth.models import User

    from moderation.models import Category, ContentItem

    settings.VEIL_DB_PREPARED_STATEMENTS = True
    connection.close()  # a connection of this test's own: its prepared statements are the claim path's
    queue, other = make_queue(slug="generic"), make_queue(slug="generic-other")
    ContentItem.objects.bulk_create(
        [ContentItem(queue=queue if n % 4 else other, status=ContentItem.Status.READY, severity=n % 4,
                     sha256=f"{n:064x}", byte_size=1, mime="image/png", original=f"g/{n}.png",
                     source_width=1, source_height=1) for n in range(4000)],
        batch_size=2000,
    )
    # Yesterday's work of twenty reviewers, decided and settled, in a queue of its own.
    history, past = make_queue(slug="generic-history"), T0 - timedelta(days=1, hours=10)
    reviewers = [moderator.pk, *(u.pk for u in User.objects.bulk_create([User(username=f"past-{n}")
                                                                          for n in range(19)]))]
    shifts = Shift.objects.bulk_create([Shift(reviewer_id=r, started_at=past, ends_at=past + 8 * 60 * MIN,
                                              ended_at=past + 8 * 60 * MIN, end_reason=Shift.EndReason.LENGTH,
                                              day=past.date()) for r in reviewers])
    done = ContentItem.objects.bulk_create(
        [ContentItem(queue=history, status=ContentItem.Status.DECIDED, severity=n % 4, sha256=f"h{n:063x}",
                     byte_size=1, mime="image/png", original=f"h/{n}.png", source_width=1, source_height=1)
         for n in range(3000)], batch_size=2000)
    claims = Claim.objects.bulk_create(
        [Claim(item=item, queue=history, reviewer_id=reviewers[n % 20], claimed_at=past + n * timedelta(seconds=9),
               expires_at=past + n * timedelta(seconds=9) + 10 * MIN, ended_at=past + n * timedelta(seconds=9) + MIN,
               outcome=Claim.Outcome.DECIDED) for n, item in enumerate(done)], batch_size=2000)
    ExposureEntry.objects.bulk_create(
        [ExposureEntry(reviewer_id=claim.reviewer_id, shift=shifts[n % 20], claim=claim, item=claim.item,
                       queue=history, severity=claim.item.severity, category=Category.VIOLENCE, weight_percent=100,
                       claimed_at=claim.claimed_at, ended_at=claim.ended_at, screen_seconds=60, counted_seconds=60,
                       reserved=120, exposure=60, day=past.date(), week=past.date())
         for n, claim in enumerate(claims)], batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    with time_machine.travel(T0, tick=False) as clock:
        for _ in range(3):
            finish(item_claim(reviewer=moderator, queue=queue))
            clock.shift(30)
        item_claim(reviewer=moderator, queue=queue)
    plans = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, statement, cardinality(parameter_types) FROM pg_prepared_statements")
        statements = cursor.fetchall()
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            for name, statement, arity in statements:
                nulls = ", ".join(["NULL"] * arity)
                cursor.execute(f"EXPLAIN EXECUTE {name}({nulls})" if arity else f"EXPLAIN EXECUTE {name}")
                plans[statement] = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET plan_cache_mode")
    items = ContentItem._meta.db_table
    assert any(f'EXISTS (SELECT 1 FROM "{items}"' in s for s in plans), [s[:60] for s in plans]  # the gate read
    assert any("leased AS (" in s for s in plans)  # the claim statement
    for statement, plan in plans.items():
        for table in (items, Claim._meta.db_table, ExposureEntry._meta.db_table):
            assert f"Seq Scan on {table}" not in plan, f"{statement}\n---\n{plan}"
