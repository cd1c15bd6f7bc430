"""Server-side prepared statements for the few hot statements Veil writes in SQL (the claim path).

Django's PostgreSQL cursors bind parameters on the client and never prepare, so a statement is planned on every
execution. For the claim path's statements planning costs as much as running them, or more: prepared, each is
planned once per connection (psycopg keeps up to 100 per connection, keyed by the SQL text and parameter types).
Turn off with VEIL_DB_PREPARED_STATEMENTS=0 behind a pooler that cannot keep prepared statements (PgBouncer in
transaction mode before 1.21); on SQLite, or when off, these run through Django's own cursor.

Parameters are `%s` or `%(name)s` placeholders, as with Django's cursors. What runs is still visible to
CaptureQueriesContext and debug tooling, marked `/* prepared */`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.db import connection

Params = Sequence[Any] | Mapping[str, Any]
EXPLICIT_ONLY = 2**31 - 1  # executions before psycopg would prepare a statement by itself: never


def prepares() -> bool:
    return connection.vendor == "postgresql" and bool(settings.VEIL_DB_PREPARED_STATEMENTS)


def fetch(sql: str, params: Params, *, many: bool = False) -> list[tuple[Any, ...]]:
    """Run one statement and return its rows (the first only, unless `many`)."""
    if not prepares():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            if cursor.description is None:
                return []
            found = cursor.fetchall() if many else [r for r in [cursor.fetchone()] if r is not None]
        return [tuple(r) for r in found]
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    threshold = raw.prepare_threshold
    started = time.monotonic()
    try:
        if threshold is None:
            # Django opens its connections with prepared statements off (prepare_threshold None), and psycopg then
            # ignores `prepare=True` as well. Turned on for this statement only: with a threshold set, psycopg
            # would also track every one of Django's own statements (and forget all it prepared at any ROLLBACK
            # TO SAVEPOINT among them); Django's cursors bind on the client and never prepare anyway.
            raw.prepare_threshold = EXPLICIT_ONLY
        with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
            cursor.execute(sql, params, prepare=True)  # type: ignore[arg-type]  # the SQL text is ours
            # Not `cursor.description`: psycopg builds a Column object per column each time it is asked, which for
            # the gate's 60-column read cost more than the fetch itself.
            result = cursor.pgresult
            if result is None or result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                rows: list[tuple[Any, ...]] = []
            elif many:
                rows = cursor.fetchall()
            else:
                rows = [r for r in [cursor.fetchone()] if r is not None]
    finally:
        raw.prepare_threshold = threshold
    if connection.queries_logged:
        connection.queries_log.append({"sql": f"/* prepared */ {sql} -- {params!r}",
                                       "time": f"{time.monotonic() - started:.3f}"})
    return rows


def fetchone(sql: str, params: Params) -> tuple[Any, ...] | None:
    rows = fetch(sql, params)
    return rows[0] if rows else None
