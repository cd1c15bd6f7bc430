"""Issue 21, point 10: `make run PORT=8101` prints (and saves) the address it really serves, and the demo keeps
producing synthetic items for as long as someone tries it (`demo_feed`, started by make run beside the server)."""

from __future__ import annotations

import io
import re
import stat
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from demo.management.commands import seed_demo
from intake.models import ContentItem
from review.models import Queue
from review.services import item_claim
from tests.helpers.demo import seed
from tests.helpers.factories import make_user
from tests.helpers.wellbeing import finish

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_prints_and_saves_the_address_it_serves(data_dir, few_items):
    output = seed("--host", "127.0.0.1", "--port", "8101")
    assert "open http://127.0.0.1:8101/ and sign in" in output and ":8000" not in output
    path = data_dir / "demo-logins.txt"
    assert "# Sign in at http://127.0.0.1:8101/" in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o600
    # Started again on another port, the saved file follows (the passwords stay).
    before = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    seed("--port", "8202")
    assert "# Sign in at http://127.0.0.1:8202/" in path.read_text()
    assert [line for line in path.read_text().splitlines() if not line.startswith("#")] == before
    with pytest.raises(CommandError):
        seed("--port", "0")
    assert seed_demo.demo_url("0.0.0.0", 8101) == "http://127.0.0.1:8101/"
    assert seed_demo.demo_url("::1", 8101) == "http://[::1]:8101/"


def test_make_run_passes_its_host_and_port_and_starts_the_feed():
    makefile = (ROOT / "Makefile").read_text()
    assert "seed_demo --host $(HOST) --port $(PORT)" in makefile
    run = makefile[makefile.index("\nrun:"):]
    run = run[:run.index("\n\n")]
    assert "demo_feed &" in run and "kill $$feed" in run and "serve" in run


def test_the_feed_tops_the_demo_queues_up_as_items_are_reviewed(data_dir, few_items):
    seed()
    moderator = make_user("mo-feed", "moderator")
    out = io.StringIO()
    call_command("demo_feed", "--once", "--keep", "3", stdout=out)
    queues = Queue.objects.filter(slug__in=[q.slug for q in seed_demo.QUEUES])
    waiting = {q.slug: ContentItem.objects.filter(queue=q, status="ready").count() for q in queues}
    assert waiting == dict.fromkeys(waiting, 3) and len(waiting) == 3
    added = ContentItem.objects.filter(external_id__startswith="feed-")
    assert added.exists() and all(i.status == "ready" and i.preview for i in added)  # through the real pipeline
    assert re.search(r"demo feed: \d+ new synthetic items", out.getvalue())

    reported = queues.get(slug="reported-posts")
    for _ in range(2):  # someone reviews two items ...
        finish(item_claim(reviewer=moderator, queue=reported))
    call_command("demo_feed", "--once", "--keep", "3", stdout=io.StringIO())
    assert ContentItem.objects.filter(queue=reported, status="ready").count() == 3  # ... and they are replaced
    call_command("demo_feed", "--once", "--keep", "3", stdout=io.StringIO())
    assert ContentItem.objects.filter(queue=reported, status="ready").count() == 3  # never more than asked
    with pytest.raises(CommandError):
        call_command("demo_feed", "--once", "--keep", "0")
