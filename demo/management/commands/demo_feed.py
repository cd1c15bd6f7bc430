"""`manage.py demo_feed`: keep the demo queues supplied with synthetic items while someone tries the demo.

`make run` starts it beside the server and stops it with the server. Every --every seconds it tops each demo queue
up to --keep items waiting, with new synthetic pictures (labelled SYNTHETIC DEMO, of random categories and
severities) through the same ingest and media pipeline as any upload. It only ever replaces what was reviewed, so a
demo left running does not pile up work nobody asked for. --once tops up once and exits.
"""

from __future__ import annotations

import random
import time
from typing import Any

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from demo import content as demo
from demo.management.commands.seed_demo import QUEUES, REQUESTER_ACCOUNT, quiet_task_logs
from intake import services
from intake.models import Category, ContentItem
from review.models import Queue

CATEGORIES = [c for c in Category.values if c != Category.UNSPECIFIED]


def top_up(*, keep: int, rng: random.Random) -> int:
    """Add synthetic items to every demo queue with fewer than `keep` waiting. Returns how many were added."""
    requester = User.objects.filter(username=REQUESTER_ACCOUNT).first()
    if requester is None:
        raise CommandError("The demo is not seeded: run `manage.py seed_demo` (make run does) first.")
    added = 0
    for queue in Queue.objects.filter(slug__in=[q.slug for q in QUEUES], is_active=True).order_by("slug"):
        waiting = ContentItem.objects.filter(queue=queue, status=ContentItem.Status.READY).count()
        for _ in range(max(0, keep - waiting)):
            seed = rng.getrandbits(31)
            severity = rng.choice((0, 0, 1, 1, 2, 3))
            category = rng.choice(CATEGORIES)
            label = f"SYNTHETIC DEMO · severity {severity} · {category.replace('_', '-')}"
            if rng.random() < 0.15:  # now and then a short clip (issue 25: video reviewed whole)
                data = demo.demo_clip(seed, label=label, seconds=4.0)
                upload = SimpleUploadedFile(f"feed-{seed}.mp4", data, content_type="video/mp4")
            else:
                data = demo.encode(demo.demo_image(seed, label=label))
                upload = SimpleUploadedFile(f"feed-{seed}.jpg", data, content_type="image/jpeg")
            with transaction.atomic():
                item = services.item_ingest(queue=queue, upload=upload, submitted_by=requester,
                                            external_id=f"feed-{seed}", category=category, severity=severity)
                services.item_process(item_id=item.pk)
            added += 1
    return added


class Command(BaseCommand):
    help = "Keep the demo queues supplied with synthetic items (make run starts it beside the server)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--keep", type=int, default=8, help="Items to keep waiting in each demo queue (1-50).")
        parser.add_argument("--every", type=float, default=20.0, help="Seconds between top-ups (at least 1).")
        parser.add_argument("--once", action="store_true", help="Top up once and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        keep, every = int(options["keep"]), float(options["every"])
        if not 1 <= keep <= 50:
            raise CommandError("--keep must be between 1 and 50.")
        if every < 1:
            raise CommandError("--every must be at least 1 second.")
        rng = random.Random()  # noqa: S311 (picture seeds for a demo, not secrets)
        verbose = int(options["verbosity"]) >= 2
        try:
            while True:
                with quiet_task_logs(enabled=not verbose):
                    added = top_up(keep=keep, rng=rng)
                if added:
                    self.stdout.write(f"demo feed: {added} new synthetic item{'s' if added != 1 else ''}.")
                if options["once"]:
                    return
                time.sleep(every)
        except KeyboardInterrupt:
            return  # the server stopped (make run): so does the feed
