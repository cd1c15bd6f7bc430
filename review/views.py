"""The moderator console: thin views over the claim and decision services."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_POST

from core import errors
from core.models import AuditEvent
from core.roles import Role, has_role, role_required, signed_in
from intake import selectors as item_selectors
from intake import services as item_services
from intake.models import Category, ContentItem, Decision, Motion
from review import decisions, selectors, services, viewing
from review import selectors as review_selectors
from review.models import Policy, Queue
from wellbeing import rules as wellbeing_rules
from wellbeing import selectors as wellbeing_selectors
from wellbeing.templatetags.wellbeing_tags import retry_tag

REVIEWERS = (Role.MODERATOR, Role.TEAM_LEAD)
NO_LONGER_YOURS = (gettext_lazy("That item is no longer yours: it was decided, or it went back to the queue (a break "
                                "or an ended "
                   "lease gives it back)."))

SHORTCUTS = [
    ("R", gettext_lazy("Reveal the clear image (hold, or press once)")),
    ("A", gettext_lazy("Approve")),
    ("X", gettext_lazy("Remove (needs a policy)")),
    ("E", gettext_lazy("Escalate to a lead")),
    ("O", gettext_lazy("Ask a second opinion")),
    ("S", gettext_lazy("Skip: give the item back")),
    ("G", gettext_lazy("Colour on/off while revealed")),
    ("1-9", gettext_lazy("Choose a policy")),
    ("/", gettext_lazy("Write the reason")),
    ("?", gettext_lazy("More about shortcuts")),
]


def rest_during_breaks(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Every console page is the break screen while a break runs (the server refuses reveals meanwhile too); a page
    opened from a bookmark or another tab lands there, not on a picture."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        state = wellbeing_selectors.break_state(reviewer_id=signed_in(request).pk)
        response = (redirect("wellbeing-break") if state.phase == wellbeing_rules.Phase.ON_BREAK
                    else view(request, *args, **kwargs))
        # Never kept for Back: a page from before the break is asked for again, and lands here.
        response["Cache-Control"] = "no-store"
        return response

    return wrapper


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("login")
    if has_role(request.user, *REVIEWERS):
        return redirect("console-queues")
    if has_role(request.user, Role.REQUESTER):
        return redirect("api-docs")
    return render(request, "home.html", status=200)


@role_required(*REVIEWERS)
@rest_during_breaks
def queue_list(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    return render(
        request,
        "review_queue/queues.html",
        {
            "summaries": selectors.queue_summaries(),
            "held": selectors.open_claim_for(reviewer=user),
            "is_lead": has_role(user, Role.TEAM_LEAD),
        },
    )


@require_POST
@role_required(*REVIEWERS)
def claim_next(request: HttpRequest, slug: str) -> HttpResponse:
    user = signed_in(request)
    queue = get_object_or_404(Queue, slug=slug)
    escalated = request.POST.get("escalated") == "1"
    try:
        claim = services.item_claim(reviewer=user, queue=queue, escalated=escalated)
    except errors.ReviewError as exc:
        messages.info(request, exc.detail, extra_tags=retry_tag(exc.retry_at))
        return redirect("console-queues")
    return redirect("console-item", item_id=claim.item_id)


@role_required(*REVIEWERS)
@rest_during_breaks
def item_page(request: HttpRequest, item_id: int) -> HttpResponse:
    user = signed_in(request)
    item = review_selectors.item_held_by(user=user, item_id=item_id)
    if item is None:
        messages.info(request, NO_LONGER_YOURS)
        return redirect("console-queues")
    prefs = review_selectors.viewing_preference_of(user=user)
    history = item.decisions.select_related("policy", "reviewer").all()
    return render(
        request,
        "review_queue/item.html",
        {
            "item": item,
            "queue": item.queue,
            "policies": list(item.queue.policies.all()),
            "history": history,
            "blur_level": prefs.effective_blur_level(item.category),
            "reveal_seconds": prefs.effective_reveal_seconds(item.category),
            "warn_before_reveal": prefs.warns_before_reveal(item.category),
            "grayscale_on_reveal": prefs.grayscale_on_reveal,
            "actions": Decision.Action.choices,
            "shortcuts": SHORTCUTS,
            "reveal_api": reverse("api-item-reveal", args=[item.pk]),
            "arrivals": item_selectors.cluster_arrivals(item=item),
            "moving": _moving_context(item),
        },
    )


def _moving_context(item: ContentItem) -> dict[str, object] | None:
    """What the console's moving-picture viewer needs (static/veil/motion.js), or None for a still."""

    moving = Motion.objects.filter(item=item).first()
    if moving is None:
        return None
    keyframes = [{"number": n, "seconds": k["seconds"], "clock": f"{int(k['seconds'] // 60)}:{k['seconds'] % 60:04.1f}",
                  "scene": k["scene"]} for n, k in enumerate(moving.keyframes)]
    frame_matches = list(AuditEvent.objects.filter(item=item, action=AuditEvent.Action.FRAME_MATCH)
                         .values_list("data", flat=True)[:10])
    return {"row": moving, "keyframes": keyframes, "frame_matches": frame_matches,
            "keyframe_url": reverse("media-keyframe", args=[item.pk, 0]), "clip_url": reverse("media-clip",
                                                                                              args=[item.pk])}


@require_POST
@role_required(*REVIEWERS)
def decide(request: HttpRequest, item_id: int) -> HttpResponse:
    user = signed_in(request)
    item = review_selectors.item_held_by(user=user, item_id=item_id)
    if item is None:
        return _no_longer_yours(request, str(NO_LONGER_YOURS))
    code = request.POST.get("policy", "")
    policy = Policy.objects.filter(queue_id=item.queue_id, code=code).first() if code else None
    if code and policy is None:
        messages.error(request, "Choose one of this queue's policies.")
        return redirect("console-item", item_id=item.pk)
    try:
        decision = decisions.do_decision(
            item=item,
            reviewer=user,
            action=request.POST.get("action", ""),
            policy=policy,
            reason=request.POST.get("reason", ""),
        )
    except errors.ReviewError as exc:
        if exc.code in ("lease_expired", "not_lease_holder"):
            return _no_longer_yours(request, exc.detail)
        messages.error(request, exc.detail)
        return redirect("console-item", item_id=item.pk)
    messages.success(request, _decided_words(decision))
    if request.POST.get("then") == "stop":
        return redirect("console-queues")
    try:
        claim = services.item_claim(reviewer=user, queue=item.queue)
    except errors.ReviewError as exc:
        messages.info(request, exc.detail, extra_tags=retry_tag(exc.retry_at))
        return redirect("console-queues")
    return redirect("console-item", item_id=claim.item_id)


def _decided_words(decision: Decision) -> str:
    """The confirmation after a decision: what was recorded, for which item. No count, no pace."""
    item = f"Item {decision.item_id}"
    if decision.action == Decision.Action.APPROVE:
        return gettext("Saved: %(item)s approved.") % {"item": item}
    if decision.action == Decision.Action.REMOVE:
        policy = f" under “{decision.policy.title}”" if decision.policy else ""
        return gettext("Saved: %(item)s removed%(policy)s.") % {"item": item, "policy": policy}
    if decision.action == Decision.Action.ESCALATE:
        return gettext("Saved: %(item)s went to a team lead, with your reason.") % {"item": item}
    return gettext("Saved: %(item)s went back to the queue for someone else's opinion, with your reason.") % {
        "item": item}


def _no_longer_yours(request: HttpRequest, why: str) -> HttpResponse:
    """A decision that came too late is never thrown away silently: what they wrote comes back to them (the console
    renews the lease while they are at it, so this is for a browser that slept)."""
    written = request.POST.get("reason", "").strip()
    messages.info(request, why + (f" What you wrote: “{written[:4000]}”" if written else ""))
    return redirect("console-queues")


@require_POST
@role_required(*REVIEWERS)
def release(request: HttpRequest, item_id: int) -> HttpResponse:
    user = signed_in(request)
    item = review_selectors.item_held_by(user=user, item_id=item_id)
    if item is not None:
        try:
            services.item_release(item=item, reviewer=user)
        except errors.ReviewError as exc:
            messages.error(request, exc.detail)
    return redirect("console-queues")


@require_POST
@role_required(*REVIEWERS)
def split(request: HttpRequest, item_id: int, copy_id: int) -> HttpResponse:
    """"Not the same picture": the copy leaves this item's cluster and gets its own review."""
    user = signed_in(request)
    copy = get_object_or_404(ContentItem, pk=copy_id, cluster__members=item_id)
    try:
        item_services.cluster_split(item=copy, by=user, reason=request.POST.get("reason", ""))
    except errors.ReviewError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, gettext("Item %(pk)s was separated and will be reviewed on its own.") % {
            "pk": copy.pk})
    return redirect("console-item", item_id=item_id)


@role_required(*REVIEWERS)
@rest_during_breaks
def preferences(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    prefs = review_selectors.viewing_preference_of(user=user)
    if request.method == "POST":
        try:
            viewing.viewing_preference_update(
                user=user,
                blur_level=int(request.POST.get("blur_level", prefs.blur_level)),
                reveal_seconds=int(request.POST.get("reveal_seconds", prefs.reveal_seconds)),
                grayscale_on_reveal=request.POST.get("grayscale_on_reveal") == "on",
                per_category=_per_category_from(request),
            )
        except ValueError:
            messages.error(request, "Blur and reveal length must be whole numbers.")
        except errors.ReviewError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, gettext("Saved."))
            return redirect("console-preferences")
    return render(
        request,
        "review_queue/preferences.html",
        {
            "prefs": prefs,
            "min_blur": settings.VEIL_MIN_BLUR_LEVEL,
            "max_reveal": settings.VEIL_REVEAL_SECONDS,
            "blur_range": range(settings.VEIL_MIN_BLUR_LEVEL, 7),
            "reveal_range": range(1, settings.VEIL_REVEAL_SECONDS + 1),
            "categories": [
                {"value": value, "label": label, "blur": prefs.effective_blur_level(value),
                 "seconds": prefs.effective_reveal_seconds(value), "warn": prefs.warns_before_reveal(value)}
                for value, label in Category.choices if value != Category.UNSPECIFIED
            ],
        },
    )


def _per_category_from(request: HttpRequest) -> dict[str, dict[str, object]]:
    """The per-category rows of the form: blur and reveal length ("" = as in general) and the warning."""
    found: dict[str, dict[str, object]] = {}
    for value in Category.values:
        if value == Category.UNSPECIFIED:
            continue
        row: dict[str, object] = {"warn": request.POST.get(f"cat-{value}-warn") == "on"}
        for name in ("blur_level", "reveal_seconds"):
            raw = request.POST.get(f"cat-{value}-{name}", "").strip()
            if raw:
                row[name] = int(raw)
        found[value] = row
    return found
