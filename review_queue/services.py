"""Writes for the review queue: claiming with a lease, releasing, expiring leases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from config import db
from config.roles import Role, has_role
from moderation.models import AuditEvent, ContentItem, Severity
from moderation.services import ReviewError, audit_record
from review_queue.models import Claim, Queue
from wellbeing import services as wellbeing


class NothingToClaim(ReviewError):
    status = 404


def _supports_skip_locked() -> bool:
    return bool(connection.features.has_select_for_update_skip_locked)


def leases_expire(*, queue: Queue | None = None, now: datetime | None = None) -> int:
    """Return items whose lease ran out to their queue, and record it. Safe to run from many places at once."""
    now = now or timezone.now()
    expired = 0
    with transaction.atomic():
        candidates = ContentItem.objects.filter(status=ContentItem.Status.IN_REVIEW, lease_expires_at__lte=now)
        if queue is not None:
            candidates = candidates.filter(queue=queue)
        if _supports_skip_locked():
            candidates = candidates.select_for_update(skip_locked=True)
        for item in candidates.order_by("id")[:500]:
            holder_id = item.lease_holder_id
            # Conditional update: on SQLite (no row locks) this is what keeps two expirers from both acting.
            updated = ContentItem.objects.filter(
                pk=item.pk, status=ContentItem.Status.IN_REVIEW, lease_expires_at=item.lease_expires_at
            ).update(status=item.resting_status, lease_holder=None, lease_expires_at=None)
            if not updated:
                continue
            Claim.objects.filter(item=item, ended_at__isnull=True).update(ended_at=now, outcome=Claim.Outcome.EXPIRED)
            audit_record(action=AuditEvent.Action.LEASE_EXPIRED, item=item, holder=holder_id)
            expired += 1
        if expired:
            from review_queue import realtime

            queue_ids = [queue.pk] if queue is not None else None
            transaction.on_commit(lambda: realtime.queue_counts_changed(queue_ids=queue_ids))
    return expired


def item_claim(*, reviewer: User, queue: Queue, escalated: bool = False) -> Claim:
    """Lease the next item of a queue to a reviewer. Never gives one item to two people.

    A reviewer holding a live lease gets that item back instead of a second one. Escalated items are claimed by
    team leads only. Otherwise the wellbeing gate decides, in this transaction and under the reviewer's shift lock,
    whether they may take another item now (shift, breaks, exposure cap) and of what kind.
    """
    if not queue.is_active:
        raise ReviewError("queue_closed", gettext("This queue is closed."), status=409)
    if escalated and not has_role(reviewer, Role.TEAM_LEAD):
        raise ReviewError("forbidden", gettext("Escalated items are reviewed by team leads."), status=403)
    if not has_role(reviewer, Role.MODERATOR, Role.TEAM_LEAD):
        raise ReviewError("forbidden", gettext("Only moderators and team leads review items."), status=403)

    refusal: ReviewError | None = None
    with transaction.atomic():
        try:
            gate = wellbeing.claim_gate(reviewer=reviewer, queue=queue)
        except ReviewError as exc:
            # Commit what the gate recorded on the way (a shift that ended, a break that began), then refuse.
            refusal = exc
        else:
            if isinstance(gate, wellbeing.HeldClaim):
                return Claim.objects.select_related("item").get(pk=gate.claim_id)
            now = gate.now or timezone.now()  # read by the gate once it held the reviewer's shift lock
            if gate.expired_leases_waiting:
                leases_expire(queue=queue, now=now)  # items whose lease ran out go back before choosing one
            wanted = ContentItem.Status.ESCALATED if escalated else ContentItem.Status.READY
            batches = _batches(gate)
            claim = _lease_first(reviewer=reviewer, queue=queue, now=now, wanted=wanted, batches=batches,
                                 constraints=gate)
            if claim is not None:
                return claim
            waiting = _waiting(queue=queue, wanted=wanted, reviewer=reviewer)
            allowed = _batch_queryset(waiting, gate, batches[-1])
            if waiting.exclude(pk__in=allowed.order_by().values("pk")).exists():
                # Items are waiting, but the gate held them back: say why rather than "nothing is waiting".
                refusal = gate.refusal_when_empty()
    if refusal is not None:
        raise refusal
    raise NothingToClaim("queue_empty", gettext("Nothing is waiting in this queue right now."))


@dataclass(frozen=True)
class _Batch:
    """One pass over the waiting items: which of those the gate allows to take, in what order."""

    benign_only: bool
    order: tuple[str, ...]


def _batches(constraints: wellbeing.ClaimConstraints) -> list[_Batch]:
    """The passes to try, in turn: near the cap milder items first, otherwise oldest first; after a severe item a
    benign one first when the queue has one."""
    order = ("severity", "created_at", "id") if constraints.lower_severity_first else ("created_at", "id")
    batches = [_Batch(benign_only=False, order=order)]
    if constraints.prefer_benign:
        batches.insert(0, _Batch(benign_only=True, order=("created_at", "id")))
    return batches


def _waiting(*, queue: Queue, wanted: str, reviewer: User) -> QuerySet[ContentItem]:
    return ContentItem.objects.filter(queue=queue, status=wanted).exclude(second_opinion_excluded=reviewer)


def _batch_queryset(waiting: QuerySet[ContentItem], constraints: wellbeing.ClaimConstraints,
                    batch: _Batch) -> QuerySet[ContentItem]:
    allowed = waiting.filter(severity__lte=constraints.max_severity)
    if constraints.excluded_categories:
        allowed = allowed.exclude(category__in=sorted(constraints.excluded_categories))
    if batch.benign_only:
        allowed = allowed.filter(severity=Severity.NONE)
    return allowed.order_by(*batch.order)


def _lease_first(
    *, reviewer: User, queue: Queue, now: datetime, wanted: str, batches: list[_Batch],
    constraints: wellbeing.ClaimConstraints,
) -> Claim | None:
    expires = now + timedelta(seconds=queue.lease_duration_seconds)
    settle = constraints.settle  # the finished item the gate settled: written with the first statement below
    if settle is not None and not _claims_in_one_statement():
        wellbeing.settle_write(settle)
        settle = None
    for batch in batches:
        if _claims_in_one_statement():
            claim = _claim_in_one_statement(reviewer=reviewer, queue=queue, now=now, expires=expires, wanted=wanted,
                                            batch=batch, constraints=constraints, settle=settle)
            settle = None  # written by that statement, whether it leased an item or not
            if claim is None:
                continue
            return claim
        candidates = _batch_queryset(_waiting(queue=queue, wanted=wanted, reviewer=reviewer), constraints, batch)
        if _supports_skip_locked():
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        # On SQLite the IMMEDIATE transaction serialises claimers, and the conditional UPDATE is a second guard.
        for item in candidates[:5]:
            updated = ContentItem.objects.filter(pk=item.pk, status=wanted).update(
                status=ContentItem.Status.IN_REVIEW, lease_holder=reviewer, lease_expires_at=expires
            )
            if not updated:
                continue
            item.status, item.lease_holder, item.lease_expires_at = ContentItem.Status.IN_REVIEW, reviewer, expires
            claim = Claim.objects.create(item=item, queue=queue, reviewer=reviewer, claimed_at=now, expires_at=expires)
            claim.item = item
            audit_record(action=AuditEvent.Action.CLAIMED, actor=reviewer, item=item, claim=claim.pk,
                         expires_at=expires.isoformat())
            wellbeing.exposure_open(claim=claim, constraints=constraints)
            _counts_change_on_commit(queue)
            return claim
    return None


def _claims_in_one_statement() -> bool:
    return connection.vendor == "postgresql"


_ITEM_FIELDS = ContentItem._meta.concrete_fields
_ITEM_ATTNAMES = [f.attname for f in _ITEM_FIELDS]


def _pick_sql(*, batch: _Batch, excluded: int) -> str:
    """`_batch_queryset(...).values("pk")` as the ORM writes it on PostgreSQL, kept as text: compiling the queryset
    on every claim cost more than running it. `test_the_pick_sql_orders_as_the_queryset_does` holds the two
    together."""
    quote = connection.ops.quote_name
    table = quote(ContentItem._meta.db_table)
    where = [
        "queue_id = %s", "status = %s",
        "NOT (second_opinion_excluded_id = %s AND second_opinion_excluded_id IS NOT NULL)", "severity <= %s",
    ]
    if excluded:
        where.append(f"NOT (category IN ({', '.join(['%s'] * excluded)}))")
    if batch.benign_only:
        where.append("severity = %s")
    order = ", ".join(f"{quote(name)} ASC" for name in batch.order)
    return f"SELECT id FROM {table} WHERE ({' AND '.join(where)}) ORDER BY {order}"  # noqa: S608


def _pick_params(*, queue: Queue, wanted: str, reviewer: User, constraints: wellbeing.ClaimConstraints,
                 batch: _Batch) -> list[Any]:
    params: list[Any] = [queue.pk, wanted, reviewer.pk, int(constraints.max_severity),
                         *sorted(constraints.excluded_categories)]
    if batch.benign_only:
        params.append(int(Severity.NONE))
    return params


@cache
def _claim_sql(*, batch: _Batch, excluded: int, settles: bool) -> str:
    quote = connection.ops.quote_name
    item_columns = ", ".join(quote(str(f.column)) for f in _ITEM_FIELDS)
    table = quote(ContentItem._meta.db_table)
    # A data-modifying CTE runs to completion whether or not the rest of the statement reads it: the settlement
    # is written even when no item is leased.
    settled = f"settled AS ({wellbeing.SETTLE_SQL}), " if settles else ""
    return f"""
WITH {settled}leased AS (
  UPDATE {table} SET status = %s, lease_holder_id = %s, lease_expires_at = %s
  WHERE id = ({_pick_sql(batch=batch, excluded=excluded)} LIMIT 1 FOR UPDATE OF {table} SKIP LOCKED)
    AND status = %s
  RETURNING {item_columns}
), claimed AS (
  INSERT INTO {quote(Claim._meta.db_table)} (item_id, queue_id, reviewer_id, claimed_at, expires_at, ended_at, outcome)
  SELECT id, %s, %s, %s, %s, NULL, %s FROM leased
  RETURNING id, item_id
), audited AS (
  INSERT INTO {quote(AuditEvent._meta.db_table)} (at, actor_id, action, item_id, data)
  SELECT %s, %s, %s, claimed.item_id, jsonb_build_object('claim', claimed.id, 'expires_at', %s::text) FROM claimed
  RETURNING id
), exposed AS ({wellbeing.EXPOSURE_INSERT_SQL})
SELECT claimed.id, (SELECT count(*) FROM audited), (SELECT count(*) FROM exposed), leased.*
FROM claimed JOIN leased ON leased.id = claimed.item_id
"""  # noqa: S608 (names from the models; every value is a bound parameter)


def _claim_in_one_statement(
    *, reviewer: User, queue: Queue, now: datetime, expires: datetime, wanted: str, batch: _Batch,
    constraints: wellbeing.ClaimConstraints, settle: wellbeing.PendingSettle | None,
) -> Claim | None:
    """PostgreSQL: what the loop above does, in one round trip. Pick, lock and lease the first allowed item as a
    raw SKIP LOCKED claim would (`UPDATE … WHERE id = (SELECT id … FOR UPDATE SKIP LOCKED LIMIT 1)`), and in the
    same statement write the claim, its audit event, its exposure entry and the settlement of the item finished
    before, when the gate left one (data-modifying CTEs). The pick is the portable path's queryset as SQL text, so
    the filters and the order are the same; tests compare the rows both paths write. A prepared statement
    (config.db) where that is on: planned once per connection."""
    sql = _claim_sql(batch=batch, excluded=len(constraints.excluded_categories), settles=settle is not None)
    params = [
        *(settle.params() if settle is not None else []),
        ContentItem.Status.IN_REVIEW.value, reviewer.pk, expires,
        *_pick_params(queue=queue, wanted=wanted, reviewer=reviewer, constraints=constraints, batch=batch), wanted,
        queue.pk, reviewer.pk, now, expires, Claim.Outcome.OPEN.value,
        timezone.now(), reviewer.pk, AuditEvent.Action.CLAIMED.value, expires.isoformat(),
        *wellbeing.exposure_insert_params(constraints=constraints, reviewer_id=reviewer.pk, queue_id=queue.pk,
                                          claimed_at=now),
    ]
    row = db.fetchone(sql, params)
    if row is None:
        return None
    claim_id, audited, exposed, *item_values = row
    if (audited, exposed) != (1, 1):  # cannot happen: both insert from the one claimed row
        raise RuntimeError(f"claim {claim_id}: {audited} audit events and {exposed} exposure entries")
    item = ContentItem.from_db(connection.alias, _ITEM_ATTNAMES, item_values)
    item.lease_holder = reviewer
    claim = Claim(id=claim_id, item=item, queue=queue, reviewer=reviewer, claimed_at=now, expires_at=expires)
    claim._state.adding, claim._state.db = False, connection.alias
    wellbeing.exposure_opened(constraints=constraints)
    _counts_change_on_commit(queue)
    return claim


def _counts_change_on_commit(queue: Queue) -> None:
    from review_queue import realtime

    queue_id = queue.pk
    transaction.on_commit(lambda: realtime.queue_counts_changed(queue_ids=[queue_id]))


def item_release(*, item: ContentItem, reviewer: User) -> None:
    """Give an item back untouched (skip). It returns to the front of its queue for someone else."""
    now = timezone.now()
    with transaction.atomic():
        item = ContentItem.objects.select_for_update().get(pk=item.pk)
        claim = Claim.objects.filter(item=item, reviewer=reviewer, ended_at__isnull=True).first()
        if claim is None or item.lease_holder_id != reviewer.pk:
            raise ReviewError("not_lease_holder", gettext("You do not hold this item."), status=409)
        item.status = item.resting_status
        item.lease_holder = None
        item.lease_expires_at = None
        item.save(update_fields=["status", "lease_holder", "lease_expires_at"])
        Claim.objects.filter(pk=claim.pk).update(ended_at=now, outcome=Claim.Outcome.RELEASED)
        audit_record(action=AuditEvent.Action.RELEASED, actor=reviewer, item=item, claim=claim.pk)
        from review_queue import realtime

        queue_id = item.queue_id
        transaction.on_commit(lambda: realtime.queue_counts_changed(queue_ids=[queue_id]))


def lease_renew(*, item: ContentItem, reviewer: User) -> datetime:
    """Keep an item while its reviewer is still at it: the console calls this on activity (typing a reason,
    choosing a policy, pressing a key) and from its calm "still there?" notice, so a lease only runs out for a browser
    nobody is at. The lease runs its full length again from now. Only a live lease can be renewed: one that ran out
    may already be someone else's. Returns the new end of the lease."""
    from moderation.services import _open_claim  # the one check of "the reviewer's live lease"
    from wellbeing import rules as wellbeing_rules
    from wellbeing import selectors as wellbeing_selectors

    with transaction.atomic():
        item = ContentItem.objects.select_for_update().select_related("queue").get(pk=item.pk)
        claim = _open_claim(item=item, reviewer=reviewer)
        now = timezone.now()
        lease = timedelta(seconds=item.queue.lease_duration_seconds)
        expires = now + lease
        state = wellbeing_selectors.break_state(reviewer_id=reviewer.pk, now=now)
        if state.phase == wellbeing_rules.Phase.FINISH_ITEM and state.window_ends_at is not None:
            # A break is waiting for this item: renewing keeps it one lease past the window at most, so holding an
            # item can never put the break off for good.
            assert item.lease_expires_at is not None  # _open_claim checked it
            expires = max(item.lease_expires_at, min(expires, state.window_ends_at + lease))
        ContentItem.objects.filter(pk=item.pk).update(lease_expires_at=expires)
        Claim.objects.filter(pk=claim.pk).update(expires_at=expires)
    return expires
