"""The services the tests reach, as the environment names them (read by tests/conftest.py and the tests that talk to
Redis themselves)."""

from __future__ import annotations

import os

REQUIRE_SERVICES = os.environ.get("VEIL_REQUIRE_SERVICES") == "1"
TEST_REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
CHROMIUM = os.environ.get("VEIL_CHROMIUM", "/usr/bin/chromium")
