"""Looking at an item: the reviewer's live lease on it, deliberate reveals (pictures, keyframes, playback) and the
viewing preferences that make them stricter. Breaks stop all viewing (wellbeing's rule, asked through
wellbeing.services.check_viewing_allowed)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from core import compiled
from core.audit import audit_record
from core.errors import ReviewError
from core.models import AuditEvent
from intake.models import Category, ContentItem, Motion
from review.models import Claim, RevealEvent, ViewingPreference
from wellbeing.services import check_playback_allowed, check_viewing_allowed

_REVEAL_SALT = "veil.reveal"



def _open_claim(*, item: ContentItem, reviewer: User) -> Claim:
    """The reviewer's live lease on the item, or a ReviewError saying why there is none."""
    # Read on every decision, reveal and renewal: compiled once per process (core.compiled).
    claim = compiled.first("review_queue.open_claim", Claim, lambda *, item_id, reviewer_id: Claim.objects.filter(
        item_id=item_id, reviewer_id=reviewer_id, ended_at__isnull=True), item_id=item.pk, reviewer_id=reviewer.pk)
    if claim is None:
        raise ReviewError("not_lease_holder", gettext("You do not hold this item. Claim the next item from its queue."),
                          status=409)
    if claim.expires_at <= timezone.now():
        raise ReviewError("lease_expired", gettext("Your lease on this item has expired; it went back to the queue."),
                          status=409)
    return claim



@dataclass(frozen=True)
class RevealGrant:
    reveal: RevealEvent
    token: str
    seconds: int



def _reviewing_claim(*, item: ContentItem, reviewer: User) -> Claim:
    """The reviewer's live lease on this item, or on the copy of the same picture they are reviewing."""
    held = item
    if item.cluster_id is not None and not Claim.objects.filter(item=item, reviewer=reviewer,
                                                                ended_at__isnull=True).exists():
        held = ContentItem.objects.filter(cluster_id=item.cluster_id, claims__reviewer=reviewer,
                                          claims__ended_at__isnull=True).first() or item
    return _open_claim(item=held, reviewer=reviewer)



def viewing_check(*, reviewer: User) -> None:
    """Raise ReviewError while the reviewer may not look at anything clear: during a break (409 `on_break`). The
    rule is wellbeing's, where the break schedule lives."""
    check_viewing_allowed(reviewer_id=reviewer.pk, now=timezone.now())



def reveal_start(*, item: ContentItem, reviewer: User, warned: bool = False, keyframe: int | None = None,
                 playback: bool = False) -> RevealGrant:
    """Log a deliberate reveal and grant a short-lived token for the clear rendition (lease holder only, for the
    item or a copy of the same picture in its cluster; never during a break). Someone who asked to be warned about
    the item's category gets 409 `warning_first` (naming it) until the reveal says the warning was shown.

    A moving item is revealed one keyframe at a time (`keyframe`: its number on the contact sheet) or played
    (`playback`): the playback window is long enough for the whole item at the slowest speed, and what counts as
    exposure is the seconds actually played, reported by the console (playback_progress)."""
    viewing_check(reviewer=reviewer)
    with transaction.atomic():
        item = ContentItem.objects.select_for_update().get(pk=item.pk)
        claim = _reviewing_claim(item=item, reviewer=reviewer)
        prefs = viewing_preference_for(user=reviewer)
        if prefs.warns_before_reveal(item.category) and not warned:
            raise ReviewError("warning_first", gettext(
                "This item was reported as %(category)s. You asked to be told before revealing such items: reveal it "
                "only if you choose to.") % {"category": item.get_category_display()}, status=409)
        seconds = prefs.effective_reveal_seconds(item.category)
        moving = Motion.objects.filter(item=item).first()
        if (keyframe is not None or playback) and moving is None:
            raise ReviewError("not_moving", _("This item is a still picture: reveal it as a whole."), status=400)
        if keyframe is not None and moving is not None and not 0 <= keyframe < len(moving.keyframes):
            raise ReviewError("no_such_keyframe", _("This item has no such keyframe."), status=400)
        if playback and moving is not None:
            seconds = playback_window(moving.duration)
        reveal = RevealEvent.objects.create(
            item=item, claim=claim, reviewer=reviewer, started_at=timezone.now(), allowed_seconds=seconds,
            keyframe=keyframe, is_playback=playback,
        )
        audit_record(action=AuditEvent.Action.REVEALED, actor=reviewer, item=item, reveal=reveal.pk, seconds=seconds,
                     warned=warned, keyframe=keyframe, playback=playback)
    token = signing.dumps({"r": reveal.pk, "i": item.pk, "u": reviewer.pk, "c": claim.pk, "k": keyframe,
                           "p": playback}, salt=_REVEAL_SALT)
    return RevealGrant(reveal=reveal, token=token, seconds=seconds)



# Playback may run at a quarter of normal speed; the window also leaves half a minute for pauses and seeking.
SLOWEST_PLAYBACK = 0.25



_PLAYBACK_SLACK_SECONDS = 30



def playback_window(duration: float) -> int:
    return min(32767, math.ceil(duration / SLOWEST_PLAYBACK) + _PLAYBACK_SLACK_SECONDS)



def reveal_check(*, item: ContentItem, reviewer: User, token: str, keyframe: int | None = None,
                 playback: bool = False) -> RevealEvent:
    """The clear rendition is served only inside a logged reveal's window, to the holder of the live lease, and
    never during a break (even for a reveal granted just before it began). A keyframe's reveal shows that keyframe
    only; the stream needs a playback reveal."""
    longest = playback_window(float(settings.VEIL_MAX_MEDIA_SECONDS)) if playback else int(settings.VEIL_REVEAL_SECONDS)
    try:
        payload = signing.loads(token, salt=_REVEAL_SALT, max_age=longest + 5)
    except signing.BadSignature:
        raise ReviewError("reveal_expired", gettext("This reveal has expired. Reveal the image again."),
                          status=403) from None
    if payload.get("i") != item.pk or payload.get("u") != reviewer.pk:
        raise ReviewError("forbidden", gettext("This reveal belongs to someone else."), status=403)
    if payload.get("k") != keyframe or bool(payload.get("p")) != playback:
        raise ReviewError("reveal_expired", _("This reveal was for another part of the item. Reveal it again."),
                          status=403)
    viewing_check(reviewer=reviewer)
    claim = _reviewing_claim(item=item, reviewer=reviewer)
    if payload.get("c") != claim.pk:
        raise ReviewError("reveal_expired", gettext("This reveal belongs to an earlier lease."), status=403)
    reveal = RevealEvent.objects.get(pk=payload["r"])
    if reveal.ended_at is not None or timezone.now() > reveal.started_at + timedelta(seconds=reveal.allowed_seconds):
        raise ReviewError("reveal_expired", gettext("This reveal has ended. Reveal the image again."), status=403)
    return reveal



def playback_progress(*, reveal_id: int, reviewer: User, played_seconds: float) -> RevealEvent:
    """The console reports, every few seconds while clear video plays, how many seconds it has played in this
    reveal. They count as revealed seconds (at the item's severity) when the item's exposure is settled. Playback
    must stop when this refuses: during a break (409 on_break), once the item has used all the exposure one item
    may count or the shift's cap would be passed (409 cap_reached), or when the reveal is over."""
    reveal = RevealEvent.objects.filter(pk=reveal_id, reviewer=reviewer, is_playback=True).select_related(
        "claim", "item").first()
    if reveal is None:
        raise ReviewError("no_such_reveal", _("There is no such playback."), status=404)
    now = timezone.now()
    # Never more than the wall clock allows since the reveal began (the console cannot invent seconds), never less
    # than already recorded (a late, smaller report does not erase what was played).
    elapsed = max(0.0, (min(now, reveal.ended_at or now) - reveal.started_at).total_seconds())
    played = max(reveal.played_seconds, min(max(0.0, float(played_seconds)), elapsed, float(reveal.allowed_seconds)))
    if played != reveal.played_seconds:
        RevealEvent.objects.filter(pk=reveal.pk, played_seconds__lt=played).update(played_seconds=played)
        reveal.played_seconds = played
    if reveal.ended_at is not None:
        raise ReviewError("reveal_expired", _("This playback has ended. Reveal the item again to play it."),
                          status=409)
    try:
        viewing_check(reviewer=reviewer)
        check_playback_allowed(reveal=reveal, now=now)
    except ReviewError:
        reveal_end(reveal_id=reveal.pk, reviewer=reviewer)
        raise
    return reveal



def reveal_end(*, reveal_id: int, reviewer: User) -> RevealEvent | None:
    reveal = RevealEvent.objects.filter(pk=reveal_id, reviewer=reviewer, ended_at__isnull=True).first()
    if reveal is None:
        return None
    limit = reveal.started_at + timedelta(seconds=reveal.allowed_seconds)
    reveal.ended_at = min(timezone.now(), limit)
    reveal.save(update_fields=["ended_at"])
    return reveal



def viewing_preference_for(*, user: User) -> ViewingPreference:
    prefs, _ = ViewingPreference.objects.get_or_create(
        user=user,
        defaults={"blur_level": settings.VEIL_MIN_BLUR_LEVEL, "reveal_seconds": settings.VEIL_REVEAL_SECONDS},
    )
    return prefs



CATEGORY_SETTINGS = ("blur_level", "reveal_seconds", "warn")



def check_per_category(*, per_category: Any, blur_level: int, reveal_seconds: int) -> dict[str, dict[str, Any]]:
    """Validate viewing settings per harm category: each only stricter than the general ones being saved (a
    stronger blur, a shorter reveal, a warning). Returns them cleaned (settings equal to the general ones dropped);
    raises ReviewError (400) naming the category otherwise."""
    if not isinstance(per_category, dict):
        raise ReviewError("invalid_categories", gettext("Viewing settings per category must be an object."), status=400)
    cleaned: dict[str, dict[str, Any]] = {}
    for category, values in per_category.items():
        if category not in Category.values or category == Category.UNSPECIFIED or not isinstance(values, dict):
            raise ReviewError("invalid_categories", gettext("%(category)s is not a category you can set.") % {
                "category": repr(category)}, status=400)
        label = Category(category).label
        unknown = set(values) - set(CATEGORY_SETTINGS)
        if unknown:
            raise ReviewError("invalid_categories", gettext("Unknown setting for %(label)s: %(unknown)s.") % {
                "label": label, "unknown": ', '.join(sorted(unknown))},
                              status=400)
        kept: dict[str, Any] = {}
        blur = values.get("blur_level")
        if blur is not None:
            if not isinstance(blur, int) or isinstance(blur, bool) or not blur_level <= blur <= 6:
                raise ReviewError("not_stricter", gettext("For %(label)s the blur can be from %(blur_level)s (your "
                                                          "general setting) to 6: only ever stronger.") % {
                                                              "label": label, "blur_level": blur_level}, status=400)
            if blur > blur_level:
                kept["blur_level"] = blur
        seconds = values.get("reveal_seconds")
        if seconds is not None:
            if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= reveal_seconds:
                raise ReviewError("not_stricter", gettext("For %(label)s a reveal can last from 1 to "
                                                          "%(reveal_seconds)s seconds (your general setting): only "
                                                          "ever shorter.") % {
                                                              "label": label,
                                                              "reveal_seconds": reveal_seconds}, status=400)
            if seconds < reveal_seconds:
                kept["reveal_seconds"] = seconds
        if values.get("warn") is True:
            kept["warn"] = True
        elif values.get("warn") not in (None, False):
            raise ReviewError("invalid_categories", gettext("The warning for %(label)s is on or off.") % {
                "label": label}, status=400)
        if kept:
            cleaned[category] = kept
    return cleaned



def viewing_preference_update(
    *, user: User, blur_level: int, reveal_seconds: int, grayscale_on_reveal: bool,
    per_category: dict[str, dict[str, Any]] | None = None,
) -> ViewingPreference:
    """A moderator may make viewing stricter than the organisation's settings, never weaker; and per harm category
    stricter still than their own (`per_category`; None keeps what is stored, as far as it is still stricter)."""
    if not settings.VEIL_MIN_BLUR_LEVEL <= blur_level <= 6:
        raise ReviewError("blur_too_weak", gettext("Blur can be set from %(veil_min_blur_level)s (the organisation's "
                                                   "minimum) to 6.") % {
                                                       "veil_min_blur_level": settings.VEIL_MIN_BLUR_LEVEL}, status=400)
    if not 1 <= reveal_seconds <= settings.VEIL_REVEAL_SECONDS:
        raise ReviewError("reveal_too_long", gettext(
            "A reveal can last from 1 to %(veil_reveal_seconds)s seconds (the organisation's maximum)."
        ) % {"veil_reveal_seconds": settings.VEIL_REVEAL_SECONDS}, status=400)
    prefs = viewing_preference_for(user=user)
    if per_category is None:  # keep the stored ones, less anything the new general settings make pointless
        per_category = {c: {k: v for k, v in values.items()
                            if not (k == "blur_level" and v <= blur_level)
                            and not (k == "reveal_seconds" and v >= reveal_seconds)}
                        for c, values in (prefs.per_category or {}).items()}
    categories = check_per_category(per_category=per_category, blur_level=blur_level, reveal_seconds=reveal_seconds)
    before = {"blur_level": prefs.blur_level, "reveal_seconds": prefs.reveal_seconds,
              "grayscale_on_reveal": prefs.grayscale_on_reveal, "per_category": prefs.per_category or {}}
    prefs.blur_level = blur_level
    prefs.reveal_seconds = reveal_seconds
    prefs.grayscale_on_reveal = grayscale_on_reveal
    prefs.per_category = categories
    prefs.save()
    audit_record(action=AuditEvent.Action.PREFERENCES_CHANGED, actor=user, before=before,
                 after={"blur_level": blur_level, "reveal_seconds": reveal_seconds,
                        "grayscale_on_reveal": grayscale_on_reveal, "per_category": categories})
    return prefs
