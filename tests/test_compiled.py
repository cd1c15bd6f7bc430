"""Querysets compiled once and bound on each call (core.compiled) return exactly what the queryset itself returns.

Every compiled read is checked against its queryset, run normally, on varied values: None against an id (a shift or
none), different reviewers and queues, moments that the queryset moves (`now - 1 hour`), lists of different lengths.
Shapes the cache cannot prove safe run the queryset itself, and say so once. Both test passes run this module.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.test.utils import CaptureQueriesContext

from core import compiled
from core.models import AuditEvent
from intake.models import ContentItem
from review.models import Claim, RevealEvent
from review.services import item_claim
from tests.helpers.factories import make_queue
from tests.helpers.lead import make_team
from tests.helpers.wellbeing import T0, finish, ready_item, set_policy
from wellbeing import selectors, services
from wellbeing.models import ExposureEntry, PersonalPolicy, QueuePolicy, Shift, TeamPolicy

pytestmark = pytest.mark.django_db
MIN = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _fresh_cache():
    compiled.clear()
    yield
    compiled.clear()


@pytest.fixture
def checked(monkeypatch) -> list[str]:
    """Every compiled read also runs its queryset normally, and the two must agree; the names read are returned."""
    real = compiled.rows
    seen: list[str] = []

    def both(name: str, build: Any, /, *, using: str = "default", **values: Any) -> list[dict[str, Any]]:
        got = real(name, build, using=using, **values)
        expected = list(build(**values).using(using))
        # The lease's pick and a decision's item lock take the next key from a sequence (compiled.next_key): each
        # run takes a new one, in order.
        keys = [(column, row.pop(column), again.pop(column)) for row, again in zip(got, expected, strict=False)
                for column in ("claim_key", "decision_key") if column in row]
        assert all(isinstance(a, int) and isinstance(b, int) and b > a for _c, a, b in keys), (name, keys)
        assert got == expected, name
        for row, (column, key, _again) in zip(got, keys, strict=False):
            row[column] = key
        seen.append(name)
        return got

    monkeypatch.setattr(compiled, "rows", both)
    return seen


def _entries(*, reviewer_id: int, shift_id: int | None, now: Any) -> QuerySet[Any, Any]:
    in_shift = Q(shift_id=shift_id) if shift_id is not None else Q(pk__in=[])
    return (ExposureEntry.objects.filter(in_shift, reviewer_id=reviewer_id, claimed_at__gt=now - timedelta(hours=1),
                                         claimed_at__lte=now)
            .order_by("pk").values("pk", "claimed_at", "ended_at", "severity", "exposure", "day"))


def _history(reviewer: User, queue: Any, clock: Any) -> None:
    for severity in (3, 0, 2, 3):
        ready_item(queue, severity=severity)
    for n in range(3):
        claim = item_claim(reviewer=reviewer, queue=queue)
        clock.shift(30 + 20 * n)
        if n == 1:
            RevealEvent.objects.create(item=claim.item, claim=claim, reviewer=reviewer, started_at=T0,
                                       allowed_seconds=10)
        finish(claim)


def test_the_gate_snapshot_reads_what_its_queryset_reads(checked, moderator, moderator2):
    set_policy(cooldown=timedelta(0), interleave_benign=False)
    queue, other = make_queue(), make_queue(slug="other")
    QueuePolicy.objects.create(queue=queue, severe_per_hour=6)
    team = make_team("Night", department="Trust", members=[moderator])
    TeamPolicy.objects.create(team=team, exposure_cap_units=200)
    PersonalPolicy.objects.create(user=moderator2, exposure_cap_units=120, opted_out_categories=["sexual"])
    with time_machine.travel(T0, tick=False) as clock:
        # No shift yet (shift None), for two reviewers, one with a team policy and one with a personal policy.
        for reviewer in (moderator, moderator2):
            for q in (queue, other):
                snap = selectors.gate_snapshot(reviewer=reviewer, queue=q, shift=None, now=T0)
                assert snap.held_claim_id is None and snap.spoken_for == 0
        _history(moderator, queue, clock)
        held = item_claim(reviewer=moderator, queue=queue)
        shift = Shift.objects.get(reviewer=moderator)
        for now in (T0, T0 + 3 * MIN, T0 + 61 * MIN, T0 + 5 * timedelta(hours=1)):
            for reviewer in (moderator, moderator2):
                own = shift if reviewer == moderator else None
                snap = selectors.gate_snapshot(reviewer=reviewer, queue=queue, shift=own, now=now)
                assert snap.policy == selectors.policy_effective(reviewer=reviewer, queue=queue)
        snap = selectors.gate_snapshot(reviewer=moderator, queue=queue, shift=shift, now=T0 + 3 * MIN)
        assert snap.held_claim_id == held.pk and snap.team_id == team.pk and snap.severe_last_hour == 2
        assert snap.spoken_for == selectors.exposure_spoken_for(shift=shift)
    assert {"wellbeing.gate_snapshot", "wellbeing.shift_locked", "wellbeing.organisation_policy",
            "wellbeing.queue_policy", "wellbeing.exposure_settle_claim"} <= set(checked)
    assert compiled.shapes("wellbeing.gate_snapshot") == [True, True]  # with a shift and without: both compiled


def test_values_moved_in_python_and_none_against_an_id(moderator, moderator2):
    queue = make_queue()
    with time_machine.travel(T0, tick=False) as clock:
        _history(moderator, queue, clock)
    shift = Shift.objects.get(reviewer=moderator)
    for reviewer_id in (moderator.pk, moderator2.pk):
        for shift_id in (shift.pk, None):
            for now in (T0 - MIN, T0 + 30 * timedelta(seconds=1), T0 + 10 * MIN, T0 + 2 * timedelta(hours=1)):
                values = {"reviewer_id": reviewer_id, "shift_id": shift_id, "now": now}
                got = compiled.rows("test.entries", _entries, **values)
                assert got == list(_entries(**values))
    assert compiled.rows("test.entries", _entries, reviewer_id=moderator.pk, shift_id=shift.pk, now=T0 + 10 * MIN)
    assert compiled.shapes("test.entries") == [True, False]  # an id: compiled; None, `pk IN ()`: the queryset


def test_a_compiled_read_runs_one_statement_of_the_same_sql(moderator):
    queue = make_queue()
    with time_machine.travel(T0, tick=False) as clock:
        _history(moderator, queue, clock)
    shift = Shift.objects.get(reviewer=moderator)
    values = {"reviewer_id": moderator.pk, "shift_id": shift.pk, "now": T0 + 10 * MIN}
    compiled.rows("test.entries", _entries, **values)
    from django.db import connection

    with CaptureQueriesContext(connection) as plain:
        list(_entries(**values))
    with CaptureQueriesContext(connection) as cached:
        compiled.rows("test.entries", _entries, **values)
    assert [q["sql"] for q in cached] == [q["sql"] for q in plain]


def test_lists_of_different_lengths_are_shapes_of_their_own(moderator):
    queue = make_queue()
    for category in ("violence", "sexual", "unspecified", "violence"):
        ready_item(queue, category=category)

    def build(*, queue_id: int, categories: list[str]) -> QuerySet[Any, Any]:
        from intake.models import ContentItem

        return (ContentItem.objects.filter(queue_id=queue_id).exclude(category__in=categories)
                .order_by("pk").values("pk", "category", "created_at"))

    for categories in (["violence"], ["sexual"], ["violence", "sexual"], ["sexual", "violence"], ["x", "y", "z"],
                       ["violence", "violence"]):
        values: dict[str, Any] = {"queue_id": queue.pk, "categories": categories}
        assert compiled.rows("test.categories", build, **values) == list(build(**values))
    assert compiled.shapes("test.categories") == [True, True, True]  # one, two and three categories


def test_a_value_that_steers_the_query_unseen_runs_the_queryset(moderator, moderator2, caplog):
    def build(*, reviewer_id: int) -> QuerySet[Any, Any]:
        # The id decides the order in Python and never reaches the SQL: nothing proves a cached statement right.
        return User.objects.order_by("pk" if reviewer_id < 1000 else "-pk").values("pk")

    with caplog.at_level(logging.WARNING, logger="core.compiled"):
        for reviewer_id in (moderator.pk, moderator2.pk, moderator.pk):
            assert compiled.rows("test.steered", build, reviewer_id=reviewer_id) == list(build(reviewer_id=reviewer_id))
    assert compiled.shapes("test.steered") == [False]
    warnings = [r.getMessage() for r in caplog.records if "test.steered" in r.getMessage()]
    assert len(warnings) == 1 and "not among the parameters" in warnings[0]


def test_a_value_written_into_the_sql_runs_the_queryset(moderator, moderator2, caplog):
    def build(*, first: int) -> QuerySet[Any, Any]:
        return User.objects.order_by("pk").values("pk")[first:first + 1]  # an OFFSET in the SQL text, not a parameter

    with caplog.at_level(logging.WARNING, logger="core.compiled"):
        for first in (0, 1, 2):
            assert compiled.rows("test.sliced", build, first=first) == list(build(first=first))
    assert compiled.shapes("test.sliced") == [False]
    assert any("SQL differs" in r.getMessage() for r in caplog.records)


def test_values_of_other_types_run_the_queryset(moderator, caplog):
    def build(*, weight: Decimal) -> QuerySet[Any, Any]:
        return ExposureEntry.objects.filter(weight_percent__lte=weight).values("pk")

    with caplog.at_level(logging.WARNING, logger="core.compiled"):
        assert compiled.rows("test.decimal", build, weight=Decimal("1.5")) == []
        assert compiled.rows("test.decimal", build, weight=Decimal("2.5")) == []
    assert [r.getMessage() for r in caplog.records if "test.decimal" in r.getMessage()] == [
        "compiled queryset test.decimal: values of type Decimal are not compiled; running the queryset each time"]


def test_the_claim_path_reads_what_its_querysets_read(checked, moderator):
    """End to end: claims, reveals and finishes, with every compiled read checked against its queryset."""
    set_policy(cooldown=timedelta(0), interleave_benign=False)
    queue = make_queue()
    with time_machine.travel(T0, tick=False) as clock:
        _history(moderator, queue, clock)
        services.exposure_settle(reviewer=moderator)
    assert not ExposureEntry.objects.filter(exposure__isnull=True, claim__ended_at__isnull=False).exists()
    assert Claim.objects.filter(reviewer=moderator, ended_at__isnull=False).count() == 3
    assert {"wellbeing.gate_snapshot", "wellbeing.shift_locked", "wellbeing.exposure_settle_claim",
            "review_queue.lease_first:False:created_at,id",
            "core.roles"} <= set(checked)


def test_first_reads_the_row_first_reads(moderator, moderator2):
    from django.forms.models import model_to_dict

    from wellbeing import selectors
    from wellbeing.models import OrganisationPolicy

    def plain_current() -> OrganisationPolicy:  # what current() was before it was compiled
        found = OrganisationPolicy.objects.filter(pk=OrganisationPolicy.SINGLETON_PK).first()
        return found or OrganisationPolicy(pk=OrganisationPolicy.SINGLETON_PK)

    queue = make_queue()
    # As it stands (the defaults, or the row a migration wrote), then after a change.
    assert model_to_dict(OrganisationPolicy.objects.current()) == model_to_dict(plain_current())
    assert OrganisationPolicy.objects.current().pk == OrganisationPolicy.SINGLETON_PK
    assert selectors.queue_policy_of(queue_id=queue.pk) is None
    set_policy(exposure_cap_units=200, cooldown=timedelta(minutes=2))
    QueuePolicy.objects.create(queue=queue, severe_per_hour=6, specialist_category="violence")
    assert model_to_dict(OrganisationPolicy.objects.current()) == model_to_dict(plain_current())
    assert OrganisationPolicy.objects.current().cooldown == timedelta(minutes=2)
    assert compiled.shapes("wellbeing.organisation_policy") == [True]
    got_queue = selectors.queue_policy_of(queue_id=queue.pk)
    expected_queue = QueuePolicy.objects.filter(queue=queue).first()
    assert got_queue is not None and expected_queue is not None
    assert model_to_dict(got_queue) == model_to_dict(expected_queue)
    # The queryset's own order (shifts: latest first), as first() uses it.
    for day in (1, 3, 2):
        Shift.objects.create(reviewer=moderator, started_at=T0 - timedelta(days=day), ends_at=T0,
                             ended_at=T0 - timedelta(days=day, hours=-1), day=(T0 - timedelta(days=day)).date())
    for reviewer in (moderator, moderator2):
        def build(*, reviewer_id: int) -> QuerySet[Shift]:
            return Shift.objects.filter(reviewer_id=reviewer_id)

        got = compiled.first("test.shift", Shift, build, reviewer_id=reviewer.pk)
        expected = build(reviewer_id=reviewer.pk).first()
        assert (model_to_dict(got) if got else None) == (model_to_dict(expected) if expected else None)


def test_an_update_changes_what_the_queryset_update_changes(moderator, moderator2):
    from django.forms.models import model_to_dict

    queue = make_queue()
    with time_machine.travel(T0, tick=False) as clock:
        _history(moderator, queue, clock)
        item_claim(reviewer=moderator, queue=queue)  # one claim still open

    def build(*, reviewer_id: int, at: Any, outcome: Any) -> tuple[QuerySet[Any, Any], dict[str, Any]]:
        return (Claim.objects.filter(reviewer_id=reviewer_id, ended_at__isnull=True),
                {"ended_at": at, "outcome": outcome})

    def state() -> list[dict[str, Any]]:
        return [model_to_dict(c) for c in Claim.objects.order_by("pk")]

    cases = [(moderator2.pk, T0, Claim.Outcome.EXPIRED), (moderator.pk, T0 + 3 * MIN, Claim.Outcome.RELEASED),
             (moderator.pk, T0 + 5 * MIN, "decided"), (moderator.pk, None, "")]
    from django.db import transaction

    for reviewer_id, at, outcome in cases:
        with transaction.atomic():
            queryset, changes = build(reviewer_id=reviewer_id, at=at, outcome=outcome)
            expected_count = queryset.update(**changes)
            expected = state()
            transaction.set_rollback(True)
        with transaction.atomic():
            assert compiled.update("test.claim_end", build, reviewer_id=reviewer_id, at=at,
                                   outcome=outcome) == expected_count
            assert state() == expected
            transaction.set_rollback(True)
    # An id and a moment: compiled (the third case, a plain string for a TextChoices member, is the same shape);
    # no moment and no outcome, `SET ended_at = NULL`, a shape of its own.
    assert compiled.shapes("test.claim_end") == [True, True]


@pytest.mark.postgres
def test_a_statement_postgresql_will_not_prepare_runs_through_djangos_cursor(moderator, monkeypatch, caplog):
    from django.db import DatabaseError

    real = compiled._prepared_run
    refused: list[str] = []

    def refuse_once(found: Any, params: Any, connection: Any) -> Any:
        if not refused:
            refused.append(found.sql)
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 / 0")  # an error inside the savepoint, as a refused statement gives
            raise DatabaseError("unreachable")
        return real(found, params, connection)

    monkeypatch.setattr(compiled, "_prepared_run", refuse_once)
    values = {"reviewer_id": moderator.pk, "shift_id": 1, "now": T0}
    from django.db import transaction

    with caplog.at_level(logging.WARNING, logger="core.compiled"), transaction.atomic():
        assert compiled.rows("test.entries", _entries, **values) == list(_entries(**values))
        # The transaction goes on: the refusal was rolled back to its savepoint.
        assert compiled.rows("test.entries", _entries, **values) == list(_entries(**values))
    assert len(refused) == 1 and refused[0] in compiled._not_prepared
    assert any("not prepared" in r.getMessage() for r in caplog.records)


# ---- inserts (compiled.create) -------------------------------------------------------------------------------------


def _stored(model: Any, pk: int) -> dict[str, Any]:
    from django.forms.models import model_to_dict

    row = model.objects.get(pk=pk)
    found = model_to_dict(row, fields=[f.name for f in model._meta.concrete_fields if f.name != "id"])
    return found


def test_create_writes_the_row_create_writes(moderator):
    """The audit event (an auto_now_add moment, a JSON document, foreign keys as instances and as None), a claim and
    its ledger entry: compiled.create and Model.objects.create store the same row, on the first call (which compiles)
    and on later ones (which bind), and return an instance with its key, saved."""
    from core.models import AuditEvent

    queue = make_queue()
    item = ready_item(queue)
    with time_machine.travel(T0, tick=False):
        for n in range(3):
            values: dict[str, Any] = {"action": AuditEvent.Action.CLAIMED, "actor": moderator if n != 1 else None,
                                      "item": item, "data": {"claim": n, "note": "é ✓", "nested": [1, {"a": None}]}}
            ours = compiled.create("test.audit", AuditEvent, **values)
            theirs = AuditEvent.objects.create(**values)
            assert ours.pk is not None and ours.pk != theirs.pk
            assert not ours._state.adding and ours._state.db == "default"
            assert ours.at == T0
            assert _stored(AuditEvent, ours.pk) == _stored(AuditEvent, theirs.pk)
        values = {"queue": queue, "reviewer": moderator, "claimed_at": T0, "expires_at": T0 + MIN}
        claims = [compiled.create("test.claim", Claim, item=item, **values),
                  Claim.objects.create(item=ready_item(queue), **values)]
        assert claims[0].outcome == Claim.Outcome.OPEN  # the field's default, on the instance as create() leaves it
        assert {**_stored(Claim, claims[0].pk), "item": None} == {**_stored(Claim, claims[1].pk), "item": None}
    assert compiled.shapes("test.audit") == [] and [k for k in compiled._cache if k[:2] == ("create", "test.audit")]


def test_create_with_save_signals_listening_runs_save(moderator):
    from django.db.models.signals import post_save

    from core.models import AuditEvent

    heard: list[int] = []

    def receiver(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
        heard.append(instance.pk)

    post_save.connect(receiver, sender=AuditEvent)
    try:
        event = compiled.create("test.audit_signalled", AuditEvent, action=AuditEvent.Action.CLAIMED, actor=moderator)
    finally:
        post_save.disconnect(receiver, sender=AuditEvent)
    assert heard == [event.pk]
    assert not [k for k in compiled._cache if k[:2] == ("create", "test.audit_signalled")]


def test_a_refused_insert_raises_and_spoils_the_transaction_as_create_does(moderator):
    from django.db import IntegrityError, transaction

    queue = make_queue()
    item = ready_item(queue)
    values = {"item": item, "queue": queue, "reviewer": moderator, "claimed_at": T0, "expires_at": T0 + MIN}
    compiled.create("test.claim_twice", Claim, **values)  # compiles; one open claim per item is a constraint
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            compiled.create("test.claim_twice", Claim, **values)
        assert transaction.get_rollback()  # the block rolls back, as after a failed create()
    assert Claim.objects.filter(item=item).count() == 1


def _inserts(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "INSERT INTO" in q["sql"]]


def test_together_writes_the_same_rows_in_one_statement_on_postgresql(moderator):
    """Inside together(), the creates of a transaction go to the database at the block's end, as one statement on
    PostgreSQL (the data-modifying CTEs of their compiled INSERTs); each row is the one create() writes, and each
    instance gets its key at the end of the block. Elsewhere every create() runs where it is called."""
    from django.db import connection, transaction

    from core.models import AuditEvent

    queue = make_queue()
    item = ready_item(queue)
    on_postgresql = connection.vendor == "postgresql"
    with time_machine.travel(T0, tick=False):
        for n in range(3):  # the first compiles each insert, later ones bind them
            claim_values = {"queue": queue, "reviewer": moderator, "claimed_at": T0, "expires_at": T0 + MIN}
            claimed = ready_item(queue)
            with transaction.atomic(), CaptureQueriesContext(connection) as queries:
                with compiled.together():
                    event = compiled.create("test.together_audit", AuditEvent, action=AuditEvent.Action.CLAIMED,
                                            actor=moderator, item=item, data={"n": n, "note": "é ✓"})
                    claim = compiled.create("test.together_claim", Claim, item=claimed, **claim_values)
                    assert (event.pk is None and claim.pk is None) == on_postgresql
                assert event.pk is not None and claim.pk is not None
                assert not event._state.adding and not claim._state.adding
            inserts = _inserts(queries)
            assert len(inserts) == (1 if on_postgresql else 2), inserts
            theirs = AuditEvent.objects.create(action=AuditEvent.Action.CLAIMED, actor=moderator, item=item,
                                               data={"n": n, "note": "é ✓"})
            assert _stored(AuditEvent, event.pk) == _stored(AuditEvent, theirs.pk)
            other = Claim.objects.create(item=ready_item(queue), **claim_values)
            assert {**_stored(Claim, claim.pk), "item": None} == {**_stored(Claim, other.pk), "item": None}


@pytest.mark.django_db(transaction=True)  # autocommit, as outside a request's transaction
def test_together_outside_a_transaction_writes_each_row_where_it_is_created(moderator):
    from core.models import AuditEvent

    with compiled.together():
        event = compiled.create("test.together_alone", AuditEvent, action=AuditEvent.Action.CLAIMED, actor=moderator)
        assert event.pk is not None and AuditEvent.objects.filter(pk=event.pk).exists()


def test_together_keeps_the_order_when_a_create_cannot_wait(moderator):
    """A create() that runs save() (a signal listens) sends what waits first: the rows keep their call order."""
    from django.db import transaction
    from django.db.models.signals import post_save

    from core.models import AuditEvent

    heard: list[int] = []

    def receiver(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
        heard.append(instance.pk)

    queue = make_queue()
    with transaction.atomic(), compiled.together():
        first = compiled.create("test.together_first", Claim, item=ready_item(queue), queue=queue,
                                reviewer=moderator, claimed_at=T0, expires_at=T0 + MIN)
        post_save.connect(receiver, sender=AuditEvent)
        try:
            second = compiled.create("test.together_second", AuditEvent, action=AuditEvent.Action.CLAIMED)
        finally:
            post_save.disconnect(receiver, sender=AuditEvent)
        assert first.pk is not None  # written before the save() that could not wait
    assert heard == [second.pk]


def test_together_writes_what_waits_when_the_block_ends_by_an_exception(moderator):
    """A caller that handles the exception and commits loses nothing (the claim gate commits what it recorded before
    a refusal)."""
    from django.db import transaction

    from core.models import AuditEvent

    with transaction.atomic(), pytest.raises(LookupError), compiled.together():
        event = compiled.create("test.together_raised", AuditEvent, action=AuditEvent.Action.CLAIMED,
                                actor=moderator)
        raise LookupError("refused")
    assert event.pk is not None and AuditEvent.objects.filter(pk=event.pk).exists()


def test_together_a_refused_insert_spoils_the_transaction_as_create_does(moderator):
    from django.db import IntegrityError, transaction

    from core.models import AuditEvent

    queue = make_queue()
    item = ready_item(queue)
    values = {"item": item, "queue": queue, "reviewer": moderator, "claimed_at": T0, "expires_at": T0 + MIN}
    compiled.create("test.together_twice", Claim, **values)  # one open claim per item is a constraint
    with transaction.atomic():
        with pytest.raises(IntegrityError), compiled.together():
            compiled.create("test.together_event", AuditEvent, action=AuditEvent.Action.CLAIMED)
            compiled.create("test.together_twice", Claim, **values)
        assert transaction.get_rollback()
    assert Claim.objects.filter(item=item).count() == 1


def _writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries
            if any(word in q["sql"] for word in ("INSERT INTO", "UPDATE \"", "DELETE FROM"))]


def test_together_updates_wait_and_count_with_the_inserts(moderator):
    """update_later() inside together(): on PostgreSQL the UPDATE waits for the block's end and goes in the same
    statement as the inserts, its row count known then; elsewhere it runs at once. The rows changed are those
    update() changes, a conditional update that matches nothing counts 0, and an insert given its key (from the
    claims' sequence, as the lease takes it) is referred to by another insert of the same statement."""
    from django.db import connection, transaction

    queue = make_queue()
    on_postgresql = connection.vendor == "postgresql"

    def to_review(*, item_id: int, wanted: str) -> Any:
        return ContentItem.objects.filter(pk=item_id, status=wanted), {"status": ContentItem.Status.IN_REVIEW}

    for n in range(3):  # the first compiles each statement, later ones bind them
        item, taken = ready_item(queue), ready_item(queue)
        ContentItem.objects.filter(pk=taken.pk).update(status=ContentItem.Status.IN_REVIEW)
        key = (Claim.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000 + n
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            with compiled.together():
                leased = compiled.update_later("test.together_lease", to_review, item_id=item.pk,
                                               wanted=ContentItem.Status.READY)
                missed = compiled.update_later("test.together_lease", to_review, item_id=taken.pk,
                                               wanted=ContentItem.Status.READY)
                claim = compiled.create("test.together_keyed_claim", Claim, id=key, item=item, queue=queue,
                                        reviewer=moderator, claimed_at=T0, expires_at=T0 + MIN)
                assert claim.pk == key  # given, so known at once
                reveal = compiled.create("test.together_reveal", RevealEvent, item=item, claim=claim,
                                         reviewer=moderator, started_at=T0, allowed_seconds=5)
                if on_postgresql:
                    with pytest.raises(RuntimeError):
                        _ = leased.value
            assert (leased.value, missed.value) == (1, 0)
            assert reveal.pk is not None
        assert len(_writes(queries)) == (1 if on_postgresql else 4), _writes(queries)
        assert ContentItem.objects.get(pk=item.pk).status == ContentItem.Status.IN_REVIEW
        assert Claim.objects.get(pk=key).item_id == item.pk
        assert RevealEvent.objects.get(pk=reveal.pk).claim_id == key
    assert [k for k in compiled._cache if k[:2] == ("create", "test.together_keyed_claim")]


def test_create_given_its_key_writes_the_row_save_writes(moderator):
    """A claim given its key (compiled once as its own kind of insert) is the row save(force_insert=True) writes."""
    from django.db import connection

    queue = make_queue()
    values = {"queue": queue, "reviewer": moderator, "claimed_at": T0, "expires_at": T0 + MIN}
    top = Claim.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    for n in range(2):
        ours = compiled.create("test.keyed_claim", Claim, id=top + 100 + n, item=ready_item(queue), **values)
        theirs = Claim(id=top + 200 + n, item=ready_item(queue), **values)
        theirs.save(force_insert=True)
        assert ours.pk == top + 100 + n and not ours._state.adding
        assert {**_stored(Claim, ours.pk), "item": None} == {**_stored(Claim, theirs.pk), "item": None}
    assert ("create", "test.keyed_claim", "default", connection.vendor, True) in compiled._cache


def test_a_read_inside_a_together_block_sees_what_waits(moderator):
    from django.db import transaction

    queue = make_queue()
    item = ready_item(queue)
    with transaction.atomic(), compiled.together():
        claim = compiled.create("test.together_then_read", Claim, item=item, queue=queue, reviewer=moderator,
                                claimed_at=T0, expires_at=T0 + MIN)
        found = compiled.rows("test.together_read", lambda *, item_id: Claim.objects.filter(item_id=item_id)
                              .values("pk"), item_id=item.pk)
        assert found == [{"pk": claim.pk}]


def _shift_started(moderator: User, *, items: int) -> Any:
    """A queue of `items` waiting items, the first claimed and finished at T0: the moderator's shift started and the
    claim path compiled, so what follows is a steady claim's."""
    queue = make_queue()
    for _ in range(items):
        ready_item(queue)
    with time_machine.travel(T0, tick=False):
        finish(item_claim(reviewer=moderator, queue=queue))
    return queue


def test_a_claim_and_its_end_each_write_in_one_statement_on_postgresql(moderator):
    """The lease, the claim, its audit event and its exposure reservation: one statement on PostgreSQL; the claim's
    end and its settlement: one more (review.services._lease, review.models.Claim.end). SQLite writes each where it
    is made. The rows are checked by the claim and settlement tests; here, the statements."""
    from django.db import connection

    queue = _shift_started(moderator, items=2)
    on_postgresql = connection.vendor == "postgresql"
    with time_machine.travel(T0 + MIN, tick=False):
        with CaptureQueriesContext(connection) as queries:
            claim = item_claim(reviewer=moderator, queue=queue)
        writes = _writes(queries)
        assert len(writes) == (1 if on_postgresql else 4), writes
        claim_key = Claim.objects.get(pk=claim.pk)
        assert AuditEvent.objects.filter(item=claim.item, action="claimed").latest("id").data["claim"] == claim.pk
        assert ExposureEntry.objects.get(claim=claim_key).exposure is None
    with time_machine.travel(T0 + 2 * MIN, tick=False):
        with CaptureQueriesContext(connection) as queries:
            assert Claim.objects.get(pk=claim.pk).end(outcome=Claim.Outcome.DECIDED, at=T0 + 2 * MIN)
        writes = _writes(queries)
        assert len(writes) == (1 if on_postgresql else 2), writes
        assert Claim.objects.get(pk=claim.pk).ended_at == T0 + 2 * MIN
        assert ExposureEntry.objects.get(claim_id=claim.pk).exposure is not None
        assert not Claim.objects.get(pk=claim.pk).end(outcome=Claim.Outcome.DECIDED, at=T0 + 3 * MIN)  # ended


def test_a_lease_whose_item_changed_is_refused_and_leaves_nothing(moderator):
    """The lease's conditional status change is a guard behind the pick's row lock: an item that is no longer
    waiting raises LeaseLost, and the claim's transaction leaves no claim, audit event or reservation."""
    from django.db import transaction

    from review import services as review_services

    queue = make_queue()
    item = ready_item(queue)
    ContentItem.objects.filter(pk=item.pk).update(status=ContentItem.Status.IN_REVIEW)
    with pytest.raises(review_services.LeaseLost), transaction.atomic():
        constraints = services.claim_gate(reviewer=moderator, queue=queue)
        assert isinstance(constraints, services.ClaimConstraints)
        review_services._lease(item=item, claim_key=None, wanted=ContentItem.Status.READY, reviewer=moderator,
                               queue=queue, now=T0, expires=T0 + MIN, constraints=constraints)
    assert not Claim.objects.filter(item=item).exists()
    assert not AuditEvent.objects.filter(item=item, action="claimed").exists()
    assert not ExposureEntry.objects.filter(item=item).exists()


@pytest.mark.postgres
def test_prepared_statements_get_their_generic_plan_from_the_first_run(moderator):
    """The shipped settings open PostgreSQL connections with plan_cache_mode=force_generic_plan (config.settings):
    compiled statements are planned once per connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == ("force_generic_plan",)


def test_a_nested_together_block_sends_at_its_own_end(moderator):
    """A block inside another sends what waits when it ends, so its caller can read its counts and keys."""
    from django.db import transaction

    queue = make_queue()
    item = ready_item(queue)
    with transaction.atomic(), compiled.together():
        with compiled.together():
            counted = compiled.update_later("test.nested_lease", lambda *, item_id: (
                ContentItem.objects.filter(pk=item_id), {"status": ContentItem.Status.IN_REVIEW}), item_id=item.pk)
        assert counted.value == 1


def test_a_joined_block_sends_with_the_enclosing_one(moderator):
    """together(join=True) inside another block adds its writes to that block's: they go when it ends, in the same
    statement on PostgreSQL. Alone, a joined block is a block of its own."""
    from django.db import connection, transaction

    queue = make_queue()
    on_postgresql = connection.vendor == "postgresql"

    def to_review(*, item_id: int) -> Any:
        return ContentItem.objects.filter(pk=item_id), {"status": ContentItem.Status.IN_REVIEW}

    first, second, alone = ready_item(queue), ready_item(queue), ready_item(queue)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        with compiled.together():
            outer = compiled.update_later("test.joined", to_review, item_id=first.pk)
            with compiled.together(join=True):
                inner = compiled.update_later("test.joined", to_review, item_id=second.pk)
            if on_postgresql:
                with pytest.raises(RuntimeError):  # still waiting for the enclosing block
                    _ = inner.value
        assert (outer.value, inner.value) == (1, 1)
    assert len(_writes(queries)) == (1 if on_postgresql else 2), _writes(queries)
    with transaction.atomic(), compiled.together(join=True):
        counted = compiled.update_later("test.joined", to_review, item_id=alone.pk)
    assert counted.value == 1
    assert set(ContentItem.objects.filter(pk__in=[first.pk, second.pk, alone.pk]).values_list("status", flat=True)) \
        == {ContentItem.Status.IN_REVIEW}


def test_an_update_that_counts_other_than_expected_raises_and_rolls_back(moderator):
    """update_later(expect=n): a count other than n raises WrongCount where it becomes known (at the block's end on
    PostgreSQL, at once elsewhere), after every key and count of the block is set, and the transaction cannot
    commit: a caller that catches it inside the transaction still has everything rolled back."""
    from django.db import transaction

    queue = make_queue()
    item, taken = ready_item(queue), ready_item(queue)
    ContentItem.objects.filter(pk=taken.pk).update(status=ContentItem.Status.IN_REVIEW)

    def to_review(*, item_id: int, wanted: str) -> Any:
        return ContentItem.objects.filter(pk=item_id, status=wanted), {"status": ContentItem.Status.IN_REVIEW}

    with pytest.raises(compiled.WrongCount) as raised, transaction.atomic(), compiled.together():
        leased = compiled.update_later("test.expect", to_review, expect=1, item_id=item.pk,
                                       wanted=ContentItem.Status.READY)
        compiled.update_later("test.expect", to_review, expect=1, item_id=taken.pk,
                              wanted=ContentItem.Status.READY)
    assert (raised.value.expected, raised.value.updated) == (1, 0)
    assert leased.value == 1  # it was written, then rolled back
    assert ContentItem.objects.get(pk=item.pk).status == ContentItem.Status.READY
    with transaction.atomic():
        try:
            with compiled.together():
                compiled.update_later("test.expect", to_review, expect=1, item_id=item.pk,
                                      wanted=ContentItem.Status.READY)
                compiled.update_later("test.expect", to_review, expect=1, item_id=taken.pk,
                                      wanted=ContentItem.Status.READY)
        except compiled.WrongCount:
            pass
        assert transaction.get_rollback()
    assert ContentItem.objects.get(pk=item.pk).status == ContentItem.Status.READY
    right = compiled.update_later("test.expect", to_review, expect=1, item_id=item.pk,
                                  wanted=ContentItem.Status.READY)  # autocommit: at once
    assert right.value == 1


def test_a_claims_end_joins_its_callers_block(moderator):
    """Claim.end inside the caller's together() block (as a decision calls it): its read first, then its writes go
    with the caller's own, in one statement on PostgreSQL; a claim that ended already is ended at once and its
    count says so."""
    from django.db import connection, transaction

    queue = _shift_started(moderator, items=3)
    on_postgresql = connection.vendor == "postgresql"
    for n in range(2):
        at = T0 + (n + 1) * MIN
        with time_machine.travel(at, tick=False):
            claim = item_claim(reviewer=moderator, queue=queue)
            with transaction.atomic(), CaptureQueriesContext(connection) as queries, compiled.together():
                assert claim.end(outcome=Claim.Outcome.DECIDED, at=at)
                compiled.update_later("test.retire", lambda *, item_id: (ContentItem.objects.filter(
                    pk=item_id), {"status": ContentItem.Status.DECIDED}), item_id=claim.item_id)
            writes = _writes(queries)
            assert len(writes) == (1 if on_postgresql else 3), writes
            assert Claim.objects.get(pk=claim.pk).ended_at == at
            assert ExposureEntry.objects.get(claim_id=claim.pk).ended_at == at
            assert ContentItem.objects.get(pk=claim.item_id).status == ContentItem.Status.DECIDED
            with transaction.atomic(), compiled.together():
                assert not Claim.objects.get(pk=claim.pk).end(outcome=Claim.Outcome.RELEASED, at=at + MIN)
            assert Claim.objects.get(pk=claim.pk).outcome == Claim.Outcome.DECIDED


def test_a_claims_end_that_its_read_and_write_disagree_on_rolls_back(moderator, monkeypatch):
    """The claim's conditional end is a guard behind the read: were the read to show the claim open when it had
    ended (a caller without the item's lock), the end raises WrongCount and nothing of the transaction stays."""
    from django.db import transaction

    queue = make_queue()
    ready_item(queue)
    with time_machine.travel(T0, tick=False):
        claim = item_claim(reviewer=moderator, queue=queue)
        Claim.objects.filter(pk=claim.pk).update(ended_at=T0, outcome=Claim.Outcome.RELEASED)
    stale = services.ClaimSettled(claim_ended=False, reveals_open=False, written=[])
    monkeypatch.setattr(services, "exposure_settle_claim", lambda **_: stale)  # what review.models calls
    with pytest.raises(compiled.WrongCount), transaction.atomic(), compiled.together():
        claim.end(outcome=Claim.Outcome.DECIDED, at=T0 + MIN)
        ContentItem.objects.filter(pk=claim.item_id).update(status=ContentItem.Status.DECIDED)
    assert Claim.objects.get(pk=claim.pk).outcome == Claim.Outcome.RELEASED
    assert ContentItem.objects.get(pk=claim.item_id).status == ContentItem.Status.IN_REVIEW


def test_a_decision_writes_in_one_statement_on_postgresql(moderator):
    """do_decision reads first (the item under its lock with the decision's key, the lease, the settlement), then
    the decision, the item's status, the claim's end with its settlement and the audit event go as one statement on
    PostgreSQL; SQLite writes each where it is made. The rows are those the decision tests check; here, each action's
    rows and the statements."""
    from django.db import connection

    from review.decisions import do_decision

    queue = make_queue()
    on_postgresql = connection.vendor == "postgresql"
    for _ in range(4):
        ready_item(queue)
    for n, action in enumerate(("approve", "escalate", "second_opinion", "approve")):
        at = T0 + n * MIN
        with time_machine.travel(at, tick=False):
            claim = item_claim(reviewer=moderator, queue=queue)
            with CaptureQueriesContext(connection) as queries:
                decision = do_decision(item=claim.item, reviewer=moderator, action=action, policy=None,
                                       reason="" if action == "approve" else "needs another look")
            writes = _writes(queries)
            if n:  # the first compiles
                assert len(writes) == (1 if on_postgresql else 5), writes
        item = ContentItem.objects.get(pk=claim.item_id)
        assert item.status == {"approve": "decided", "escalate": "escalated", "second_opinion": "ready"}[action]
        assert (item.escalated_at == at) is (action == "escalate")
        assert (item.second_opinion_excluded_id == moderator.pk) is (action == "second_opinion")
        ended = Claim.objects.get(pk=claim.pk)
        assert ended.ended_at == at and ended.outcome == {"approve": "decided", "escalate": "escalated",
                                                          "second_opinion": "second_opinion"}[action]
        assert ExposureEntry.objects.get(claim=ended).exposure is not None
        event = AuditEvent.objects.filter(item=item).latest("id")
        assert event.data["decision"] == decision.pk and event.actor_id == moderator.pk
        assert event.action == {"approve": "decided", "escalate": "escalated", "second_opinion": "second_opinion"}[
            action]
