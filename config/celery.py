import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("veil")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Run `celery -A config beat` beside the worker. Embedded mode has no beat: use `manage.py purge_expired_checkins`.
app.conf.beat_schedule = {
    "purge-expired-checkins": {"task": "wellbeing.checkins_purge_expired", "schedule": crontab(hour=3, minute=17)},
    "requeue-stuck-processing": {"task": "moderation.processing_requeue_stuck", "schedule": 120.0},
    # Leases that ran out go back to their queue on time, not when the next claim happens to look.
    "expire-leases": {"task": "review_queue.leases_expire", "schedule": 15.0},
    "resend-due-webhooks": {"task": "moderation.webhooks_resend_due", "schedule": 30.0},
    "record-automatic-breaks": {"task": "wellbeing.breaks_catch_up", "schedule": 60.0},
}
