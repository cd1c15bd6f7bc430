"""Decision webhooks: every final decision is POSTed, signed, to the callback URL of the queue it was submitted to.

At least once: `decision_announce` writes a WebhookDelivery row in the decision's own transaction (so a decision
and its announcement commit together) and enqueues the delivery task on commit. Each attempt is a WebhookAttempt
row; failures are retried with exponential backoff up to VEIL_WEBHOOK_MAX_ATTEMPTS. Every attempt carries the same
`Idempotency-Key` (the delivery's UUID) and body, and a fresh signature:

    X-Veil-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the queue's secret>

Two workers may both send one delivery (a redelivered task racing the first); the key lets the receiver drop it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.models import AuditEvent
from intake.models import ContentItem, Decision
from integrations import outbound
from integrations.models import WebhookAttempt, WebhookDelivery
from review.models import Queue

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Veil-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_BACKOFF_SECONDS = 3600


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): the same on every attempt."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def item_origin_queue(item: ContentItem) -> Queue:
    """The queue the item was submitted to. A hash list may have routed it to a specialist queue since; the
    requester who submitted it still gets its decision."""
    if item.submitted_to_id is not None:
        return Queue.objects.get(pk=item.submitted_to_id)
    # Items from before `submitted_to` (and the few its migration could not place): the ingest audit event.
    slug = (
        AuditEvent.objects.filter(item_id=item.pk, action=AuditEvent.Action.INGESTED)
        .order_by("id").values_list("data__queue", flat=True).first()
    )
    found = Queue.objects.filter(slug=slug).first() if isinstance(slug, str) else None
    return found or Queue.objects.get(pk=item.queue_id)


def decision_payload(*, decision: Decision, delivery_key: str, origin: Queue) -> dict[str, Any]:
    item = decision.item
    source = decision.carried_over_from
    return {
        "event": "decision.final",
        "delivery_id": delivery_key,
        "item_id": item.pk,
        "external_id": item.external_id,
        # External ids belong to the account that sent them: two submitters of one queue may both use "post-1".
        "submitted_by": item.submitted_by.username if item.submitted_by is not None else None,
        "queue": origin.slug,
        "decided_in_queue": Queue.objects.only("slug").get(pk=item.queue_id).slug,
        "action": decision.action,
        "policies": [decision.policy.code] if decision.policy is not None else [],
        "reason": decision.reason,
        "decided_at": decision.created_at.isoformat(),
        "carried_over": source is not None or decision.hash_list_id is not None,
        "carried_over_from_item": source.item_id if source is not None else None,
        "hash_list": decision.hash_list.name if decision.hash_list is not None else None,
    }


def decision_announce(*, decision: Decision) -> WebhookDelivery | None:
    """Call inside the transaction that made a final decision. Idempotent: one delivery per decision, ever."""
    if not decision.is_final:
        return None
    origin = item_origin_queue(decision.item)
    if not origin.webhook_url:
        return None
    delivery, created = WebhookDelivery.objects.get_or_create(
        decision=decision, defaults={"url": origin.webhook_url, "queue": origin, "payload": {}}
    )
    if created:
        delivery.payload = decision_payload(decision=decision, delivery_key=str(delivery.key), origin=origin)
        delivery.save(update_fields=["payload"])
        delivery_id = delivery.pk
        transaction.on_commit(lambda: _enqueue(delivery_id))
    return delivery


def _enqueue(delivery_id: int) -> None:
    from integrations.tasks import deliver_webhook  # the task module imports this one

    deliver_webhook.delay(delivery_id)


def backoff_seconds(attempt: int) -> int:
    """Wait before the retry that follows attempt number `attempt` (1-based): base, 2x base, 4x base, ..."""
    return int(min(settings.VEIL_WEBHOOK_BACKOFF_SECONDS * 2 ** max(0, attempt - 1), _MAX_BACKOFF_SECONDS))


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str  # pending (retry_in is set), delivered, failed, or missing
    retry_in: int | None = None


def webhook_deliver(*, delivery_id: int) -> DeliveryOutcome:
    """Make one attempt. No transaction is held while the receiver answers (up to VEIL_OUTBOUND_TIMEOUT_SECONDS)."""
    delivery = WebhookDelivery.objects.select_related("queue").filter(pk=delivery_id).first()
    if delivery is None:
        return DeliveryOutcome("missing")
    if delivery.status != WebhookDelivery.Status.PENDING:
        return DeliveryOutcome(delivery.status)
    secret = delivery.queue.webhook_secret if delivery.queue is not None else ""
    body = body_of(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Veil-Webhooks/1",
        IDEMPOTENCY_HEADER: str(delivery.key),
        SIGNATURE_HEADER: signature(secret=secret, timestamp=int(time.time()), body=body),
        "X-Veil-Attempt": str(delivery.attempt_count + 1),
    }
    status_code: int | None = None
    error = ""
    permanent = False
    started = time.monotonic()
    if not secret:
        error, permanent = "the queue has no webhook secret, so nothing can be signed", True
    else:
        try:
            answer = outbound.request("POST", delivery.url, headers=headers, body=body, max_bytes=4096)
            status_code = answer.status
            if not 200 <= answer.status < 300:
                error = f"HTTP {answer.status}"
        except outbound.OutboundRefused as exc:
            error, permanent = str(exc), exc.permanent
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
    duration_ms = int((time.monotonic() - started) * 1000)
    return _attempt_record(delivery_id=delivery.pk, status_code=status_code, error=error, permanent=permanent,
                           duration_ms=duration_ms)


def _attempt_record(*, delivery_id: int, status_code: int | None, error: str, permanent: bool,
                    duration_ms: int) -> DeliveryOutcome:

    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",)).select_related("decision__item").get(pk=delivery_id)
        )
        WebhookAttempt.objects.create(delivery=delivery, status_code=status_code, error=error[:500],
                                      duration_ms=duration_ms)
        delivery.attempt_count += 1
        fields = ["attempt_count"]
        outcome = DeliveryOutcome(delivery.status)
        if delivery.status == WebhookDelivery.Status.PENDING:
            item = delivery.decision.item
            if not error:
                delivery.status = WebhookDelivery.Status.DELIVERED
                delivery.delivered_at = timezone.now()
                fields += ["status", "delivered_at"]
                audit_record(action=AuditEvent.Action.WEBHOOK_DELIVERED, item=item, delivery=str(delivery.key),
                             attempts=delivery.attempt_count, status_code=status_code)
                outcome = DeliveryOutcome(delivery.status)
            elif permanent or delivery.attempt_count >= settings.VEIL_WEBHOOK_MAX_ATTEMPTS:
                delivery.status = WebhookDelivery.Status.FAILED
                fields.append("status")
                audit_record(action=AuditEvent.Action.WEBHOOK_FAILED, item=item, delivery=str(delivery.key),
                             attempts=delivery.attempt_count, error=error[:500])
                log.warning("webhook %s gave up after %d attempt(s): %s", delivery.key, delivery.attempt_count, error)
                outcome = DeliveryOutcome(delivery.status)
            else:
                outcome = DeliveryOutcome(delivery.status, retry_in=backoff_seconds(delivery.attempt_count))
        delivery.save(update_fields=fields)
    return outcome


def webhooks_idle(*, idle_minutes: int) -> list[int]:
    """Pending deliveries nothing has touched for `idle_minutes`: their task was lost (a broker down at commit, a
    purged queue). A live retry chain is never idle for longer than the largest backoff (an hour)."""
    from django.db.models import Max
    from django.db.models.functions import Coalesce

    cutoff = timezone.now() - timedelta(minutes=idle_minutes)
    return list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
        .annotate(last=Coalesce(Max("attempts__at"), "created_at"))
        .filter(last__lt=cutoff).order_by("id").values_list("id", flat=True)
    )


def webhooks_due(*, now: datetime | None = None) -> list[int]:
    """Pending deliveries whose next attempt is due: the last attempt plus its backoff has passed. Embedded mode has
    no worker waiting between attempts, so `resend_webhooks --due` (cron) makes them."""
    from django.db.models import Max

    now = now or timezone.now()
    pending = (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, attempt_count__gt=0)
        .annotate(last=Max("attempts__at")).order_by("id").values_list("id", "attempt_count", "last")
    )
    return [pk for pk, count, last in pending
            if last is None or last + timedelta(seconds=backoff_seconds(count)) <= now]
