"""Deciding an item: check_decision (may this be recorded now?) apart from do_decision (record it, end the lease,
carry it over to waiting copies, tell the requester through intake.signals.decision_recorded)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
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
    """
    with transaction.atomic():
        locked = compiled.first("review.decision.item", ContentItem, lambda *, item_id: ContentItem.objects
                                .select_for_update().filter(pk=item_id), item_id=item.pk)
        if locked is None:
            raise ContentItem.DoesNotExist("ContentItem matching query does not exist.")
        item = locked
        now = timezone.now()  # once the lock is held: the lease ends at the moment it is checked
        reason, claim = _checked(item=item, reviewer=reviewer, action=action, policy=policy, reason=reason)
        is_final = action in Decision.FINAL_ACTIONS
        decision = compiled.create("review.decision", Decision, item=item, reviewer=reviewer, action=action,
                                   policy=policy, reason=reason, is_final=is_final)
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
        item.save(update_fields=["status", "escalated_at", "second_opinion_excluded"])
        claim.end(outcome=outcome, at=now)
        audit_record(action=audit_action, actor=reviewer, item=item, decision=decision.pk, action_taken=action,
                     policy=policy.code if policy else None, reason=reason)
        if is_final:
            decision_recorded.send(sender=Decision, decision=decision)
        if is_final and item.cluster_id is not None:
            _decide_waiting_copies(item, decision)
        queue_id = item.queue_id
        transaction.on_commit(lambda: broadcast_counts(queue_id))
    return decision



def _decide_waiting_copies(item: ContentItem, decision: Decision) -> None:
    """One review decides all: copies that waited with this picture get the decision, audited per copy."""
    copies = ContentItem.objects.select_for_update().filter(
        cluster=item.cluster, status=ContentItem.Status.CLUSTERED
    )
    for copy in copies:
        carry_over(copy, decision, why=f"the same picture as item #{item.pk}, decided in review")
        copy.save(update_fields=["status"])
