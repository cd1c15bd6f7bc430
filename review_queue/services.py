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
    leases_expire(queue=queue, now=now)
    refusal: ReviewError | None = None
    with transaction.atomic():
        held = _held_claim(reviewer=reviewer, now=now)
        if held is not None:
            return held
        try:
            constraints = wellbeing.claim_gate(reviewer=reviewer, queue=queue, now=now)
        except ReviewError as exc:
            # Commit what the gate recorded on the way (a shift that ended, a break that began), then refuse.
            refusal = exc
        else:
            # Again, now that the gate holds the reviewer's lock: a concurrent claim of theirs may have won.
            held = _held_claim(reviewer=reviewer, now=now)
            if held is not None:
                return held
            wanted = ContentItem.Status.ESCALATED if escalated else ContentItem.Status.READY
            waiting = ContentItem.objects.filter(queue=queue, status=wanted).exclude(second_opinion_excluded=reviewer)
            batches = _offer(waiting, constraints)
            claim = _lease_first(reviewer=reviewer, queue=queue, now=now, wanted=wanted, batches=batches)
            if claim is not None:
                wellbeing.exposure_open(claim=claim, constraints=constraints)
                return claim
            if waiting.exclude(pk__in=batches[-1].order_by().values("pk")).exists():
                # Items are waiting, but the gate held them back: say why rather than "nothing is waiting".
                refusal = constraints.refusal_when_empty()
    if refusal is not None:
        raise refusal
    raise NothingToClaim("queue_empty", "Nothing is waiting in this queue right now.")


def _held_claim(*, reviewer: User, now: datetime) -> Claim | None:
    return (
        Claim.objects.select_related("item")
        .filter(reviewer=reviewer, ended_at__isnull=True, expires_at__gt=now)
        .first()
    )


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
    *, reviewer: User, queue: Queue, now: datetime, wanted: str, batches: list[QuerySet[ContentItem]]
) -> Claim | None:
    expires = now + timedelta(seconds=queue.lease_duration_seconds)
    for batch in batches:
        candidates = batch
        if _supports_skip_locked():
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        # On PostgreSQL skip_locked hands each claimer a different row. On SQLite the IMMEDIATE transaction
        # serialises claimers, and the conditional UPDATE below is a second guard on any backend.
        for item in candidates[:5]:
            updated = ContentItem.objects.filter(pk=item.pk, status=wanted).update(
                status=ContentItem.Status.IN_REVIEW, lease_holder=reviewer, lease_expires_at=expires
            )
            if not updated:
                continue
            claim = Claim.objects.create(item=item, queue=queue, reviewer=reviewer, claimed_at=now, expires_at=expires)
            item.refresh_from_db()
            claim.item = item
            audit_record(action=AuditEvent.Action.CLAIMED, actor=reviewer, item=item, claim=claim.pk,
                         expires_at=expires.isoformat())
            from review_queue import realtime

            transaction.on_commit(lambda: realtime.queue_counts_changed(queue_ids=[queue.pk]))
            return claim
    return None


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
