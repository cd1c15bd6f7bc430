"""How Veil behaves as deployed (issue 20): leases expire on time without a claim, claims are stamped once the lock is
held, tasks retry what is transient, the task time limit and visibility timeout are sized together, decodes share a
memory budget, and two deployments on one Redis are told apart."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from PIL import Image

from core.checks import channel_prefix_check
from intake import media
from intake.models import ContentItem
from intake.tasks import process_item
from review.models import Claim
from review.services import item_claim, item_release
from review.tasks import leases_expire
from tests.helpers.factories import make_item, make_queue
from tests.helpers.livesrv import daphne_process

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_the_beat_task_returns_expired_leases_to_the_queue_without_any_claim(moderator):
    queue = make_queue()
    item = make_item(queue, seed=1)
    claim = item_claim(reviewer=moderator, queue=queue)
    assert leases_expire.apply().get() == 0
    Claim.objects.filter(pk=claim.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert leases_expire.apply().get() == 1
    item.refresh_from_db()
    claim.refresh_from_db()
    assert item.status == ContentItem.Status.READY and item.lease_holder_id is None
    assert claim.outcome == Claim.Outcome.EXPIRED


def test_beat_runs_the_lease_sweep_every_fifteen_seconds() -> None:
    from config.celery import app

    schedule = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    assert schedule["review_queue.leases_expire"] <= 15
    assert schedule["moderation.webhooks_resend_due"] <= 60


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_is_stamped_after_the_shift_lock_is_held_not_before(moderator):
    """A reviewer's second request waits for the first one's shift lock; its claim, lease and exposure entry start
    when it got the lock (they were stamped before the wait, up to 0.7 s early under load)."""
    from wellbeing.models import ExposureEntry, Shift

    queue = make_queue()
    make_item(queue, seed=1)
    make_item(queue, seed=2)
    item_release(item=item_claim(reviewer=moderator, queue=queue).item, reviewer=moderator)
    shift = Shift.objects.get(reviewer=moderator, ended_at__isnull=True)
    holding, released = threading.Event(), []

    def hold_the_lock() -> None:
        with transaction.atomic():
            Shift.objects.select_for_update().get(pk=shift.pk)
            holding.set()
            time.sleep(0.8)
            released.append(timezone.now())
        connection.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert holding.wait(5)
    asked = timezone.now()
    claim = item_claim(reviewer=moderator, queue=queue)
    holder.join()
    assert claim.claimed_at >= released[0] > asked + timedelta(seconds=0.5)
    assert claim.expires_at == claim.claimed_at + timedelta(seconds=queue.lease_duration_seconds)
    assert ExposureEntry.objects.get(claim_id=claim.pk).claimed_at == claim.claimed_at


@pytest.mark.django_db
def test_processing_retries_a_database_outage_instead_of_stranding_the_item(moderator, monkeypatch):
    queue = make_queue()
    item = make_item(queue, seed=3, process=False)
    calls = []

    def unreachable(*, item_id: int) -> None:
        calls.append(item_id)
        raise OperationalError("connection refused")

    monkeypatch.setattr("intake.services.item_process", unreachable)
    from celery.exceptions import Retry

    with pytest.raises(Retry) as retry:  # a retry is scheduled (with backoff), not a failure that strands the item
        process_item.apply(args=(item.pk,))
    assert isinstance(retry.value.exc, OperationalError)
    assert calls == [item.pk]


def _settings_error(**env: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
         "django.setup(); from django.conf import settings; print(settings.CELERY_BROKER_TRANSPORT_OPTIONS)"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False)
    return completed.stdout + completed.stderr


def test_the_visibility_timeout_must_outlast_a_running_or_waiting_task() -> None:
    shipped = _settings_error()
    assert "'visibility_timeout': 90" in shipped and "'unacked_restore_interval': 10" in shipped
    refused = _settings_error(VEIL_TASK_VISIBILITY_SECONDS="60", VEIL_TASK_TIME_LIMIT_SECONDS="45")
    assert "VEIL_TASK_VISIBILITY_SECONDS (60) must be larger than" in refused


def test_decodes_wait_for_room_in_the_budget_and_give_up_with_a_clear_refusal() -> None:
    budget = media.DecodeBudget(budget_bytes=100, wait_seconds=0.5)
    order: list[str] = []

    def second() -> None:
        with budget.hold(50):
            order.append("second")

    with budget.hold(80):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.2)
        order.append("first done")
    waiter.join(2)
    assert order == ["first done", "second"]  # it waited for the first to finish
    with budget.hold(80), pytest.raises(media.DecodeBusy, match="Try again in a minute"), budget.hold(60):
        pass
    with budget.hold(10_000):  # larger than the whole budget: decodes alone rather than never
        assert budget.in_use == budget.budget_bytes
    assert budget.in_use == 0


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_three_simultaneous_maximum_size_uploads_stay_within_the_decode_budget(request, requester, tmp_path):
    """Three 49-megapixel PNGs (each a 196 MB raster) uploaded at once: decoded one after another inside a 256 MiB
    budget, not side by side, and each raster given back to the OS when freed (core/memory.py). Before, one
    daphne process grew by 790 MiB and kept it."""
    import io
    import json
    import urllib.request

    from rest_framework.authtoken.models import Token

    queue = make_queue(slug="big")
    queue.submitters.add(requester)
    token = Token.objects.create(user=requester).key
    picture = io.BytesIO()
    Image.new("RGB", (7000, 7000), (90, 120, 150)).save(picture, "PNG")
    body_parts = [b"--b\r\nContent-Disposition: form-data; name=\"queue\"\r\n\r\nbig\r\n",
                  b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.png\"\r\n\r\n",
                  picture.getvalue(), b"\r\n--b--\r\n"]
    body = b"".join(body_parts)
    with daphne_process(request, {"VEIL_DECODE_BUDGET_MIB": "256"}) as (base_url, process):
        before = _peak_rss(process.pid)
        statuses: list[int] = []

        def upload() -> None:
            ask = urllib.request.Request(f"{base_url}/api/v1/items/", data=body, method="POST", headers={
                "Authorization": f"Token {token}", "Content-Type": "multipart/form-data; boundary=b"})
            try:
                with urllib.request.urlopen(ask, timeout=120) as answer:
                    statuses.append(answer.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
                print(json.loads(exc.read()))

        threads = [threading.Thread(target=upload) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        grown = _peak_rss(process.pid) - before
    assert statuses == [201, 201, 201]
    assert grown < 300 * 1024 * 1024, f"three decodes grew the server by {grown / 2**20:.0f} MiB"


@pytest.mark.redis
def test_a_second_deployment_on_the_same_redis_prefix_is_noticed(settings) -> None:
    import secrets

    import redis

    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    prefix = f"veil-check-{secrets.token_hex(3)}"
    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "x", "CONFIG": {"prefix": prefix}}}
    client = redis.Redis.from_url(redis_url)
    try:
        assert channel_prefix_check(None) == []  # the first deployment records itself
        assert channel_prefix_check(None) == []  # and is itself the next time
        settings.DATABASES = {"default": {**settings.DATABASES["default"], "NAME": "another_veil"}}
        found = channel_prefix_check(None)
        assert [m.id for m in found] == ["veil.W002"] and prefix in found[0].msg
    finally:
        client.delete(f"{prefix}:veil-deployment")
