"""Shared fixtures. Tests needing PostgreSQL, Redis or Chromium skip with a reason when those are absent, except
under VEIL_REQUIRE_SERVICES=1 (set by .ci/run), where an absent service is a failure."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.helpers.factories import make_user
from tests.helpers.services import CHROMIUM, REQUIRE_SERVICES, TEST_REDIS_URL

# Fixtures shared by several test modules, defined beside the helpers they use: live_daphne and live_daphne_process
# (livesrv), peer (httppeer), fast_passwords (lead; a module opts in with pytest.mark.usefixtures), data_dir and
# few_items (demo).
pytest_plugins = ["tests.helpers.livesrv", "tests.helpers.httppeer", "tests.helpers.lead", "tests.helpers.demo"]


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def _missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"VEIL_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and settings.DATABASES["default"]["ENGINE"] != (
        "django.db.backends.postgresql"
    ):
        # Not a missing service: this pass runs on SQLite by design; make test runs a PostgreSQL pass too.
        pytest.skip("needs PostgreSQL: runs in the PostgreSQL pass (DATABASE_URL=postgres://...)")
    if item.get_closest_marker("redis") and not _reachable(TEST_REDIS_URL):
        _missing(f"Redis is not reachable at {TEST_REDIS_URL}")
    if item.get_closest_marker("browser"):
        if not Path(CHROMIUM).exists():
            _missing(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
        try:
            import playwright  # noqa: F401
        except ImportError:
            _missing("playwright is not installed (pip install playwright)")


@pytest.fixture(autouse=True)
def _private_media(tmp_path_factory: pytest.TempPathFactory, settings: SettingsWrapper) -> Iterator[Path]:
    """Every test writes media into its own temporary folder, never into var/."""
    root = tmp_path_factory.mktemp("media")
    settings.MEDIA_ROOT = root
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(root)}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fresh_rate_limits() -> Iterator[None]:
    """Throttle counters live in the cache: the test starts and ends with none (pytest.mark.usefixtures)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def moderator(db: None):
    return make_user("mo", "moderator")


@pytest.fixture
def moderator2(db: None):
    return make_user("mia", "moderator")


@pytest.fixture
def lead(db: None):
    return make_user("lee", "team_lead")


@pytest.fixture
def health(db: None):
    return make_user("hana", "occupational_health")


@pytest.fixture
def requester(db: None):
    return make_user("req", "requester")


@pytest.fixture
def admin_user(db: None):
    return make_user("root", None, superuser=True)


@pytest.fixture
def stranger(db: None):
    return make_user("charlie", None)


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True, scope="session")
def _eager_celery() -> Iterator[None]:
    """Tasks run in-process in tests, even in the Redis pass; the real-worker tests switch this off themselves."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _fresh_matching_caches() -> Iterator[None]:
    """Each test starts with an empty matching index: rolled-back rows must not linger in process memory."""
    from intake import matching

    matching.reset_caches()
    yield
    matching.reset_caches()
