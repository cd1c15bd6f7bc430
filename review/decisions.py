"""Deciding an item: check_decision (may this be recorded now?) apart from do_decision (record it, end the lease,
carry it over to waiting copies, tell the requester through intake.signals.decision_recorded)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from core import compiled
from core.audit import audit_record
from core.errors import ReviewError
from core.models import AuditEvent
from intake.matching import carry_over
from intake.models import ContentItem, Decision
from intake.services import broadcast_counts
from intake.signals import decision_recorded
from review.models import Claim, Policy
from review.viewing import _open_claim


def check_decision(*, item: ContentItem, reviewer: User, action: str, policy: Policy | None, reason: str) -> str:
    """May this reviewer record this decision on this item now? The action, the policy it cites, the reason, and the
    reviewer's live lease. Raises ReviewError saying what to change; returns the reason as it will be stored. Reads
    the item as given (the dry run); do_decision makes the same check under the item's row lock."""
    return _checked(item=item, reviewer=reviewer, action=action, policy=policy, reason=reason)[0]


def _checked(*, item: ContentItem, reviewer: User, action: str, policy: Policy | None,
             reason: str) -> tuple[str, Claim]:
    """check_decision's checks, in its order; also returns the live lease it found, for do_decision to end."""
    reason = reason.strip()
    if action not in Decision.Action.values:
        raise ReviewError("invalid_action", gettext("Unknown action %(action)s: use approve, remove, escalate or "
                                                    "second_opinion.") % {"action": repr(action)}, status=400)
    if policy is not None and policy.queue_id != item.queue_id:
        raise ReviewError("invalid_policy", gettext("That policy does not belong to this item's queue."), status=400)
    if action == Decision.Action.REMOVE and policy is None:
        raise ReviewError("policy_required", gettext("Removing an item must cite one of the queue's policies."),
                          status=400)
    if action != Decision.Action.APPROVE and not reason:
        raise ReviewError("reason_required", gettext("Give a short reason, so the next person knows why."), status=400)
    if len(reason) > 4000:
        raise ReviewError("reason_too_long", gettext("Keep the reason under 4,000 characters."), status=400)
    claim = _open_claim(item=item, reviewer=reviewer)
    if action == Decision.Action.ESCALATE and item.escalated_at is not None:
        raise ReviewError("already_escalated", gettext("This item is already with a lead; approve or remove it."),
                          status=400)
    return reason, claim



def do_decision(*, item: ContentItem, reviewer: User, action: str, policy: Policy | None, reason: str) -> Decision:
    """Record a decision by the lease holder and end the lease: check_decision's checks, made once, under the item's
    row lock (so the lease they find is still the reviewer's when it ends).

    approve/remove are final. escalate sends the item to a team lead; second_opinion sends it back to the queue
    for someone else.

    The reads come first (the item under its lock, the lease, the claim's settlement); then the decision, the
    item's new status, the claim's end with its settlement, and the audit event are written together
    (core.compiled.together: one statement on PostgreSQL, the decision's key taken with the item's lock so the audit
    event can name it). The requester is told and waiting copies are decided after that, from what is written.
    """
    with transaction.atomic():
        keyed = compiled.together_batches()
        found = compiled.rows("review.decision.item", _locked_item, item_id=item.pk, decision_key=keyed)
        if not found:
            raise ContentItem.DoesNotExist("ContentItem matching query does not exist.")
        locked = compiled.instance(ContentItem, found[0], "")
        assert locked is not None
        item = locked
        now = timezone.now()  # once the lock is held: the lease ends at the moment it is checked
        reason, claim = _checked(item=item, reviewer=reviewer, action=action, policy=policy, reason=reason)
        is_final = action in Decision.FINAL_ACTIONS
        if is_final:
            item.status = ContentItem.Status.DECIDED
            outcome = Claim.Outcome.DECIDED
            audit_action = AuditEvent.Action.DECIDED
        elif action == Decision.Action.ESCALATE:
            item.status = ContentItem.Status.ESCALATED
            item.escalated_at = now
            outcome = Claim.Outcome.ESCALATED
            audit_action = AuditEvent.Action.ESCALATED
        else:
            item.status = item.resting_status
            item.second_opinion_excluded_id = reviewer.pk
            outcome = Claim.Outcome.SECOND_OPINION
            audit_action = AuditEvent.Action.SECOND_OPINION
        with compiled.together():
            claim.end(outcome=outcome, at=now)  # its read first: everything after it only writes
            key: dict[str, Any] = {"id": found[0]["decision_key"]} if keyed else {}
            decision = compiled.create("review.decision", Decision, **key, item=item, reviewer=reviewer,
                                       action=action, policy=policy, reason=reason, is_final=is_final)
            if decision.pk is None:  # its key from the database (SQLite): its audit event names it
                compiled.flush()
            compiled.update_later("review.decision.item_status", _item_decided, item_id=item.pk,
                                  status=item.status, escalated_at=item.escalated_at,
                                  second_opinion_excluded_id=item.second_opinion_excluded_id)
            audit_record(action=audit_action, actor=reviewer, item=item, decision=decision.pk, action_taken=action,
                         policy=policy.code if policy else None, reason=reason)
        if is_final:
            decision_recorded.send(sender=Decision, decision=decision)
        if is_final and item.cluster_id is not None:
            _decide_waiting_copies(item, decision)
        queue_id = item.queue_id
        transaction.on_commit(lambda: broadcast_counts(queue_id))
    return decision


def _locked_item(*, item_id: int, decision_key: bool) -> QuerySet[ContentItem, Any]:
    # The item under its row lock, every field as the model loads it, and where the decision's writes go as one
    # statement the decision's key (compiled.next_key): compiled once per process, bound on each decision.
    locked = ContentItem.objects.select_for_update().filter(pk=item_id)
    if decision_key:
        locked = locked.annotate(decision_key=compiled.next_key(Decision))
    paths = compiled.model_paths(ContentItem, "")
    query: QuerySet[ContentItem, Any] = locked.values(*paths, *(["decision_key"] if decision_key else []))
    return query


def _item_decided(*, item_id: int, status: str, escalated_at: datetime | None,
                  second_opinion_excluded_id: int | None) -> tuple[QuerySet[ContentItem], dict[str, Any]]:
    # What a decision changes on its item (as item.save(update_fields=...) wrote it): compiled once per process.
    return ContentItem.objects.filter(pk=item_id), {"status": status, "escalated_at": escalated_at,
                                                    "second_opinion_excluded_id": second_opinion_excluded_id}



def _decide_waiting_copies(item: ContentItem, decision: Decision) -> None:
    """One review decides all: copies that waited with this picture get the decision, audited per copy."""
    copies = ContentItem.objects.select_for_update().filter(
        cluster=item.cluster, status=ContentItem.Status.CLUSTERED
    )
    for copy in copies:
        carry_over(copy, decision, why=f"the same picture as item #{item.pk}, decided in review")
        copy.save(update_fields=["status"])
