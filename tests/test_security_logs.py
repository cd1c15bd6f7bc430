"""Issue 22, point 7: the reveal token is a secret, so it never travels in a URL (URLs are written to daphne's access
log, and to any proxy's). It travels in a short, HttpOnly cookie scoped to the item's clear URL."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
import requests
from django.test import Client

from review import viewing
from review.services import item_claim
from tests.helpers.factories import PASSWORD, make_item, make_queue, make_user


def _reveal(client: Client, item_id: int) -> tuple[dict[str, object], SimpleCookie]:
    response = client.post(f"/api/v1/items/{item_id}/reveal/")
    assert response.status_code == 201, response.content
    return response.json(), response.cookies


@pytest.mark.django_db
def test_the_reveal_reply_names_no_token_and_sets_a_scoped_cookie(moderator, moderator2) -> None:
    queue = make_queue()
    item = make_item(queue, seed=1)
    item_claim(reviewer=moderator, queue=queue)
    client = Client()
    client.force_login(moderator)
    grant, cookies = _reveal(client, item.pk)
    assert grant["url"] == f"/media/items/{item.pk}/clear?r={grant['reveal']}"
    cookie = cookies["veil_reveal"]
    assert cookie["path"] == f"/media/items/{item.pk}/clear" and cookie["httponly"] and cookie["samesite"] == "Strict"
    assert 0 < int(cookie["max-age"]) <= 35
    token = cookie.value
    assert token not in str(grant)
    assert client.get(str(grant["url"])).status_code == 200

    # The old way, a token in the query string, no longer opens anything: nobody has a reason to put it in a URL.
    bare = Client()
    bare.force_login(moderator)
    assert bare.get(f"/media/items/{item.pk}/clear?t={token}").status_code == 403
    # And a token that leaked anyway is useless to anyone but the lease holder.
    thief = Client()
    thief.force_login(moderator2)
    thief.cookies["veil_reveal"] = token
    assert thief.get(str(grant["url"])).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_daphnes_access_log_never_holds_the_reveal_token(live_daphne: str) -> None:
    moderator = make_user("mara", "moderator")
    queue = make_queue(slug="logs")
    item = make_item(queue, seed=3)
    session = requests.Session()
    login_page = session.get(f"{live_daphne}/login/", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text)
    assert csrf is not None
    signed_in = session.post(f"{live_daphne}/login/", data={"username": "mara", "password": PASSWORD,
                                                           "csrfmiddlewaretoken": csrf.group(1)}, timeout=10)
    assert signed_in.ok and "sessionid" in session.cookies
    headers = {"X-CSRFToken": str(session.cookies["csrftoken"])}
    assert session.post(f"{live_daphne}/api/v1/queues/logs/claim/", headers=headers, timeout=10).status_code == 200
    grant = session.post(f"{live_daphne}/api/v1/items/{item.pk}/reveal/", headers=headers, timeout=10)
    assert grant.status_code == 201, grant.text
    token = str(session.cookies["veil_reveal"])
    clear = session.get(live_daphne + grant.json()["url"], timeout=10)
    assert clear.status_code == 200 and clear.content[:3] == b"\xff\xd8\xff"
    assert viewing.reveal_check(item=item, reviewer=moderator, token=token)  # it is the real, working token

    # Not type-checked below: the live_daphne fixture is a str (its URL) carrying its log path
    log = Path(live_daphne.log_path).read_text()  # type: ignore[attr-defined]
    assert f"GET /media/items/{item.pk}/clear?r=" in log  # the access log is on, and has the request
    assert token not in log
    assert token.split(":")[0] not in log  # not even the signed payload's first part


@pytest.mark.django_db(transaction=True)
def test_query_string_values_never_reach_the_access_log(live_daphne: str) -> None:
    """A fetch URL may be a signed link: its signature must not end up in daphne's log."""
    from tests.helpers.hma import token_of

    requester = make_user("req", "requester")
    secret = "Sig-5f1d0c9e3b7a4e21"
    signed = f"https://images.example.org/a.jpg?X-Amz-Signature={secret}&X-Amz-Expires=60"
    answer = requests.get(f"{live_daphne}/h/hash", params={"url": signed}, timeout=10,
                          headers={"Authorization": f"Token {token_of(requester)}"})
    assert answer.status_code == 403  # fetching is off here; the request was still made and logged
    # Not type-checked below: the live_daphne fixture is a str (its URL) carrying its log path
    log = Path(live_daphne.log_path).read_text()  # type: ignore[attr-defined]
    assert "GET /h/hash?url=-" in log
    assert secret not in log and "images.example.org" not in log


def test_redacted_keeps_names_and_drops_values() -> None:
    from config.daphne_access_log import redacted

    assert redacted("/h/hash?url=https%3A%2F%2Fx%2Fa.jpg%3Fsig%3D1&banks=A") == "/h/hash?url=-&banks=-"
    assert redacted("/media/items/1/clear") == "/media/items/1/clear"
    assert redacted("/x?") == "/x?-"
