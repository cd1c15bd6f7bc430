"""`manage.py resend_webhooks`: enqueue again the decision webhooks whose delivery task was lost.

Run it from cron every few minutes. Without --due it picks only pending deliveries nothing has touched for
--idle-minutes (90 by default, longer than the largest backoff), so it never races a retry that is merely waiting.
In embedded mode (eager Celery, no worker) run it with --due every minute: it then also makes the retries a worker
would make, each once its backoff has passed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from integrations import webhooks


class Command(BaseCommand):
    help = "Enqueue again pending decision webhooks that nothing has attempted for a while."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--idle-minutes", type=int, default=90,
                            help="Only deliveries with no attempt (or creation) for this many minutes.")
        parser.add_argument("--due", action="store_true",
                            help="Also retry failed attempts whose backoff has passed (embedded mode, where no "
                            "worker waits between attempts: run it every minute from cron).")

    def handle(self, *args: Any, **options: Any) -> None:
        from integrations.tasks import deliver_webhook

        idle = webhooks.webhooks_idle(idle_minutes=max(1, int(options["idle_minutes"])))
        if options["due"]:
            idle = sorted(set(idle) | set(webhooks.webhooks_due()))
        for delivery_id in idle:
            deliver_webhook.delay(delivery_id)
        self.stdout.write(f"{len(idle)} webhook deliveries enqueued again.")
