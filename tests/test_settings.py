"""Settings read from the environment. Each case imports the settings in a fresh interpreter, so the variables set
here never leak into this process or into other tests."""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Besides every VEIL_* variable, these are cleared first, so the caller's environment (e.g. make test's PostgreSQL
# pass) does not change what a case sees.
_OWN_VARIABLES = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")

_DUMP = """
import json, sys
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in sys.argv[1:]}, default=str))
"""


def strong_key() -> str:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    return "".join(secrets.choice(alphabet) for _ in range(60))


def _env(data_dir: Path, overrides: dict[str, str | None]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEIL_") and k not in _OWN_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", VEIL_DATA_DIR=str(data_dir), VEIL_SECRET_KEY=strong_key())
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(args: list[str], data_dir: Path, **overrides: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(data_dir, overrides), capture_output=True, text=True, timeout=120
    )


def settings_of(data_dir: Path, *names: str, **overrides: str | None) -> dict[str, Any]:
    result = run(["-c", _DUMP, *names], data_dir, **overrides)
    assert result.returncode == 0, result.stderr
    values: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return values


def refusal(data_dir: Path, **overrides: str | None) -> str:
    """The ImproperlyConfigured message settings fail with."""
    result = run(["-c", _DUMP, "DEBUG"], data_dir, **overrides)
    assert result.returncode != 0, f"settings loaded with {overrides}"
    match = re.search(r"django\.core\.exceptions\.ImproperlyConfigured: (.*)", result.stderr)
    assert match, result.stderr
    return match.group(1)


# --- database ---------------------------------------------------------------------------------------------------


def test_no_database_url_means_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    db = settings_of(tmp_path, "DATABASES")["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(tmp_path.resolve() / "veil.sqlite3")


def test_postgres_database_url(tmp_path: Path) -> None:
    db = settings_of(tmp_path, "DATABASES", DATABASE_URL="postgres://u:p@h:5433/veil")["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == ("veil", "u", "p", "h", "5433")


def test_prepared_statements_are_planned_once_per_connection(tmp_path: Path) -> None:
    """PostgreSQL gets plan_cache_mode=force_generic_plan as a startup option while prepared statements are on (the
    only statements it changes); off with VEIL_DB_GENERIC_PLANS=0 or with prepared statements off. SQLite: nothing."""
    url = "postgres://u:p@h:5433/veil"

    def options(**overrides: str | None) -> dict[str, Any]:
        found: dict[str, Any] = settings_of(tmp_path, "DATABASES", **overrides)["DATABASES"]["default"]
        return found.get("OPTIONS") or {}

    assert options(DATABASE_URL=url)["options"] == "-c plan_cache_mode=force_generic_plan"
    assert "options" not in options(DATABASE_URL=url, VEIL_DB_GENERIC_PLANS="0")
    assert "options" not in options(DATABASE_URL=url, VEIL_DB_PREPARED_STATEMENTS="0")
    assert "options" not in options(DATABASE_URL=url + "?sslmode=disable", VEIL_DB_PREPARED_STATEMENTS="0")
    assert "options" not in options()
    given = url + "?options=-c%20plan_cache_mode%3Dauto"  # the operator's own choice is kept
    assert options(DATABASE_URL=given)["options"] == "-c plan_cache_mode=auto"


def test_unknown_database_scheme_is_refused_by_name(tmp_path: Path) -> None:
    message = refusal(tmp_path, DATABASE_URL="mysql://u:p@h:3306/veil")
    assert "DATABASE_URL" in message
    assert "mysql://" in message


# --- channel layer and Celery -----------------------------------------------------------------------------------

_REALTIME = ("CHANNEL_LAYERS", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER")


def test_no_redis_url_means_in_memory_layer_and_eager_tasks(tmp_path: Path) -> None:
    values = settings_of(tmp_path, *_REALTIME)
    assert values["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert values["CELERY_TASK_ALWAYS_EAGER"] is True


def test_redis_url_means_redis_pubsub_layer_and_a_real_broker(tmp_path: Path) -> None:
    url = "redis://cache.internal:6380/2"
    values = settings_of(tmp_path, *_REALTIME, REDIS_URL=url)
    layer = values["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert [host["address"] for host in layer["CONFIG"]["hosts"]] == [url]
    assert values["CELERY_BROKER_URL"] == url
    assert values["CELERY_TASK_ALWAYS_EAGER"] is False


# --- typed variables fail fast, naming the variable ---------------------------------------------------------------


def test_debug_defaults_to_false(tmp_path: Path) -> None:
    assert settings_of(tmp_path, "DEBUG")["DEBUG"] is False


def test_unreadable_boolean_is_refused_by_name(tmp_path: Path) -> None:
    assert "VEIL_DEBUG" in refusal(tmp_path, VEIL_DEBUG="maybe")


@pytest.mark.parametrize("value", ["abc", "29", "3601"], ids=["not-a-number", "below-minimum", "above-maximum"])
def test_bad_lease_seconds_are_refused_by_name(tmp_path: Path, value: str) -> None:
    assert "VEIL_LEASE_SECONDS" in refusal(tmp_path, VEIL_LEASE_SECONDS=value)


def test_short_secret_key_is_refused(tmp_path: Path) -> None:
    assert "VEIL_SECRET_KEY" in refusal(tmp_path, VEIL_SECRET_KEY="too-short")


# --- production ---------------------------------------------------------------------------------------------------

_PRODUCTION = {"VEIL_SECURE": "1", "VEIL_ALLOWED_HOSTS": "veil.example.org", "VEIL_DEBUG": "0"}


def deploy_check(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], data_dir, **_PRODUCTION)


def test_deploy_check_passes_with_production_variables(tmp_path: Path) -> None:
    result = deploy_check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_check_raises_nothing_but_the_preload_warning(tmp_path: Path) -> None:
    """Holds the line while the test above is expected to fail: no other deploy warning may appear."""
    result = deploy_check(tmp_path)
    output = result.stdout + result.stderr
    assert set(re.findall(r"\(([\w.]+\.[EW]\d+)\)", output)) <= {"security.W021"}, output
    assert "Traceback" not in output, output


def test_generated_secret_key_is_private_and_reused(tmp_path: Path) -> None:
    first = settings_of(tmp_path, "SECRET_KEY", VEIL_SECRET_KEY=None)["SECRET_KEY"]
    key_file = tmp_path / "secret_key"
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first) >= 32
    second = settings_of(tmp_path, "SECRET_KEY", VEIL_SECRET_KEY=None)["SECRET_KEY"]
    assert second == first


def test_a_given_secret_key_writes_no_key_file(tmp_path: Path) -> None:
    key = strong_key()
    assert settings_of(tmp_path, "SECRET_KEY", VEIL_SECRET_KEY=key)["SECRET_KEY"] == key
    assert not (tmp_path / "secret_key").exists()


def _deploy_check(tmp_path: Path, overrides: dict[str, str | None]) -> str:
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, capture_output=True, text=True,
                          env=_env(tmp_path, overrides), timeout=120, check=False)
    return done.stdout + done.stderr


def test_the_deploy_check_warns_of_eager_tasks_on_postgresql(tmp_path):
    found = _deploy_check(tmp_path, {"DATABASE_URL": "postgres://veil@127.0.0.1:5432/veil"})
    assert "veil.W003" in found and "REDIS_URL" in found
    # The embedded demo (SQLite, no Redis) runs eagerly on purpose: no warning.
    assert "veil.W003" not in _deploy_check(tmp_path, {})


def test_the_deploy_check_warns_of_a_pool_in_front_of_pgbouncer(tmp_path):
    behind: dict[str, str | None] = {"DATABASE_URL": "postgres://veil@127.0.0.1:6432/veil",
                                     "REDIS_URL": "redis://127.0.0.1:1/0"}
    assert "veil.W004" in _deploy_check(tmp_path, behind)
    assert "veil.W004" not in _deploy_check(tmp_path, {**behind, "VEIL_DB_POOL_SIZE": "0"})
    assert "veil.W004" not in _deploy_check(tmp_path, {**behind, "DATABASE_URL": "postgres://veil@127.0.0.1/veil"})


def test_the_deploy_check_warns_of_prepared_statements_behind_pgbouncer(tmp_path):
    behind: dict[str, str | None] = {"DATABASE_URL": "postgres://veil@127.0.0.1:6432/veil",
                                     "REDIS_URL": "redis://127.0.0.1:1/0", "VEIL_DB_POOL_SIZE": "0"}
    assert "veil.W005" in _deploy_check(tmp_path, behind)
    assert "veil.W005" not in _deploy_check(tmp_path, {**behind, "VEIL_DB_PREPARED_STATEMENTS": "0"})
    assert "veil.W005" not in _deploy_check(tmp_path, {**behind, "DATABASE_URL": "postgres://veil@127.0.0.1/veil"})
