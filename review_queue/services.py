"""Writes for the review queue: claiming with a lease, releasing, expiring leases."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

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
        raise ReviewError("queue_closed", "This queue is closed.", status=409)
    if escalated and not has_role(reviewer, Role.TEAM_LEAD):
        raise ReviewError("forbidden", "Escalated items are reviewed by team leads.", status=403)
    if not has_role(reviewer, Role.MODERATOR, Role.TEAM_LEAD):
        raise ReviewError("forbidden", "Only moderators and team leads review items.", status=403)

    now = timezone.now()
    refusal: ReviewError | None = None
    with transaction.atomic():
        try:
            gate = wellbeing.claim_gate(reviewer=reviewer, queue=queue, now=now)
        except ReviewError as exc:
            # Commit what the gate recorded on the way (a shift that ended, a break that began), then refuse.
            refusal = exc
        else:
            if isinstance(gate, wellbeing.HeldClaim):
                return Claim.objects.select_related("item").get(pk=gate.claim_id)
            if gate.expired_leases_waiting:
                leases_expire(queue=queue, now=now)  # items whose lease ran out go back before choosing one
            wanted = ContentItem.Status.ESCALATED if escalated else ContentItem.Status.READY
            waiting = ContentItem.objects.filter(queue=queue, status=wanted).exclude(second_opinion_excluded=reviewer)
            batches = _offer(waiting, gate)
            claim = _lease_first(reviewer=reviewer, queue=queue, now=now, wanted=wanted, batches=batches,
                                 constraints=gate)
            if claim is not None:
                return claim
            if waiting.exclude(pk__in=batches[-1].order_by().values("pk")).exists():
                # Items are waiting, but the gate held them back: say why rather than "nothing is waiting".
                refusal = gate.refusal_when_empty()
    if refusal is not None:
        raise refusal
    raise NothingToClaim("queue_empty", "Nothing is waiting in this queue right now.")


def _offer(waiting: QuerySet[ContentItem], constraints: wellbeing.ClaimConstraints) -> list[QuerySet[ContentItem]]:
    """The candidates the wellbeing gate allows, in the order to try them."""
    allowed = waiting.filter(severity__lte=constraints.max_severity)
    if constraints.excluded_categories:
        allowed = allowed.exclude(category__in=constraints.excluded_categories)
    # Near the cap milder items come first; otherwise oldest first.
    order = ("severity", "created_at", "id") if constraints.lower_severity_first else ("created_at", "id")
    batches = [allowed.order_by(*order)]
    if constraints.prefer_benign:  # after a severe item, a benign one when the queue has one
        batches.insert(0, allowed.filter(severity=Severity.NONE).order_by("created_at", "id"))
    return batches


def _lease_first(
    *, reviewer: User, queue: Queue, now: datetime, wanted: str, batches: list[QuerySet[ContentItem]],
    constraints: wellbeing.ClaimConstraints,
) -> Claim | None:
    expires = now + timedelta(seconds=queue.lease_duration_seconds)
    for batch in batches:
        if _claims_in_one_statement():
            claim = _claim_in_one_statement(reviewer=reviewer, queue=queue, now=now, expires=expires, wanted=wanted,
                                            batch=batch, constraints=constraints)
            if claim is None:
                continue
            return claim
        candidates = batch
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


def _claim_in_one_statement(
    *, reviewer: User, queue: Queue, now: datetime, expires: datetime, wanted: str, batch: QuerySet[ContentItem],
    constraints: wellbeing.ClaimConstraints,
) -> Claim | None:
    """PostgreSQL: what the loop above does, in one round trip. Pick, lock and lease the first allowed item as a
    raw SKIP LOCKED claim would (`UPDATE … WHERE id = (SELECT id … FOR UPDATE SKIP LOCKED LIMIT 1)`), and in the
    same statement write the claim, its audit event and its exposure entry (data-modifying CTEs). The subquery is
    the ORM's own SQL for the batch, so the filters and the order are the portable path's; tests compare the rows
    both paths write."""
    picked = batch.select_for_update(skip_locked=True, of=("self",)).values("pk")[:1]
    sub_sql, sub_params = picked.query.get_compiler(connection=connection).as_sql()
    fields = ContentItem._meta.concrete_fields
    quote = connection.ops.quote_name
    item_columns = ", ".join(quote(str(f.column)) for f in fields)
    exposure_sql, exposure_params = wellbeing.exposure_insert_sql(constraints=constraints, reviewer_id=reviewer.pk,
                                                                  queue_id=queue.pk, claimed_at=now)
    sql = f"""
WITH leased AS (
  UPDATE {quote(ContentItem._meta.db_table)} SET status = %s, lease_holder_id = %s, lease_expires_at = %s
  WHERE id = ({sub_sql}) AND status = %s
  RETURNING {item_columns}
), claimed AS (
  INSERT INTO {quote(Claim._meta.db_table)} (item_id, queue_id, reviewer_id, claimed_at, expires_at, ended_at, outcome)
  SELECT id, %s, %s, %s, %s, NULL, %s FROM leased
  RETURNING id, item_id
), audited AS (
  INSERT INTO {quote(AuditEvent._meta.db_table)} (at, actor_id, action, item_id, data)
  SELECT %s, %s, %s, claimed.item_id, jsonb_build_object('claim', claimed.id, 'expires_at', %s::text) FROM claimed
  RETURNING id
), exposed AS ({exposure_sql})
SELECT claimed.id, (SELECT count(*) FROM audited), (SELECT count(*) FROM exposed), leased.*
FROM claimed JOIN leased ON leased.id = claimed.item_id
"""  # noqa: S608 (names from the models; every value is a bound parameter)
    params = [
        ContentItem.Status.IN_REVIEW.value, reviewer.pk, expires, *sub_params, wanted,
        queue.pk, reviewer.pk, now, expires, Claim.Outcome.OPEN.value,
        timezone.now(), reviewer.pk, AuditEvent.Action.CLAIMED.value, expires.isoformat(),
        *exposure_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    claim_id, audited, exposed, *item_values = row
    if (audited, exposed) != (1, 1):  # cannot happen: both insert from the one claimed row
        raise RuntimeError(f"claim {claim_id}: {audited} audit events and {exposed} exposure entries")
    item = ContentItem.from_db(connection.alias, [f.attname for f in fields], item_values)
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
            raise ReviewError("not_lease_holder", "You do not hold this item.", status=409)
        item.status = item.resting_status
        item.lease_holder = None
        item.lease_expires_at = None
        item.save(update_fields=["status", "lease_holder", "lease_expires_at"])
        Claim.objects.filter(pk=claim.pk).update(ended_at=now, outcome=Claim.Outcome.RELEASED)
        audit_record(action=AuditEvent.Action.RELEASED, actor=reviewer, item=item, claim=claim.pk)
        from review_queue import realtime

        queue_id = item.queue_id
        transaction.on_commit(lambda: realtime.queue_counts_changed(queue_ids=[queue_id]))
