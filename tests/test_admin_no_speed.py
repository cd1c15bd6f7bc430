"""Issue 21, point 3: Django admin is not a back door to the per-person speed ranking the lead view refuses to show.
No changelist lists which reviewer did what to which item when; operators get `item_history` and `review_workload`
instead. These tests fail if a per-reviewer timing list comes back."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import models
from django.test import Client
from django.urls import reverse

from core.models import AuditEvent
from review import decisions, viewing
from review.services import item_claim
from tests.helpers.factories import make_item, make_queue, make_user
from wellbeing import services as wellbeing_services
from wellbeing.models import PolicyChange

pytestmark = pytest.mark.django_db

# Who-did-what-when records of reviewers' work: never in the admin.
NEVER_IN_ADMIN = ("moderation.Decision", "moderation.RevealEvent", "review_queue.Claim", "wellbeing.ExposureEntry",
                  "wellbeing.Shift", "wellbeing.Break", "moderation.ViewingPreference")
# Models in the admin that tie a person to a time, and why each is not a speed record. A new one must be added
# here with its reason, or it fails the test below.
PERSON_AND_TIME_ALLOWED = {
    "auth.User": "accounts (last login, date joined): nothing about items",
    "authtoken.TokenProxy": "API tokens of accounts",
    "moderation.AuditEvent": "reviewers' own actions are left out of its queryset (REVIEW_ACTIONS)",
    "moderation.ContentItem": "submitted_by is a requester account; the lease holder is not shown",
    "moderation.SplitPair": "who split is not shown",
    "moderation.HashList": "who imported a hash list",
    "review_queue.Queue": "its submitters are requester accounts",
    "wellbeing.PolicyChange": "organisation, queue and team changes only; personal ones are left out",
    "wellbeing.LeadAction": "a lead's own actions on a shift, which the reviewer sees too",
    "wellbeing.DataAccess": "the audit of who looked at people's data",
    "wellbeing.HealthAccessGrant": "who was given occupational-health access to a team, by whom and when (read-only)",
}


def _person_and_time(model: type[models.Model]) -> bool:
    fields = model._meta.get_fields()
    user_model = get_user_model()
    has_person = any(getattr(f, "related_model", None) is user_model and getattr(f, "concrete", False)
                     for f in fields)
    has_time = any(isinstance(f, models.DateTimeField | models.DateField) for f in fields)
    return has_person and has_time


def test_the_reviewers_work_records_are_not_in_the_admin(admin_user):
    client = Client()
    client.force_login(admin_user)
    registered = {model._meta.label for model in admin.site._registry}
    for label in NEVER_IN_ADMIN:
        assert label not in registered, f"{label} is back in Django admin"
        app, model = label.lower().split(".")
        assert client.get(f"/admin/{app}/{model}/").status_code == 404


def test_no_admin_ties_a_person_to_a_time_without_a_reason():
    found = {model._meta.label for model in admin.site._registry if _person_and_time(model)}
    unexplained = found - set(PERSON_AND_TIME_ALLOWED)
    assert not unexplained, f"admin lists people with timestamps: {unexplained}; see intake/admin.py"


@pytest.fixture
def worked(admin_user):
    """A reviewer with a distinctive name claims, reveals, escalates and decides; an admin is signed in."""
    reviewer = make_user("quinn-reviewer", "moderator")
    queue = make_queue(slug="reported")
    for seed in range(2):
        make_item(queue, seed=seed)
    claim = item_claim(reviewer=reviewer, queue=queue)
    viewing.reveal_start(item=claim.item, reviewer=reviewer)
    decisions.do_decision(item=claim.item, reviewer=reviewer, action="remove",
                                  policy=queue.policies.first(), reason="graphic and unasked for")
    second = item_claim(reviewer=reviewer, queue=queue)
    decisions.do_decision(item=second.item, reviewer=reviewer, action="escalate", policy=None,
                                  reason="not sure")
    viewing.viewing_preference_update(user=reviewer, blur_level=4, reveal_seconds=5, grayscale_on_reveal=True)
    wellbeing_services.personal_policy_update(user=reviewer, values={"exposure_cap_units": 60},
                                              opted_out_categories=[])
    client = Client()
    client.force_login(admin_user)
    return reviewer, claim.item, client


def test_no_admin_page_names_the_reviewer_beside_their_work(worked):
    reviewer, item, client = worked
    pages = []
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label
        if label in ("auth.User", "authtoken.TokenProxy", "auth.Group"):
            continue  # account pages: the name is the point there, and nothing about items is
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        changelist = client.get(reverse(f"{name}_changelist"))
        assert changelist.status_code == 200, label
        pages.append((label, changelist.content.decode()))
        for obj in model_admin.get_queryset(changelist.wsgi_request)[:20]:
            change = client.get(reverse(f"{name}_change", args=[obj.pk]))
            pages.append((f"{label} #{obj.pk}", change.content.decode()))
    for where, html in pages:
        # Account pickers (a queue's submitters, a team's members) list every account: not their work.
        html = re.sub(r"<select[^>]*>.*?</select>", "", html, flags=re.DOTALL)
        assert "quinn-reviewer" not in html, f"the reviewer is named on {where}"
    # Nor do filters or a hand-made URL bring the reviewer's actions back.
    decided = AuditEvent.objects.get(action="decided", item=item)
    for url in ("/admin/moderation/auditevent/?action__exact=decided",
                f"/admin/moderation/auditevent/?actor__id__exact={reviewer.pk}",
                f"/admin/moderation/auditevent/{decided.pk}/change/"):
        response = client.get(url, follow=True)
        assert "quinn-reviewer" not in response.content.decode() and "graphic and unasked" not in str(
            response.content), url
    assert PolicyChange.objects.filter(layer="personal", subject=reviewer).exists()  # recorded, just not shown


def test_item_history_tells_an_items_story_without_naming_reviewers(worked):
    reviewer, item, _client = worked
    out = StringIO()
    call_command("item_history", str(item.pk), stdout=out)
    text = out.getvalue()
    assert f"Item {item.pk}" in text and "remove, policy violence (in review, final): graphic and unasked for" in text
    assert "Item ingested" in text and "clear image revealed: 1" in text and "item claimed: 1" in text
    assert "quinn-reviewer" not in text and not re.search(rf"\b{reviewer.pk}\b(?! ·)", text.split("\n", 1)[1])
    with pytest.raises(CommandError, match="no item"):
        call_command("item_history", "999999", stdout=StringIO())
    with pytest.raises(CommandError, match="not an item id"):
        call_command("item_history", "abc", stdout=StringIO())


def test_review_workload_counts_per_queue_and_day_never_per_person(worked):
    _reviewer, _item, _client = worked
    out = StringIO()
    call_command("review_workload", "--days", "2", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "queue\tday\tarrived\tdecided\tcarried_over\tescalated\tsecond_opinion\tlease_expired"
    today = [line for line in lines if line.startswith("reported\t")][-1].split("\t")
    assert today[2:] == ["2", "1", "0", "1", "0", "0"]
    assert "reported: 0 waiting, 1 escalated, now" in lines
    assert "quinn" not in out.getvalue()
    with pytest.raises(CommandError):
        call_command("review_workload", "--days", "0", stdout=StringIO())
