from celery import shared_task

from wellbeing import services


@shared_task(name="wellbeing.checkins_purge_expired")
def checkins_purge_expired() -> int:
    """Daily (config/celery.py beat schedule): delete check-ins past VEIL_CHECKIN_RETENTION_DAYS. Idempotent."""
    return services.checkins_purge_expired()


@shared_task(name="wellbeing.breaks_catch_up")
def breaks_catch_up() -> int:
    """Every minute (config/celery.py beat schedule): record breaks that started by themselves. Idempotent."""
    return services.breaks_catch_up_all()
