"""`manage.py purge_expired_checkins`: the retention task for embedded mode (no Celery beat), e.g. from cron."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from wellbeing import services


class Command(BaseCommand):
    help = "Delete check-ins older than VEIL_CHECKIN_RETENTION_DAYS (and the log of reads of them)."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = services.checkins_purge_expired()
        self.stdout.write(f"Deleted {deleted} check-in(s) older than {settings.VEIL_CHECKIN_RETENTION_DAYS} days.")
