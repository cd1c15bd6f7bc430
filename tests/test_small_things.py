"""Issue 21, point 9: a confirmation after each decision, and a My limits form that keeps what was typed, says what
is wrong next to the field, and asks in the browser for exactly what the server accepts. The queue list's keyboard
shortcut is driven in a real browser in test_small_things_browser.py."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from review.services import item_claim
from tests.helpers.factories import make_queue
from tests.helpers.wellbeing import ready_item
from wellbeing.models import PersonalPolicy, PolicyChange

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(("action", "policy", "says"), [
    ("approve", "", "Saved: Item {item} approved."),
    ("remove", "violence", "Saved: Item {item} removed under “Graphic violence”."),
    ("escalate", "", "Saved: Item {item} went to a team lead, with your reason."),
])
def test_a_decision_is_confirmed_on_the_next_page(moderator, action, policy, says):
    queue = make_queue(slug="work")
    for _ in range(2):
        ready_item(queue)
    claim = item_claim(reviewer=moderator, queue=queue)
    page = logged_in(moderator).post(f"/console/items/{claim.item_id}/decide/",
                                     {"action": action, "policy": policy, "reason": "as the rules say"}, follow=True)
    assert page.redirect_chain[-1][0].startswith("/console/items/")  # the next item
    assert says.format(item=claim.item_id) in page.content.decode()
    assert not re.search(r"\d+ (items|decisions) (today|this)", page.content.decode())  # never a count


def field(html: str, name: str) -> str:
    found = re.search(rf'<div class="field[^"]*">\s*<label for="{name}">.*?</div>', html, re.DOTALL)
    assert found, name
    return found.group(0)


def test_my_limits_asks_for_what_the_server_accepts(moderator):
    html = logged_in(moderator).get("/wellbeing/limits/").content.decode()
    # Organisation defaults: cap 240 (at least 10), breaks every 50 min (at least 10), 10 min long (at most 60),
    # a 60 s pause after a severe item (at most 900), 12 severe an hour (at least 1), 8 h shifts (at least 1).
    for name, low, high in (("exposure_cap_units", 10, 240), ("break_every", 10, 50), ("break_length", 10, 60),
                            ("cooldown", 60, 900), ("severe_per_hour", 1, 12), ("shift_length", 1, 8)):
        block = field(html, name)
        assert f'min="{low}"' in block and f'max="{high}"' in block, (name, block)
        assert f"Yours can be from {low} to {high}." in block


def test_my_limits_keeps_what_was_typed_and_says_what_is_wrong_next_to_it(moderator):
    client = logged_in(moderator)
    response = client.post("/wellbeing/limits/", {"exposure_cap_units": "0", "break_every": "40",
                                                  "cooldown": "30", "severe_per_hour": "many",
                                                  "opt_out": ["self_harm"]})
    assert response.status_code == 400
    html = response.content.decode()
    cap, every, pause, severe = (field(html, n) for n in ("exposure_cap_units", "break_every", "cooldown",
                                                           "severe_per_hour"))
    assert 'value="0"' in cap and 'aria-invalid="true"' in cap and "greater than or equal to 10" in cap
    assert 'value="40"' in every and "field__error" not in every  # fine as typed, and kept
    assert 'value="30"' in pause and "the organisation&#x27;s is 1 min" in pause  # looser than the organisation's
    assert 'value="many"' in severe and "whole number" in severe
    assert re.search(r'id="opt-self_harm" name="opt_out" value="self_harm" checked', html)
    assert "Nothing was saved yet" in html
    assert not PersonalPolicy.objects.exists() and not PolicyChange.objects.exists()
    # Put right, it saves.
    fixed = client.post("/wellbeing/limits/", {"exposure_cap_units": "120", "break_every": "40", "cooldown": "90"})
    assert fixed.status_code == 302
    assert PersonalPolicy.objects.get(user=moderator).exposure_cap_units == 120
