"""Start-up checks: misconfiguration should stop the server, not surface in the middle of an ingest."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Warning, register


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
    layers: dict[str, Any] = settings.CHANNEL_LAYERS
    prefix = str(layers["default"]["CONFIG"]["prefix"])  # set with REDIS_URL
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


@register(deploy=True)
def eager_tasks_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Eager Celery is the embedded demo's way (SQLite, `make run`): work runs inside the request that asked for it.
    On PostgreSQL with DEBUG off that is a production deployment without a broker: every upload decodes, hashes and
    matches inside its request, webhooks are sent from the decision's request, and no beat expires leases."""
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    if on_postgres and not settings.DEBUG and settings.CELERY_TASK_ALWAYS_EAGER:
        return [Warning(
            "Celery runs eagerly (no REDIS_URL) on a PostgreSQL deployment: uploads are processed inside their "
            "request and nothing runs the periodic tasks (lease expiry, breaks, webhook retries).",
            hint="Set REDIS_URL and run a worker and beat (make stack, or compose/).", id="veil.W003")]
    return []


@register(deploy=True)
def double_pool_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Django's connection pool in front of PgBouncer (its usual port, 6432) pools twice: each web process holds its
    pool's connections open in PgBouncer, which then cannot share them between processes."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql" or not settings.VEIL_DB_POOL_SIZE:
        return []
    if _looks_like_pgbouncer(database):
        return [Warning(
            "Veil's own connection pool (VEIL_DB_POOL_SIZE) is on, and the database looks like PgBouncer.",
            hint="Behind a pooler set VEIL_DB_POOL_SIZE=0 (README, The real stack).", id="veil.W004")]
    return []


def _looks_like_pgbouncer(database: dict[str, Any]) -> bool:
    return str(database.get("PORT") or "") == "6432" or "bouncer" in str(database.get("HOST") or "").lower()


@register(deploy=True)
def prepared_behind_pooler_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """The claim path's prepared statements (core.compiled) live on one server connection; a pooler in transaction
    mode hands the next transaction another one, where they do not exist, unless it keeps them itself (PgBouncer
    1.21+ with max_prepared_statements)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql" or not settings.VEIL_DB_PREPARED_STATEMENTS:
        return []
    if _looks_like_pgbouncer(database):
        return [Warning(
            "Veil runs its claim path as prepared statements (VEIL_DB_PREPARED_STATEMENTS), and the database looks "
            "like PgBouncer.",
            hint="Unless PgBouncer is 1.21 or later with max_prepared_statements set, set "
                 "VEIL_DB_PREPARED_STATEMENTS=0 (README, The real stack).", id="veil.W005")]
    return []
