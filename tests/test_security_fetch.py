"""Issue 22, points 3 and 4: allow-listed fetches. A non-ASCII URL is fetched (or refused) with a clear answer, never a
500, on /h/hash, /m/lookup and Coop batches; encoded dot segments cannot climb out of a prefix; and the private-address
guard sees the IPv4 address inside IPv4-mapped and IPv4-embedding IPv6 addresses. Against a real HTTP peer."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from intake.models import ContentItem
from integrations import outbound
from tests.helpers.coop import by_id, coop_item, data_url, submit
from tests.helpers.factories import image_bytes, make_queue
from tests.helpers.hma import client_for, picture
from tests.helpers.matching import jpeg

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_rate_limits")]



@pytest.fixture
def allowed(peer, settings):
    settings.VEIL_FETCH_URL_PREFIXES = [f"{peer.url}/media/"]
    settings.VEIL_OUTBOUND_ALLOW_PRIVATE = True  # the peer is on loopback
    data = jpeg(picture(8))
    peer.files["/media/%C3%A9.jpg"] = (data, "image/jpeg")  # what a server holds for /media/é.jpg
    peer.files["/media/a.jpg"] = (data, "image/jpeg")
    peer.files["/secret.jpg"] = (data, "image/jpeg")
    return peer


def test_a_non_ascii_url_is_fetched_on_h_hash_and_m_lookup(requester, allowed):
    client = client_for(requester)
    url = quote(f"{allowed.url}/media/é.jpg", safe=":/")  # as a client sends it in a query string
    hashed = client.get(f"/h/hash?url={url}")
    assert hashed.status_code == 200, hashed.content
    assert hashed.json() == client.get(f"/h/hash?url={allowed.url}/media/a.jpg").json()
    assert client.get(f"/m/lookup?url={url}").status_code == 200
    assert {r.path for r in allowed.received} == {"/media/%C3%A9.jpg", "/media/a.jpg"}
    # A host name that cannot be a host name is a 400 with a sentence, not a 500.
    bad = client.get(f"/h/hash?url={quote('http://exa mple.é/media/a.jpg', safe=':/')}")
    assert bad.status_code in (400, 403) and bad.json()["error"] in ("bad_url", "url_not_allowed")


def test_a_coop_batch_says_per_item_what_happened_with_a_non_ascii_url(requester, allowed):
    queue = make_queue(slug="reported-posts", coop_type_id="post-type-1")
    queue.submitters.add(requester)
    client = client_for(requester, header="x-api-key")
    response = submit(client, [
        coop_item("before", image=[data_url(image_bytes(41))]),
        coop_item("accented", image=[f"{allowed.url}/media/é.jpg"]),
        coop_item("escaping", image=[f"{allowed.url}/media/%2e%2e/secret.jpg"]),
        coop_item("after", image=[data_url(image_bytes(42))]),
    ])
    assert response.status_code == 202, response.content
    results = by_id(response)
    assert [results[k]["status"] for k in ("before", "accented", "escaping", "after")] == [
        "accepted", "accepted", "refused", "accepted"]
    assert results["escaping"]["error"] == "url_not_allowed"
    assert set(ContentItem.objects.values_list("external_id", flat=True)) == {"before", "accented", "after"}


@pytest.mark.parametrize("escape", ["%2e%2e", "%2E%2E", ".%2e", "%2e.", "sub/%2e%2e/%2e%2e"])
def test_encoded_dot_segments_do_not_escape_the_prefix(requester, allowed, escape):
    client = client_for(requester)
    url = f"{allowed.url}/media/{escape}/secret.jpg"
    refused = client.get("/h/hash", {"url": url})
    assert refused.status_code == 403, refused.content
    assert refused.json()["error"] == "url_not_allowed"
    assert allowed.received == []  # nothing was asked of the server


def test_dot_segments_that_stay_inside_are_resolved_before_fetching(requester, allowed):
    client = client_for(requester)
    assert client.get("/h/hash", {"url": f"{allowed.url}/media/sub/%2e%2e/a.jpg"}).status_code == 200
    assert [r.path for r in allowed.received] == ["/media/a.jpg"]  # what was checked is what was fetched


def test_canonical_url() -> None:
    c = outbound.canonical_url
    assert c("HTTPS://Example.ORG:443/a/./b/../%7Ec/é.jpg?q=é#frag") == "https://example.org/a/~c/%C3%A9.jpg?q=%C3%A9"
    assert c("http://bücher.example:8080/x") == "http://xn--bcher-kva.example:8080/x"
    assert c("https://example.org/media/%2e%2e/secret.jpg") == "https://example.org/secret.jpg"
    for bad in ("https://example.org/a%2fb", "https://example.org/a%5cb", "https://example.org/..",
                "https://example.org/%ff", "https://example.org/a\\b", "ftp://example.org/", "https://u:p@ex.org/"):
        with pytest.raises(outbound.OutboundRefused):
            c(bad)


@pytest.mark.parametrize("address", [
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::127.0.0.1", "::10.1.2.3", "64:ff9b::7f00:1", "64:ff9b::a00:1",
    "64:ff9b:1::a9fe:a9fe", "2002:7f00:1::1", "2002:a9fe:a9fe::", "2002:c0a8:101::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo: refused whatever it carries
])
def test_ipv6_carrying_a_private_ipv4_is_refused(address, settings) -> None:
    settings.VEIL_OUTBOUND_ALLOW_PRIVATE = False
    with pytest.raises(outbound.OutboundRefused) as refused:
        outbound.destination_check(f"http://[{address}]/x.jpg")
    assert refused.value.code == "private_address"


@pytest.mark.parametrize("address", ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2606:4700::1111"])
def test_ipv6_carrying_a_public_ipv4_is_judged_by_it(address, settings) -> None:
    settings.VEIL_OUTBOUND_ALLOW_PRIVATE = False
    assert outbound.destination_check(f"http://[{address}]/x.jpg").address == address
