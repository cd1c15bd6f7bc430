"""Decision webhooks against a real HTTP receiver on 127.0.0.1: signed (verified with the README's own snippet),
retried with backoff under one idempotency key, bounded, one delivery row per decision, carried-over decisions
included."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from PIL import Image
from rest_framework.test import APIClient

from core.models import AuditEvent
from demo.content import demo_image, near_duplicate
from intake import hashlists
from intake.models import ContentItem, Decision, HashList, HashListEntry
from integrations import outbound, webhooks
from integrations.models import WebhookAttempt, WebhookDelivery
from integrations.tasks import deliver_webhook
from review.decisions import do_decision
from review.models import Queue
from review.services import item_claim
from tests.helpers.factories import make_queue, upload
from tests.helpers.httppeer import Peer
from tests.helpers.matching import jpeg

pytestmark = pytest.mark.django_db

SECRET = "s3cret-for-the-receiver-only"
README = Path(__file__).resolve().parent.parent / "README.md"


def readme_verifier() -> Callable[..., bool]:
    """The verification snippet exactly as the README documents it."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    snippet = next(b for b in blocks if "def verify_veil_signature" in b)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # our own documentation
    verify: Callable[..., bool] = namespace["verify_veil_signature"]
    return verify


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.VEIL_OUTBOUND_ALLOW_PRIVATE = True
    settings.VEIL_WEBHOOK_BACKOFF_SECONDS = 0
    settings.VEIL_WEBHOOK_MAX_ATTEMPTS = 4


@pytest.fixture
def queue(peer: Peer) -> Queue:
    return make_queue(slug="reports", webhook_url=f"{peer.url}/hook", webhook_secret=SECRET)


def picture(seed: int) -> Image.Image:
    return demo_image(seed, label=f"WEBHOOK TEST #{seed}")


def ingest(queue: Queue, image: Image.Image, *, external_id: str = "", capture: Any = None) -> ContentItem:
    """Through the real ingest service; the pipeline runs eagerly on commit."""
    with capture(execute=True):
        item = webhooks_ingest(queue, image, external_id)
    item.refresh_from_db()
    return item


def webhooks_ingest(queue: Queue, image: Image.Image, external_id: str) -> ContentItem:
    from intake.services import item_ingest

    return item_ingest(queue=queue, upload=upload(jpeg(image), "x.jpg", "image/jpeg"), submitted_by=None,
                       external_id=external_id)


def decide(item: ContentItem, reviewer, capture, action: str = "remove") -> Decision:
    claim = item_claim(reviewer=reviewer, queue=item.queue)
    assert claim.item_id == item.pk
    policy = item.queue.policies.first() if action == "remove" else None
    with capture(execute=True):
        return do_decision(item=item, reviewer=reviewer, action=action, policy=policy, reason="Close-up.")


def resend_due(times: int) -> None:
    from io import StringIO

    from django.core.management import call_command

    for _ in range(times):
        call_command("resend_webhooks", "--due", stdout=StringIO())


def test_a_review_decision_is_posted_signed_and_the_readme_snippet_verifies_it(
    queue, peer, moderator, django_capture_on_commit_callbacks
):
    item = ingest(queue, picture(1), external_id="post-1", capture=django_capture_on_commit_callbacks)
    decision = decide(item, moderator, django_capture_on_commit_callbacks)
    [request] = peer.posts()
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    delivery = WebhookDelivery.objects.get(decision=decision)
    assert request.headers["idempotency-key"] == str(delivery.key)
    assert decision.policy is not None
    body = json.loads(request.body)
    assert body == {
        "event": "decision.final", "delivery_id": str(delivery.key), "item_id": item.pk, "external_id": "post-1",
        "submitted_by": None, "queue": "reports", "decided_in_queue": "reports", "action": "remove",
        "policies": [decision.policy.code],
        "reason": "Close-up.", "decided_at": decision.created_at.isoformat(), "carried_over": False,
        "carried_over_from_item": None, "hash_list": None,
    }
    verify = readme_verifier()
    header = request.headers["x-veil-signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify(SECRET, header, request.body)
    assert not verify("another-secret-entirely", header, request.body)
    assert not verify(SECRET, header, request.body.replace(b"remove", b"approve"))
    stale = webhooks.signature(secret=SECRET, timestamp=int(time.time()) - 3600, body=request.body)
    assert not verify(SECRET, stale, request.body)
    assert not verify(SECRET, "garbage", request.body)
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempt_count == 1 and delivery.delivered_at
    assert [(a.status_code, a.error) for a in delivery.attempts.all()] == [(200, "")]
    assert AuditEvent.objects.filter(action="webhook_delivered", item=item).exists()


def test_failures_are_retried_with_one_idempotency_key_and_the_same_body(
    queue, peer, moderator, django_capture_on_commit_callbacks
):
    peer.fail_first = 2
    item = ingest(queue, picture(2), capture=django_capture_on_commit_callbacks)
    decision = decide(item, moderator, django_capture_on_commit_callbacks)
    # Embedded mode: one attempt inside the request that decided; the retries come from `resend_webhooks --due`.
    assert len(peer.posts()) == 1
    resend_due(2)
    posts = peer.posts()
    assert len(posts) == 3
    assert len({p.headers["idempotency-key"] for p in posts}) == 1
    assert len({p.body for p in posts}) == 1
    assert [p.headers["x-veil-attempt"] for p in posts] == ["1", "2", "3"]
    verify = readme_verifier()
    assert all(verify(SECRET, p.headers["x-veil-signature"], p.body) for p in posts)
    delivery = WebhookDelivery.objects.get(decision=decision)
    assert delivery.status == "delivered" and delivery.attempt_count == 3
    assert [a.status_code for a in delivery.attempts.all()] == [500, 500, 200]
    assert all(a.duration_ms >= 0 for a in delivery.attempts.all())


def test_backoff_doubles_from_the_setting_and_is_capped(settings):
    settings.VEIL_WEBHOOK_BACKOFF_SECONDS = 30
    assert [webhooks.backoff_seconds(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert webhooks.backoff_seconds(12) == 3600


def test_one_attempt_at_a_time_reports_when_to_retry(queue, peer, moderator, settings,
                                                     django_capture_on_commit_callbacks):
    settings.VEIL_WEBHOOK_BACKOFF_SECONDS = 10
    peer.fail_first = 10
    item = ingest(queue, picture(3), capture=django_capture_on_commit_callbacks)
    claim = item_claim(reviewer=moderator, queue=item.queue)
    assert claim.item_id == item.pk
    # Decided without running the commit hooks: the delivery row exists, the task has not run.
    decision = do_decision(item=item, reviewer=moderator, action="approve", policy=None, reason="")
    delivery = WebhookDelivery.objects.get(decision=decision)
    outcomes = [webhooks.webhook_deliver(delivery_id=delivery.pk) for _ in range(4)]
    assert [(o.status, o.retry_in) for o in outcomes] == [
        ("pending", 10), ("pending", 20), ("pending", 40), ("failed", None)
    ]
    assert len(peer.posts()) == 4
    assert AuditEvent.objects.filter(action="webhook_failed", item=item).count() == 1
    # Given up: nothing more is sent, however often the task runs.
    assert webhooks.webhook_deliver(delivery_id=delivery.pk).status == "failed"
    assert deliver_webhook.apply(args=(delivery.pk,)).get() == "failed"
    assert len(peer.posts()) == 4


def test_attempts_are_bounded_when_the_receiver_keeps_failing(queue, peer, moderator,
                                                              django_capture_on_commit_callbacks):
    peer.fail_first = 100
    item = ingest(queue, picture(4), capture=django_capture_on_commit_callbacks)
    decision = decide(item, moderator, django_capture_on_commit_callbacks, action="approve")
    resend_due(6)  # more runs than attempts are left: the limit, not the runs, ends it
    delivery = WebhookDelivery.objects.get(decision=decision)
    assert delivery.status == "failed" and delivery.attempt_count == 4
    assert len(peer.posts()) == 4


def test_a_redelivered_task_sends_nothing_twice_and_makes_no_second_row(queue, peer, moderator,
                                                                       django_capture_on_commit_callbacks):
    item = ingest(queue, picture(5), capture=django_capture_on_commit_callbacks)
    decision = decide(item, moderator, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(decision=decision)
    assert deliver_webhook.apply(args=(delivery.pk,)).get() == "delivered"
    assert deliver_webhook.apply(args=(delivery.pk,)).get() == "delivered"
    assert webhooks.decision_announce(decision=decision) == delivery
    assert WebhookDelivery.objects.filter(decision=decision).count() == 1
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 1
    assert len(peer.posts()) == 1
    assert deliver_webhook.apply(args=(999_999,)).get() == "missing"


def test_a_carried_over_decision_is_delivered_and_shown_when_polled(
    queue, peer, moderator, requester, django_capture_on_commit_callbacks
):
    queue.submitters.add(requester)
    original = ingest(queue, picture(6), external_id="first", capture=django_capture_on_commit_callbacks)
    decide(original, moderator, django_capture_on_commit_callbacks)
    client = APIClient()
    client.force_login(requester)
    with django_capture_on_commit_callbacks(execute=True):
        from io import BytesIO

        with BytesIO(jpeg(near_duplicate(picture(6), "resized"))) as fh:
            fh.name = "copy.jpg"
            created = client.post("/api/v1/items/", {"file": fh, "queue": "reports", "external_id": "copy"},
                                  format="multipart")
    assert created.status_code == 201, created.content
    copy_id = created.json()["id"]
    bodies = [json.loads(p.body) for p in peer.posts()]
    assert [b["external_id"] for b in bodies] == ["first", "copy"]
    carried = bodies[1]
    assert carried["carried_over"] is True and carried["carried_over_from_item"] == original.pk
    assert carried["item_id"] == copy_id and carried["action"] == "remove"
    polled = client.get(f"/api/v1/items/{copy_id}/").json()
    assert polled["status"] == "decided"
    assert polled["decision"]["carried_over"] is True
    assert polled["decision"]["carried_over_from_item"] == original.pk


def test_copies_that_waited_with_their_cluster_are_delivered_too(queue, peer, moderator,
                                                                django_capture_on_commit_callbacks):
    original = ingest(queue, picture(7), external_id="a", capture=django_capture_on_commit_callbacks)
    copy = ingest(queue, near_duplicate(picture(7), "reencoded"), external_id="b",
                  capture=django_capture_on_commit_callbacks)
    assert copy.status == ContentItem.Status.CLUSTERED
    assert peer.posts() == []
    decide(original, moderator, django_capture_on_commit_callbacks)
    bodies = {json.loads(p.body)["external_id"]: json.loads(p.body) for p in peer.posts()}
    assert set(bodies) == {"a", "b"}
    assert bodies["b"]["carried_over_from_item"] == original.pk
    assert WebhookDelivery.objects.filter(status="delivered").count() == 2


def make_list(name: str, action: str, image: Image.Image, **fields: object) -> HashList:
    hash_list = HashList.objects.create(name=name, label=f"{name} list", action=action, **fields)
    pdq, _ = hashlists.pdq_of(image)
    HashListEntry.objects.create(hash_list=hash_list, signal_type="pdq", signal=pdq)
    return hash_list


def test_a_hash_list_removal_is_delivered(queue, peer, django_capture_on_commit_callbacks):
    make_list("KNOWN_BAD", HashList.Action.REMOVE, picture(8))
    item = ingest(queue, near_duplicate(picture(8), "reencoded"), external_id="known",
                  capture=django_capture_on_commit_callbacks)
    assert item.status == "decided"
    [body] = [json.loads(p.body) for p in peer.posts()]
    assert body["hash_list"] == "KNOWN_BAD" and body["carried_over"] is True and body["action"] == "remove"
    assert body["policies"] == [] and body["carried_over_from_item"] is None


def test_a_routed_item_reports_to_the_queue_it_was_submitted_to(peer, moderator, settings,
                                                                django_capture_on_commit_callbacks):
    general = make_queue(slug="general", webhook_url=f"{peer.url}/general", webhook_secret=SECRET)
    specialist = make_queue(slug="specialist")
    make_list("KNOWN_TVEC", HashList.Action.ROUTE, picture(9), target_queue=specialist)
    item = ingest(general, picture(9), external_id="routed", capture=django_capture_on_commit_callbacks)
    assert item.queue_id == specialist.pk
    decide(item, moderator, django_capture_on_commit_callbacks)
    [request] = peer.posts()
    body = json.loads(request.body)
    assert request.path == "/general"
    assert body["queue"] == "general" and body["decided_in_queue"] == "specialist"


def test_no_webhook_without_a_url_and_none_for_decisions_that_are_not_final(peer, moderator,
                                                                             django_capture_on_commit_callbacks):
    quiet = make_queue(slug="quiet")
    item = ingest(quiet, picture(10), capture=django_capture_on_commit_callbacks)
    decide(item, moderator, django_capture_on_commit_callbacks)
    assert WebhookDelivery.objects.count() == 0
    loud = make_queue(slug="loud", webhook_url=f"{peer.url}/hook", webhook_secret=SECRET)
    other = ingest(loud, picture(11), capture=django_capture_on_commit_callbacks)
    decide(other, moderator, django_capture_on_commit_callbacks, action="escalate")
    assert WebhookDelivery.objects.count() == 0 and peer.posts() == []


def test_private_destinations_are_refused_in_production(queue, peer, moderator, settings,
                                                        django_capture_on_commit_callbacks):
    settings.VEIL_OUTBOUND_ALLOW_PRIVATE = False
    item = ingest(queue, picture(12), capture=django_capture_on_commit_callbacks)
    decision = decide(item, moderator, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(decision=decision)
    # Not retried: a configuration fault, not a passing one.
    assert delivery.status == "failed" and delivery.attempt_count == 1
    assert "private_address" in delivery.attempts.get().error
    assert peer.received == []
    for url in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/x",
                "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/x"):
        with pytest.raises(outbound.OutboundRefused) as refused:
            outbound.destination_check(url)
        assert refused.value.code == "private_address", url


def test_only_http_and_https_callback_urls(queue):
    for url in ("ftp://example.org/hook", "file:///etc/passwd", "gopher://example.org/"):
        queue.webhook_url = url
        with pytest.raises(ValidationError):
            queue.full_clean()
        with pytest.raises(outbound.OutboundRefused) as refused:
            outbound.destination_check(url)
        assert refused.value.code == "bad_url"
    with pytest.raises(outbound.OutboundRefused):
        outbound.destination_check("http://user:pw@example.org/hook")
    queue.webhook_url, queue.webhook_secret = "https://example.org/hook", "short"
    with pytest.raises(ValidationError):
        queue.full_clean()


def test_redirects_are_not_followed(queue, peer, moderator, django_capture_on_commit_callbacks):
    peer.redirect_to = f"{peer.url}/elsewhere"
    item = ingest(queue, picture(13), capture=django_capture_on_commit_callbacks)
    decision = decide(item, moderator, django_capture_on_commit_callbacks)
    resend_due(4)
    delivery = WebhookDelivery.objects.get(decision=decision)
    assert delivery.status == "failed"
    assert {a.status_code for a in delivery.attempts.all()} == {302}
    assert all(r.path == "/hook" for r in peer.received)


def test_a_slow_receiver_times_out(queue, peer, moderator, settings,
                                   django_capture_on_commit_callbacks):
    settings.VEIL_OUTBOUND_TIMEOUT_SECONDS = 1
    settings.VEIL_WEBHOOK_MAX_ATTEMPTS = 1
    peer.delay = 2.0
    item = ingest(queue, picture(14), capture=django_capture_on_commit_callbacks)
    decision = decide(item, moderator, django_capture_on_commit_callbacks)
    attempt = WebhookAttempt.objects.get(delivery__decision=decision)
    assert attempt.status_code is None and "timed out" in attempt.error.lower()
    assert 900 <= attempt.duration_ms < 1900


def test_deliveries_are_read_only_in_the_admin(queue, peer, moderator, admin_user,
                                               django_capture_on_commit_callbacks):
    item = ingest(queue, picture(15), capture=django_capture_on_commit_callbacks)
    decision = decide(item, moderator, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(decision=decision)
    client = APIClient()
    client.force_login(admin_user)
    listing = client.get("/admin/moderation/webhookdelivery/")
    assert listing.status_code == 200 and str(delivery.key) in listing.content.decode()
    page = client.get(f"/admin/moderation/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200 and "200" in page.content.decode()
    assert client.get("/admin/moderation/webhookdelivery/add/").status_code == 403
    assert client.post(f"/admin/moderation/webhookdelivery/{delivery.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/moderation/webhookattempt/").status_code == 200
    queue_page = client.get(f"/admin/review_queue/queue/{queue.pk}/change/")
    assert queue_page.status_code == 200 and "webhook_url" in queue_page.content.decode()
    assert WebhookDelivery.objects.filter(pk=delivery.pk).exists()


def test_resend_webhooks_picks_up_a_delivery_whose_task_was_lost(queue, peer, moderator,
                                                                django_capture_on_commit_callbacks):
    from datetime import timedelta
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    item = ingest(queue, picture(16), capture=django_capture_on_commit_callbacks)
    claim = item_claim(reviewer=moderator, queue=item.queue)
    assert claim.item_id == item.pk
    # The commit hook never runs: as if the broker had been down when the decision committed.
    decision = do_decision(item=item, reviewer=moderator, action="approve", policy=None, reason="")
    delivery = WebhookDelivery.objects.get(decision=decision)
    out = StringIO()
    call_command("resend_webhooks", stdout=out)
    assert out.getvalue().startswith("0 ") and peer.posts() == []  # not idle long enough yet
    WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(hours=2))
    call_command("resend_webhooks", stdout=out)
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and len(peer.posts()) == 1
    call_command("resend_webhooks", stdout=out)
    assert len(peer.posts()) == 1


def test_embedded_retries_wait_for_their_backoff(queue, peer, moderator, settings,
                                                  django_capture_on_commit_callbacks):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    settings.VEIL_WEBHOOK_BACKOFF_SECONDS = 30
    peer.fail_first = 1
    item = ingest(queue, picture(17), capture=django_capture_on_commit_callbacks)
    started = timezone.now()
    decision = decide(item, moderator, django_capture_on_commit_callbacks)
    assert len(peer.posts()) == 1
    resend_due(1)
    assert len(peer.posts()) == 1  # the backoff has not passed: nothing is sent
    with time_machine.travel(started + timedelta(seconds=45)):
        resend_due(1)
    assert len(peer.posts()) == 2
    assert WebhookDelivery.objects.get(decision=decision).status == "delivered"


def test_the_webhook_secret_is_write_only_in_the_admin(queue, admin_user):
    from django.test import Client

    client = Client()
    client.force_login(admin_user)
    page = client.get(f"/admin/review_queue/queue/{queue.pk}/change/").content.decode()
    assert SECRET not in page and "A secret is set (not shown)" in page
    form = {"name": queue.name, "slug": queue.slug, "purpose": queue.purpose, "requester": queue.requester,
            "is_active": "on", "lease_seconds": "", "coop_type_id": "", "webhook_url": queue.webhook_url,
            "webhook_secret": "", "policies-TOTAL_FORMS": "0", "policies-INITIAL_FORMS": "0"}
    saved = client.post(f"/admin/review_queue/queue/{queue.pk}/change/", form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    queue.refresh_from_db()
    assert queue.webhook_secret == SECRET  # left empty: kept
    client.post(f"/admin/review_queue/queue/{queue.pk}/change/", {**form, "webhook_secret": "a-new-secret-long-enough"})
    queue.refresh_from_db()
    assert queue.webhook_secret == "a-new-secret-long-enough"
    short = client.post(f"/admin/review_queue/queue/{queue.pk}/change/", {**form, "webhook_secret": "short"})
    assert short.status_code == 200 and "at least 16" in short.content.decode()
