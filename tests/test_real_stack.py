"""The stack as deployed (`python -m config.stack`: several daphne processes on one socket, a Celery worker and
beat, PostgreSQL, Redis), driven only through HTTP, behind a database role limited to a few connections.

Before the connection pool, every request under daphne opened a PostgreSQL connection of its own and left it open:
20 moderators reached the server's limit and got 503s, and the worker could not connect either.
"""

from __future__ import annotations

import http.client
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from intake.models import ContentItem
from review.models import Claim
from tests.helpers.factories import image_bytes, make_queue, make_user
from tests.helpers.livesrv import free_port, real_stack

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow,
              pytest.mark.django_db(transaction=True)]

ROLE_LIMIT = 14  # 2 web x pool 4, worker 2 x 2, beat 1 = 13, one to spare
CLIENTS = 50
ITEMS = 70


@contextmanager
def limited_role() -> Iterator[str]:
    role = f"veil_limited_{secrets.token_hex(3)}"
    with connection.cursor() as cursor:
        # A member of the owner (postgres here) inherits its table rights; the limit applies to this role alone.
        owner = connection.settings_dict["USER"] or "postgres"
        cursor.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {ROLE_LIMIT} IN ROLE {owner}")
    try:
        yield role
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role])
            cursor.execute(f"DROP ROLE IF EXISTS {role}")


def _role_connections(role: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [role])
        return int(cursor.fetchone()[0])


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    claimed: list[tuple[str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _call(port: int, method: str, path: str, token: str, body: bytes = b"",
          content_type: str = "application/json") -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body or None,
                     headers={"Authorization": f"Token {token}", "Content-Type": content_type})
        answer = conn.getresponse()
        raw = answer.read()
    finally:
        conn.close()
    try:
        return answer.status, json.loads(raw) if raw else None
    except ValueError:
        return answer.status, raw[:200]


def _multipart(fields: dict[str, str], file: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.png"\r\n'
                 "Content-Type: image/png\r\n\r\n".encode() + file + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _moderate(port: int, username: str, token: str, slug: str, tally: Tally, deadline: float,
              done: threading.Event) -> None:
    while time.monotonic() < deadline:
        status, body = _call(port, "POST", f"/api/v1/queues/{slug}/claim/", token)
        with tally.lock:
            tally.statuses[status] += 1
        if status == 404:  # nothing waiting: the queue is empty, or items are still being processed
            if done.wait(0.3):
                return
            continue
        if status != 200:
            with tally.lock:
                tally.errors.append(f"claim {status}: {body}")
            time.sleep(0.2)
            continue
        item_id = int(body["id"])
        with tally.lock:
            tally.claimed.append((username, item_id))
        status, body = _call(port, "POST", f"/api/v1/items/{item_id}/decision/", token,
                             json.dumps({"action": "approve", "reason": "load test"}).encode())
        with tally.lock:
            tally.statuses[status] += 1
            if status != 201:
                tally.errors.append(f"decision {status}: {body}")


def test_fifty_api_clients_on_the_deployed_stack_behind_a_connection_limited_role(settings):
    queue = make_queue(slug="load", purpose="Load test of the deployed stack.", requester="Veil CI")
    requester = make_user("submitter", "requester")
    queue.submitters.add(requester)
    requester_token = Token.objects.create(user=requester).key
    moderators = [(f"mod{n}", Token.objects.create(user=make_user(f"mod{n}", "moderator")).key)
                  for n in range(CLIENTS)]
    port = free_port()
    with limited_role() as role, real_stack(port=port, web=2, role=role, pool=4) as stack:
        # Items arrive through the API and the worker: 70 uploads, a few at a time.
        upload_statuses: Counter[int] = Counter()

        def submit(seeds: range) -> None:
            for seed in seeds:
                body, ctype = _multipart({"queue": queue.slug, "external_id": f"load-{seed}"},
                                         image_bytes(10_000 + seed))
                status, answer = _call(port, "POST", "/api/v1/items/", requester_token, body, ctype)
                upload_statuses[status] += 1
                assert status == 201, answer

        uploaders = [threading.Thread(target=submit, args=(range(k, ITEMS, 5),)) for k in range(5)]
        for thread in uploaders:
            thread.start()
        tally = Tally()
        deadline = time.monotonic() + 120
        done = threading.Event()
        clients = [threading.Thread(target=_moderate, args=(port, name, token, queue.slug, tally, deadline, done))
                   for name, token in moderators]
        peak = 0
        for thread in clients:
            thread.start()
        for thread in uploaders:
            thread.join()
        while time.monotonic() < deadline:
            peak = max(peak, _role_connections(role))
            left = ContentItem.objects.filter(queue=queue).exclude(status=ContentItem.Status.DECIDED).count()
            if left == 0:
                break
            time.sleep(0.2)
        done.set()
        for thread in clients:
            thread.join(timeout=60)
        peak = max(peak, _role_connections(role))
        log = stack.log()

    assert upload_statuses == Counter({201: ITEMS})
    assert not [s for s in tally.statuses if s >= 500], (tally.statuses, tally.errors[:5], log[-3000:])
    assert not tally.errors, tally.errors[:5]
    decided = ContentItem.objects.filter(queue=queue, status=ContentItem.Status.DECIDED).count()
    assert decided == ITEMS, Counter(ContentItem.objects.filter(queue=queue).values_list("status", flat=True))
    assert not ContentItem.objects.filter(status=ContentItem.Status.PROCESSING).exists()
    # Never two people on one item: one claim per item, each by whoever the API said claimed it.
    claims = Counter(Claim.objects.filter(queue=queue).values_list("item_id", flat=True))
    assert len(tally.claimed) == ITEMS and set(claims.values()) == {1}
    assert peak <= ROLE_LIMIT
