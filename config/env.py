"""Typed readers for environment variables.

Every setting Veil reads from the environment goes through one of these, so a bad value fails at start-up with
the variable's name instead of surfacing later as a confusing error deep in a request.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def env_choice(name: str, default: str, choices: list[str]) -> str:
    """One of a fixed set of values (compared without case or surrounding spaces); anything else stops start-up."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [part.strip() for part in raw.split(",") if part.strip()]


def env_json_object(name: str) -> dict[str, object]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def database_from_url(name: str, url: str) -> dict[str, object]:
    """Turn postgres://user:pass@host:port/db or sqlite:///path into a Django DATABASES entry."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"postgres", "postgresql", "pgsql"}:
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ImproperlyConfigured(f"{name} must name a database, e.g. postgres://user@host:5432/veil")
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name} has an invalid port: {url!r}") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": database,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            # Connections are reused through a pool (settings: VEIL_DB_POOL_SIZE), never kept per thread: under
            # ASGI every request runs in a thread of its own, so CONN_MAX_AGE would leave one open per request.
            "CONN_MAX_AGE": 0,
            "OPTIONS": options,
        }
    if scheme == "sqlite":
        path = unquote(parts.path)
        # sqlite:////abs/path -> "//abs/path"; sqlite:///rel/path -> "/rel/path" (relative to the working dir)
        if path.startswith("//") or path.startswith("/"):
            path = path[1:]
        if not path:
            raise ImproperlyConfigured(f"{name} must give a file path, e.g. sqlite:///var/veil.sqlite3")
        return sqlite_database(path)
    raise ImproperlyConfigured(f"{name} must start with postgres:// or sqlite://, got {url!r}")


def _per_process_test_file() -> str:
    return str(Path(tempfile.gettempdir()) / f"veil-test-{os.getpid()}.sqlite3")


def sqlite_database(path: str) -> dict[str, object]:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # IMMEDIATE takes the write lock when a transaction starts, so two claims cannot both read a row as free
        # and then race to update it; the claim service also double-checks with a conditional UPDATE.
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
        # A file, not :memory:, so a daphne process started by the browser tests can open the test database too.
        "TEST": {"NAME": os.environ.get("VEIL_TEST_SQLITE") or _per_process_test_file()},
    }
