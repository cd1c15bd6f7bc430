"""Issue 22, point 5: sign-in throttling (django-axes) by account and by address, with a clear page and an audited
lockout. Real sign-ins through the login form and the admin's, against the real database."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from core.models import AuditEvent
from tests.helpers.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def attempt(username: str, password: str, *, address: str = "203.0.113.7", client: Client | None = None,
            path: str = "/login/", **meta: Any):
    return (client or Client()).post(path, {"username": username, "password": password}, REMOTE_ADDR=address, **meta)


def test_an_account_is_locked_after_the_limit_from_any_address(moderator, settings) -> None:
    settings.AXES_FAILURE_LIMIT = 5
    for n in range(4):
        answer = attempt(moderator.username, "wrong", address=f"198.51.100.{n + 1}")
        assert answer.status_code == 200 and b"did not match" in answer.content
    locked = attempt(moderator.username, "wrong", address="198.51.100.9")
    assert locked.status_code == 429
    assert b"Signing in is paused" in locked.content and b"15 minutes" in locked.content
    assert locked["Retry-After"] == "900"
    # Even the right password, from a new address, waits out the pause: the account is what is protected.
    assert attempt(moderator.username, PASSWORD, address="198.51.100.10").status_code == 429
    # Another account is not affected.
    other = make_user("olga", "moderator")
    assert attempt(other.username, PASSWORD, address="198.51.100.11").status_code == 302

    # Audited: the lockout, and each attempt refused while it lasts.
    events = list(AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_LOCKED_OUT).order_by("id"))
    assert [e.data["address"] for e in events] == ["198.51.100.9", "198.51.100.10"]
    event = events[0]
    assert event.actor == moderator and event.data["username"] == moderator.username
    assert event.data["address"] == "198.51.100.9" and event.data["cooloff_minutes"] == 15


def test_an_address_is_locked_after_the_limit_across_accounts(moderator, settings) -> None:
    settings.AXES_FAILURE_LIMIT = 5
    for n in range(5):
        attempt(f"guess-{n}", "wrong", address="192.0.2.50")
    # The next try from that address is refused whoever it names, even with a right password...
    assert attempt(moderator.username, PASSWORD, address="192.0.2.50").status_code == 429
    # ...while the account itself signs in from elsewhere.
    assert attempt(moderator.username, PASSWORD, address="192.0.2.51").status_code == 302
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_LOCKED_OUT, data__address="192.0.2.50").exists()


def test_the_admin_login_is_throttled_too(admin_user, settings) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        assert attempt(admin_user.username, "wrong", path="/admin/login/").status_code == 200
    assert attempt(admin_user.username, "wrong", path="/admin/login/").status_code == 429
    assert attempt(admin_user.username, PASSWORD, path="/admin/login/").status_code == 429


def test_signing_in_to_ones_own_account_between_guesses_does_not_reset_the_count(moderator, settings) -> None:
    """axes' reset-on-success would delete every failure from the address, the guesses at another account too."""
    settings.AXES_FAILURE_LIMIT = 3
    attacker = make_user("mallory", "moderator")
    for _ in range(2):
        attempt(moderator.username, "wrong", address="192.0.2.70")
        assert attempt(attacker.username, PASSWORD, address="192.0.2.70").status_code == 302
    assert attempt(moderator.username, "wrong", address="192.0.2.72").status_code == 429
    assert attempt(moderator.username, PASSWORD, address="192.0.2.73").status_code == 429


def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw(moderator, settings) -> None:
    """Every request comes from the proxy: counting by its address would lock everyone out at once."""
    settings.AXES_FAILURE_LIMIT = 3
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    for n in range(3):
        # A client may put anything first in X-Forwarded-For; the proxy appends the real address last.
        attempt(f"guess-{n}", "wrong", address="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 192.0.2.60",
                HTTP_X_FORWARDED_PROTO="https", secure=True)
    assert attempt(moderator.username, PASSWORD, address="10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.61",
                   HTTP_X_FORWARDED_PROTO="https", secure=True).status_code == 302
    assert attempt(moderator.username, PASSWORD, address="10.0.0.2", HTTP_X_FORWARDED_FOR="9.9.9.9, 192.0.2.60",
                   HTTP_X_FORWARDED_PROTO="https", secure=True).status_code == 429
