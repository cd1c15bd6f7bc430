"""The media pipeline through a real Celery worker process on Redis, against the PostgreSQL test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app
from intake.models import ContentItem
from intake.services import item_ingest
from tests.helpers.factories import image_bytes, make_queue, upload
from tests.helpers.services import TEST_REDIS_URL

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def worker(_private_media: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": TEST_REDIS_URL,
        "VEIL_MEDIA_ROOT": str(_private_media),
        "VEIL_SECRET_KEY": settings.SECRET_KEY,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-l", "warning",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield proc
    finally:
        app.conf.task_always_eager = previous
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_worker_processes_ingested_items(worker):
    queue = make_queue(slug="worker")
    good = item_ingest(queue=queue, upload=upload(image_bytes(7)), submitted_by=None)
    other = item_ingest(queue=queue, upload=upload(image_bytes(8, fmt="JPEG"), "b.jpg"), submitted_by=None)
    # ingest enqueued with on_commit; in a transactional test each save commits at once.

    def all_ready() -> bool:
        return set(ContentItem.objects.filter(pk__in=[good.pk, other.pk]).values_list("status", flat=True)) == {
            "ready"}

    ok = wait_for(all_ready)
    if not ok:
        worker.terminate()
        out = worker.communicate(timeout=10)[0].decode(errors="replace")
        pytest.fail(f"worker did not process the items in time; worker output:\n{out[-3000:]}")
    for item in ContentItem.objects.filter(pk__in=[good.pk, other.pk]):
        assert item.is_reviewable
        assert Path(item.preview.path).exists() and Path(item.display.path).exists()


def test_redelivered_task_is_harmless(worker):
    from intake.tasks import process_item

    queue = make_queue(slug="worker-twice")
    item = item_ingest(queue=queue, upload=upload(image_bytes(9)), submitted_by=None)
    assert wait_for(lambda: ContentItem.objects.get(pk=item.pk).status == "ready")
    first = ContentItem.objects.get(pk=item.pk)
    process_item.delay(item.pk)  # as if the broker redelivered it
    process_item.delay(item.pk)
    time.sleep(1.5)
    again = ContentItem.objects.get(pk=item.pk)
    assert (again.preview.name, again.display.name, again.processed_at) == (
        first.preview.name, first.display.name, first.processed_at)
    files = sorted(p.name for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file())
    assert len(files) == 3, files  # original, preview, display: nothing orphaned
