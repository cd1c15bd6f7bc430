from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinLengthValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy

from core import compiled
from wellbeing import services as wellbeing_services


class Queue(models.Model):
    """A stream of work. Every queue says what the work is for and who asked for it: no anonymous work."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    purpose = models.TextField(
        validators=[MinLengthValidator(10)],
        help_text="What the review is for, in words a moderator understands. Shown on every item.",
    )
    requester = models.CharField(
        max_length=200,
        validators=[MinLengthValidator(2)],
        help_text="The organisation or team that asked for this work. Shown on every item.",
    )
    is_active = models.BooleanField(default=True)
    submitters = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="submittable_queues",
        help_text="Requester accounts whose API tokens may submit items to this queue.",
    )
    lease_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Overrides VEIL_LEASE_SECONDS for this queue when set."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Integrations (integrations/webhooks.py, integrations/coop_api.py).
    webhook_url = models.CharField(
        max_length=500, blank=True, validators=[URLValidator(schemes=["http", "https"])],
        help_text="Final decisions are POSTed here as signed JSON (see the README, Integrations). Empty: none.",
    )
    webhook_secret = models.CharField(
        max_length=128, blank=True, validators=[MinLengthValidator(16)],
        help_text="HMAC-SHA256 key of the X-Veil-Signature header; at least 16 characters.",
    )
    coop_type_id = models.CharField(
        max_length=64, blank=True,
        help_text="The Coop item typeId that submits to this queue (POST /api/v1/items/async/); the slug also works.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(purpose=""), name="queue_purpose_required"),
            models.CheckConstraint(condition=~Q(requester=""), name="queue_requester_required"),
            models.UniqueConstraint(fields=["coop_type_id"], condition=~Q(coop_type_id=""),
                                    name="queue_coop_type_id_unique"),
            models.CheckConstraint(condition=Q(webhook_url="") | ~Q(webhook_secret=""),
                                   name="queue_webhook_needs_secret"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def lease_duration_seconds(self) -> int:
        return self.lease_seconds or int(settings.VEIL_LEASE_SECONDS)


class Policy(models.Model):
    """A rule of a queue that a decision can cite."""

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="policies")
    code = models.SlugField(max_length=64)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["queue", "position", "code"]
        verbose_name_plural = "policies"
        constraints = [models.UniqueConstraint(fields=["queue", "code"], name="policy_code_unique_per_queue")]

    def __str__(self) -> str:
        return f"{self.code}: {self.title}"


class Claim(models.Model):
    """One lease of one item by one reviewer. At most one open claim per item, enforced by the database."""

    class Outcome(models.TextChoices):
        OPEN = "open", gettext_lazy("Open")
        DECIDED = "decided", gettext_lazy("Decided")
        ESCALATED = "escalated", gettext_lazy("Escalated")
        SECOND_OPINION = "second_opinion", gettext_lazy("Second opinion asked")
        RELEASED = "released", gettext_lazy("Released")
        EXPIRED = "expired", gettext_lazy("Lease expired")

    item = models.ForeignKey("moderation.ContentItem", on_delete=models.CASCADE, related_name="claims")
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="claims")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="claims")
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.OPEN)

    class Meta:
        ordering = ["-claimed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["item"], condition=Q(ended_at__isnull=True), name="one_open_claim_per_item"
            ),
        ]
        indexes = [
            models.Index(fields=["reviewer", "ended_at"], name="claim_reviewer_open"),
            # Leases that ran out, per queue: the expiry sweep, the gate and the queue counts look here.
            models.Index(fields=["queue", "expires_at"], condition=Q(ended_at__isnull=True), name="claim_open_expiry"),
        ]

    def __str__(self) -> str:
        return f"claim #{self.pk} of item #{self.item_id} by {self.reviewer_id}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    def end(self, *, outcome: str, at: datetime) -> bool:
        """The one place a lease ends, whatever ends it (a decision, a release, expiry, a break giving the item
        back): the claim is closed with its outcome, a reveal still open ends, and the item's exposure is settled
        (wellbeing.services.exposure_settle_claim), all in the caller's transaction, so the wellbeing gate reads
        settled totals. The item's own status is the caller's to set. Returns False when the claim had ended
        already (someone else ended it first). Every caller holds the item's row lock, which ending a claim and
        opening a reveal both take.

        The settlement is read first; then the claim's end, the settlement and the reveals' end are written
        together (core.compiled.together: one statement on PostgreSQL), joining the caller's own together() block
        if it has one, so a caller's writes (a decision's) go in the same statement. The read tells whether the
        claim was still open: its ledger entry, unsettled, names the claim with its end. The claim's end is
        conditional all the same (`ended_at IS NULL`), and a count other than one raises compiled.WrongCount and
        rolls the transaction back. A claim with no unsettled entry (one that had ended and settled, or one from
        before the ledger) is ended at once and its count decides. Compiled once per process (core.compiled): the
        querysets stay the definition."""
        with compiled.together(join=True):
            settled = wellbeing_services.exposure_settle_claim(claim_id=self.pk, ended_at=at)
            if settled.claim_ended:
                return False
            still_open = settled.reveals_open
            if still_open is None:  # no entry read: whether the claim was open is its end's own count
                if not compiled.update("review_queue.claim_end", _claim_end, claim_id=self.pk, at=at,
                                       outcome=outcome):
                    return False
                still_open = compiled.rows("review_queue.claim_end.reveals_open", lambda *, claim_id: RevealEvent
                                           .objects.filter(claim_id=claim_id, ended_at__isnull=True).values("pk")[:1],
                                           claim_id=self.pk) != []
            else:  # the entry read shows the claim open, under the item's lock: its end updates one row
                compiled.update_later("review_queue.claim_end", _claim_end, expect=1, claim_id=self.pk, at=at,
                                      outcome=outcome)
            if still_open:
                compiled.update_later("review_queue.claim_end.reveals_end", lambda *, claim_id, at: (
                    RevealEvent.objects.filter(claim_id=claim_id, ended_at__isnull=True), {"ended_at": at}),
                    claim_id=self.pk, at=at)
        self.ended_at, self.outcome = at, outcome
        return True



def _claim_end(*, claim_id: int, at: datetime, outcome: str) -> tuple[QuerySet[Claim], dict[str, Any]]:
    # A claim's conditional end (Claim.end): compiled once per process, bound on each end.
    return Claim.objects.filter(pk=claim_id, ended_at__isnull=True), {"ended_at": at, "outcome": outcome}


class RevealEvent(models.Model):
    """A deliberate reveal of the clear rendition. Its length is bounded by the reveal window."""

    item = models.ForeignKey("moderation.ContentItem", on_delete=models.CASCADE, related_name="reveals")
    claim = models.ForeignKey("review_queue.Claim", on_delete=models.CASCADE, related_name="reveals")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reveals")
    started_at = models.DateTimeField()
    allowed_seconds = models.PositiveSmallIntegerField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # A moving item: the keyframe revealed (None for its playback or a still), and for a playback reveal the
    # seconds of clear video actually played, as the console reports them (what counts as exposure).
    keyframe = models.PositiveSmallIntegerField(null=True, blank=True)
    is_playback = models.BooleanField(default=False)
    played_seconds = models.FloatField(default=0)

    class Meta:
        app_label = "moderation"
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"reveal of item #{self.item_id} by {self.reviewer_id} at {self.started_at:%H:%M:%S}"

    @property
    def seconds_shown(self) -> float:
        if self.is_playback:  # video: the seconds actually played, never more than the window allowed
            return min(self.played_seconds, float(self.allowed_seconds))
        if self.ended_at is None:
            return float(self.allowed_seconds)
        return max(0.0, min((self.ended_at - self.started_at).total_seconds(), float(self.allowed_seconds)))



class ViewingPreference(models.Model):
    """A moderator's own viewing settings. They can only be stricter than the organisation's."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="viewing")
    blur_level = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(0), MaxValueValidator(6)], help_text="0-6; higher is blurrier."
    )
    reveal_seconds = models.PositiveSmallIntegerField(default=10, validators=[MinValueValidator(1)])
    grayscale_on_reveal = models.BooleanField(default=True)
    # Per harm category, only ever stricter than the settings above: {"violence": {"blur_level": 5,
    # "reveal_seconds": 3, "warn": true}}. Written only by services.viewing_preference_update, which checks it.
    per_category: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)


    class Meta:
        app_label = "moderation"

    def __str__(self) -> str:
        return f"viewing preferences of {self.user_id}"

    def _category(self, category: str | None) -> dict[str, Any]:
        found = (self.per_category or {}).get(category or "")
        return found if isinstance(found, dict) else {}

    def effective_blur_level(self, category: str | None = None) -> int:
        """The blur to show: the organisation's floor, this person's choice, and for the item's category a stricter
        one if they chose it. Each layer can only make it stronger."""
        chosen = self._category(category).get("blur_level")
        level = max(self.blur_level, int(settings.VEIL_MIN_BLUR_LEVEL))
        return min(6, max(level, chosen)) if isinstance(chosen, int) else level

    def effective_reveal_seconds(self, category: str | None = None) -> int:
        """How long a reveal stays clear: the organisation's longest, this person's, and for the item's category a
        shorter one if they chose it. Each layer can only make it shorter."""
        chosen = self._category(category).get("reveal_seconds")
        seconds = max(1, min(self.reveal_seconds, int(settings.VEIL_REVEAL_SECONDS)))
        return max(1, min(seconds, chosen)) if isinstance(chosen, int) else seconds

    def warns_before_reveal(self, category: str | None) -> bool:
        """Whether a card naming the category comes before any reveal of an item reported in it."""
        return bool(self._category(category).get("warn"))
