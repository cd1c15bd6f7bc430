"""Start-up checks: misconfiguration should stop the server, not surface in the middle of an ingest."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register


@register()
def neardup_thresholds_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    from moderation.matching import thresholds

    try:
        thresholds()
    except (TypeError, ValueError) as exc:
        return [Error(f"VEIL_NEARDUP_THRESHOLDS is not valid: {exc}", id="veil.E001")]
    return []


@register(deploy=False)
def channel_prefix_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Two Veils on one Redis hear each other's live updates unless their channel prefixes differ (Redis pub/sub
    ignores the database index). Each deployment records which database it serves under its prefix; a different
    database found there is a warning, with the fix. Runs with `manage.py check` and `migrate` (make stack, compose)."""
    from django.conf import settings

    redis_url = getattr(settings, "REDIS_URL", "")
    if not redis_url:
        return []
    import redis

    db = settings.DATABASES["default"]
    identity = f"{db['ENGINE']}|{db.get('HOST') or 'local'}|{db.get('PORT') or ''}|{db['NAME']}"
    prefix = str(settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"])  # type: ignore[index]  # set with REDIS_URL
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2, decode_responses=True)
        key = f"{prefix}:veil-deployment"
        client.set(key, identity, nx=True, ex=7 * 24 * 3600)
        found = client.get(key)
        if found == identity:
            client.expire(key, 7 * 24 * 3600)
    except redis.RedisError:
        return []  # Redis down is reported where it matters (pages and claims keep working; README "Faults")
    if found is not None and found != identity:
        return [Warning(
            f"Another Veil (database {str(found).split('|', 1)[-1]}) uses the channel prefix {prefix!r} on this "
            "Redis: consoles of both would hear each other's live updates.",
            hint=f"Give each deployment on one Redis its own VEIL_CHANNEL_PREFIX. If this deployment moved to another "
            f"database, delete the Redis key {key!r} once.", id="veil.W002")]
    return []
