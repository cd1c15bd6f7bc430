"""Writes for the review queue: claiming with a lease, releasing, expiring leases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from core import compiled, realtime
from core.audit import audit_record
from core.errors import ReviewError
from core.models import AuditEvent
from core.roles import Role, has_role
from intake.models import ContentItem, Severity
from review.models import Claim, Queue
from review.viewing import _open_claim
from wellbeing import rules as wellbeing_rules
from wellbeing import selectors as wellbeing_selectors
from wellbeing import services as wellbeing


class NothingToClaim(ReviewError):
    status = 404


def _supports_skip_locked() -> bool:
    return bool(connection.features.has_select_for_update_skip_locked)


def leases_expire(*, queue: Queue | None = None, now: datetime | None = None) -> int:
    """Return items whose lease ran out to their queue, and record it. Safe to run from many places at once."""
    now = now or timezone.now()
    expired = 0
    lapsed = Claim.objects.filter(ended_at__isnull=True, expires_at__lte=now)
    if queue is not None:
        lapsed = lapsed.filter(queue=queue)
    with transaction.atomic():
        # The item, then its claim (the lock order of _lease_first, as a renewal or a decision takes them).
        candidates = ContentItem.objects.filter(pk__in=lapsed.values("item_id"), status=ContentItem.Status.IN_REVIEW)
        if _supports_skip_locked():
            candidates = candidates.select_for_update(skip_locked=True)
        for item in candidates.order_by("id")[:500]:
            # Read again under the item's lock: a renewal may have just extended it. On SQLite (no row locks) the
            # IMMEDIATE transaction serialises expirers. Claim.end's conditional update is a second guard: a claim
            # found ended returns False, and a write that disagrees with its read raises compiled.WrongCount.
            claim = lapsed.filter(item=item).first()
            if claim is None or not claim.end(outcome=Claim.Outcome.EXPIRED, at=now):
                continue
            item.status = item.resting_status
            item.save(update_fields=["status"])
            audit_record(action=AuditEvent.Action.LEASE_EXPIRED, item=item, holder=claim.reviewer_id)
            expired += 1
        if expired:

            queue_ids = [queue.pk] if queue is not None else None
            transaction.on_commit(lambda: realtime.queue_counts_changed(queue_ids=queue_ids))
    return expired


def check_item_claim(*, reviewer: User, queue: Queue, escalated: bool = False,
                     ) -> wellbeing.ClaimConstraints | wellbeing.HeldClaim:
    """May this reviewer claim from this queue now, and what may they be offered? Roles, the queue being open, then
    the wellbeing gate (shift, breaks, exposure cap), which takes the reviewer's shift lock: call inside a
    transaction. Raises ReviewError with the reason; what the gate recorded on the way (a shift that ended, a break
    that began) is the caller's to commit (item_claim) or roll back (item_claim_preview)."""
    if not queue.is_active:
        raise ReviewError("queue_closed", gettext("This queue is closed."), status=409)
    if escalated and not has_role(reviewer, Role.TEAM_LEAD):
        raise ReviewError("forbidden", gettext("Escalated items are reviewed by team leads."), status=403)
    if not has_role(reviewer, Role.MODERATOR, Role.TEAM_LEAD):
        raise ReviewError("forbidden", gettext("Only moderators and team leads review items."), status=403)
    return wellbeing.claim_gate(reviewer=reviewer, queue=queue)


def do_item_claim(*, reviewer: User, queue: Queue, constraints: wellbeing.ClaimConstraints,
                  escalated: bool = False) -> Claim:
    """Lease the first item the constraints allow, in the same transaction as check_item_claim. Raises
    NothingToClaim, or the gate's reason when items are waiting that the constraints held back."""
    now = constraints.now or timezone.now()  # read by the gate once it held the reviewer's shift lock
    if constraints.expired_leases_waiting:
        leases_expire(queue=queue, now=now)  # items whose lease ran out go back before choosing one
    wanted = ContentItem.Status.ESCALATED if escalated else ContentItem.Status.READY
    batches = _batches(constraints)
    claim = _lease_first(reviewer=reviewer, queue=queue, now=now, wanted=wanted, batches=batches,
                         constraints=constraints)
    if claim is not None:
        return claim
    refusal = _held_back(reviewer=reviewer, queue=queue, constraints=constraints, wanted=wanted, batch=batches[-1])
    raise refusal or NothingToClaim("queue_empty", gettext("Nothing is waiting in this queue right now."))


def _held_back(*, reviewer: User, queue: Queue, constraints: wellbeing.ClaimConstraints, wanted: str,
               batch: _Batch) -> ReviewError | None:
    """Items are waiting, but the gate held them back: say why rather than "nothing is waiting"."""
    waiting = _waiting(queue=queue, wanted=wanted, reviewer=reviewer)
    allowed = _batch_queryset(waiting, constraints, batch)
    if waiting.exclude(pk__in=allowed.order_by().values("pk")).exists():
        return constraints.refusal_when_empty()
    return None


def item_claim(*, reviewer: User, queue: Queue, escalated: bool = False) -> Claim:
    """Lease the next item of a queue to a reviewer. Never gives one item to two people.

    A reviewer holding a live lease gets that item back instead of a second one. Escalated items are claimed by
    team leads only. Otherwise the wellbeing gate decides, in this transaction and under the reviewer's shift lock,
    whether they may take another item now (shift, breaks, exposure cap) and of what kind (check_item_claim), and
    do_item_claim leases it. A refusal commits what the gate recorded on the way, then is raised.
    """
    refusal: ReviewError | None = None
    with transaction.atomic():
        try:
            allowed = check_item_claim(reviewer=reviewer, queue=queue, escalated=escalated)
            if isinstance(allowed, wellbeing.HeldClaim):
                return Claim.objects.select_related("item__queue").get(pk=allowed.claim_id)
            return do_item_claim(reviewer=reviewer, queue=queue, constraints=allowed, escalated=escalated)
        except ReviewError as exc:
            refusal = exc  # leave the block normally: what the gate recorded on the way is committed
    raise refusal


@dataclass(frozen=True)
class ClaimPreview:
    """What a claim would do now, without doing it: `refusal` says why nothing can be claimed (None: it can)."""

    refusal: ReviewError | None
    holding_item_id: int | None = None


def item_claim_preview(*, reviewer: User, queue: Queue, escalated: bool = False) -> ClaimPreview:
    """A dry run of item_claim: the same checks (check_item_claim) and the same choice of item, in a transaction
    that is rolled back, so nothing is leased, started or recorded. Tells a moderator why nothing can be claimed
    now, and until when."""
    preview = ClaimPreview(refusal=None)
    with transaction.atomic():
        try:
            allowed = check_item_claim(reviewer=reviewer, queue=queue, escalated=escalated)
            if isinstance(allowed, wellbeing.HeldClaim):
                held = Claim.objects.filter(pk=allowed.claim_id).values_list("item_id", flat=True).first()
                preview = ClaimPreview(refusal=None, holding_item_id=held)
            else:
                do_item_claim(reviewer=reviewer, queue=queue, constraints=allowed, escalated=escalated)
        except ReviewError as exc:
            preview = ClaimPreview(refusal=exc)
        finally:
            transaction.set_rollback(True)  # whatever it did: nothing leased, started or recorded
    return preview


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
    """Lease the first allowed item, in the gate's order. Lock order: the reviewer's shift (the gate holds it), then
    the item, then its claim. On PostgreSQL the pick locks the row it leases and skips rows other claimers hold
    (FOR NO KEY UPDATE SKIP LOCKED: a plain update's lock, which leaves the item's foreign keys free); on SQLite the
    IMMEDIATE transaction serialises claimers. Either way the item cannot change between the pick and the lease, and
    the lease's conditional UPDATE is a second guard on both."""
    from dataclasses import replace

    paths = compiled.model_paths(ContentItem, "")
    expires = now + timedelta(seconds=queue.lease_duration_seconds)
    # Where the lease's writes go as one statement (compiled.together), the claim's key comes with the pick, from the
    # claims' own sequence, so that its audit event and exposure entry can name it in that statement.
    with_claim_key = compiled.together_batches()
    for batch in batches:

        def build(*, queue_id: int, wanted: str, reviewer_id: int, max_severity: int, excluded: list[str],
                  claim_key: bool, batch: _Batch = batch) -> QuerySet[ContentItem, Any]:
            # The candidates as _batch_queryset defines them, their columns as the model loads them: compiled once
            # per batch kind and number of excluded categories, bound on each claim.
            bound = replace(constraints, max_severity=max_severity, excluded_categories=frozenset(excluded))
            candidates = _batch_queryset(_waiting(queue=Queue(pk=queue_id), wanted=wanted,
                                                  reviewer=User(pk=reviewer_id)), bound, batch)
            if _supports_skip_locked():
                candidates = candidates.select_for_update(skip_locked=True, no_key=True, of=("self",))
            if claim_key:
                candidates = candidates.annotate(claim_key=compiled.next_key(Claim))
            query: QuerySet[ContentItem, Any] = candidates.values(*paths, *(["claim_key"] if claim_key else []))[:1]
            return query

        found = compiled.rows(f"review_queue.lease_first:{batch.benign_only}:{','.join(batch.order)}", build,
                              queue_id=queue.pk, wanted=wanted, reviewer_id=reviewer.pk,
                              max_severity=constraints.max_severity,
                              excluded=sorted(constraints.excluded_categories), claim_key=with_claim_key)
        item = compiled.instance(ContentItem, found[0], "") if found else None
        if item is not None:
            return _lease(item=item, claim_key=found[0].get("claim_key"), wanted=wanted, reviewer=reviewer,
                          queue=queue, now=now, expires=expires, constraints=constraints)
    return None


class LeaseLost(RuntimeError):
    """The picked item changed under its row lock: cannot happen (see _lease_first); the claim's transaction rolls
    back rather than lease it."""


def _lease(*, item: ContentItem, claim_key: int | None, wanted: str, reviewer: User, queue: Queue, now: datetime,
           expires: datetime, constraints: wellbeing.ClaimConstraints) -> Claim:
    """The picked item's lease (its conditional status change), the claim, its audit event and its exposure
    reservation: on PostgreSQL one statement (compiled.together), the claim's key taken with the pick."""
    with compiled.together():
        leased = compiled.update_later("review_queue.lease_first.item", lambda *, item_id, wanted: (
            ContentItem.objects.filter(pk=item_id, status=wanted), {"status": ContentItem.Status.IN_REVIEW}),
            item_id=item.pk, wanted=wanted)
        item.status = ContentItem.Status.IN_REVIEW
        item.queue = queue  # the candidates are this queue's
        key: dict[str, Any] = {"id": claim_key} if claim_key is not None else {}
        claim = compiled.create("review_queue.claim", Claim, **key, item=item, queue=queue, reviewer=reviewer,
                                claimed_at=now, expires_at=expires)
        if claim.pk is None:  # its key from the database (no key came with the pick): its audit event names it
            compiled.flush()
        claim.item = item
        audit_record(action=AuditEvent.Action.CLAIMED, actor=reviewer, item=item, claim=claim.pk,
                     expires_at=expires.isoformat())
        wellbeing.exposure_open(claim=claim, constraints=constraints)
    if leased.value != 1:
        raise LeaseLost(f"item {item.pk} changed under its lock")
    _counts_change_on_commit(queue)
    return claim


def _counts_change_on_commit(queue: Queue) -> None:
    queue_id = queue.pk
    transaction.on_commit(lambda: realtime.queue_counts_changed(queue_ids=[queue_id]))


def item_release(*, item: ContentItem, reviewer: User) -> None:
    """Give an item back untouched (skip). It returns to the front of its queue for someone else."""
    now = timezone.now()
    with transaction.atomic():
        item = ContentItem.objects.select_for_update().get(pk=item.pk)
        claim = Claim.objects.filter(item=item, reviewer=reviewer, ended_at__isnull=True).first()
        if claim is None:
            raise ReviewError("not_lease_holder", gettext("You do not hold this item."), status=409)
        item.status = item.resting_status
        item.save(update_fields=["status"])
        claim.end(outcome=Claim.Outcome.RELEASED, at=now)
        audit_record(action=AuditEvent.Action.RELEASED, actor=reviewer, item=item, claim=claim.pk)

        queue_id = item.queue_id
        transaction.on_commit(lambda: realtime.queue_counts_changed(queue_ids=[queue_id]))


def lease_renew(*, item: ContentItem, reviewer: User) -> datetime:
    """Keep an item while its reviewer is still at it: the console calls this on activity (typing a reason,
    choosing a policy, pressing a key) and from its calm "still there?" notice, so a lease only runs out for a browser
    nobody is at. The lease runs its full length again from now. Only a live lease can be renewed: one that ran out
    may already be someone else's. Returns the new end of the lease."""

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
            expires = max(claim.expires_at, min(expires, state.window_ends_at + lease))
        Claim.objects.filter(pk=claim.pk).update(expires_at=expires)
    return expires
