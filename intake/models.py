from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from review.models import Claim


class Severity(models.IntegerChoices):
    NONE = 0, gettext_lazy("None")
    LOW = 1, gettext_lazy("Low")
    MEDIUM = 2, gettext_lazy("Medium")
    SEVERE = 3, gettext_lazy("Severe")


class Category(models.TextChoices):
    UNSPECIFIED = "unspecified", gettext_lazy("Unspecified")
    VIOLENCE = "violence", gettext_lazy("Violence and gore")
    SEXUAL = "sexual", gettext_lazy("Sexual content")
    SELF_HARM = "self_harm", gettext_lazy("Self-harm")
    HATE = "hate", gettext_lazy("Hate and harassment")
    SPAM = "spam", gettext_lazy("Spam and scams")
    OTHER = "other", gettext_lazy("Other")


_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif", "image/heif": "heic",
               "video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm"}


class MediaKind(models.TextChoices):
    STILL = "still", _("Still picture")
    ANIMATION = "animation", _("Animated picture")
    VIDEO = "video", _("Video")


def media_path(kind: str, key: uuid.UUID, mime: str) -> str:
    """Generated names only: nothing a requester sends ever becomes part of a path. Derivative names are fixed per
    item, so a redelivered pipeline task overwrites its own files instead of leaving orphans."""
    token = key.hex
    return f"{kind}/{token[:2]}/{token[2:4]}/{token}.{_EXTENSIONS.get(mime, 'bin')}"


def original_upload_to(instance: ContentItem, filename: str) -> str:
    return media_path("originals", instance.media_key, instance.mime)


def preview_upload_to(instance: ContentItem, filename: str) -> str:
    return media_path("previews", instance.media_key, "image/jpeg")


def display_upload_to(instance: ContentItem, filename: str) -> str:
    return media_path("display", instance.media_key, "image/jpeg")


class ContentItem(models.Model):
    class Status(models.TextChoices):
        PROCESSING = "processing", gettext_lazy("Processing")
        FAILED = "failed", gettext_lazy("Failed")
        READY = "ready", gettext_lazy("Waiting for review")
        IN_REVIEW = "in_review", gettext_lazy("In review")
        ESCALATED = "escalated", gettext_lazy("Escalated to a lead")
        # A copy of a picture whose cluster is already waiting or in review: decided together with it.
        CLUSTERED = "clustered", gettext_lazy("Waiting with its cluster")
        DECIDED = "decided", gettext_lazy("Decided")

    queue = models.ForeignKey("review_queue.Queue", on_delete=models.PROTECT, related_name="items")
    external_id = models.CharField(max_length=200, blank=True)
    category = models.CharField(max_length=32, choices=Category.choices, default=Category.UNSPECIFIED)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.NONE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING, db_index=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="submitted_items"
    )
    # The queue the item was submitted to, never changed (a hash list may route `queue` elsewhere since). With
    # submitted_by and external_id it names the submission: external ids are the submitter's own, per queue.
    submitted_to = models.ForeignKey(
        "review_queue.Queue", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    # The original as received, and what the pipeline derived from it.
    media_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    sha256 = models.CharField(max_length=64)
    byte_size = models.PositiveBigIntegerField()
    mime = models.CharField(max_length=32)
    original = models.FileField(upload_to=original_upload_to, max_length=200)
    source_width = models.PositiveIntegerField()
    source_height = models.PositiveIntegerField()
    frame_count = models.PositiveIntegerField(default=1)
    # A still, an animated picture (GIF, APNG, WebP of more than one frame) or a video: moving ones get a Motion row.
    kind = models.CharField(max_length=10, choices=MediaKind.choices, default=MediaKind.STILL)
    preview = models.FileField(upload_to=preview_upload_to, max_length=200, blank=True)
    display = models.FileField(upload_to=display_upload_to, max_length=200, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    phash = models.BigIntegerField(null=True, blank=True, help_text="64-bit pHash, stored signed.")
    dhash = models.BigIntegerField(null=True, blank=True, help_text="64-bit dHash, stored signed.")
    processed_at = models.DateTimeField(null=True, blank=True)
    failure = models.TextField(blank=True)

    # Near-duplicate matching (see intake/matching.py).
    fingerprint = models.BinaryField(null=True, blank=True, editable=False)
    pdq = models.CharField(max_length=64, blank=True)
    pdq_quality = models.PositiveSmallIntegerField(null=True, blank=True)
    cluster = models.ForeignKey(
        "Cluster", null=True, blank=True, on_delete=models.SET_NULL, related_name="members"
    )

    # The lease is review_queue.Claim's: an item in review has exactly one open claim (its holder and the end of
    # its lease), enforced by the database there.
    escalated_at = models.DateTimeField(null=True, blank=True)
    # Whoever asked for a second opinion may not give it.
    second_opinion_excluded = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["queue", "status", "created_at", "id"], name="item_claim_order"),
            models.Index(fields=["queue", "sha256"], name="item_sha256_in_queue"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(severity__gte=0, severity__lte=3), name="item_severity_range"),
            # One item per (submitter, queue submitted to, external id): a second requester's ids never collide
            # with another's. Items without an id, or older copies kept from before this rule, are not bound.
            models.UniqueConstraint(
                fields=["submitted_by", "submitted_to", "external_id"],
                condition=~Q(external_id="") & Q(submitted_by__isnull=False, submitted_to__isnull=False),
                name="item_external_id_per_submitter",
            ),
        ]

    def __str__(self) -> str:
        return f"item #{self.pk} ({self.get_status_display()})"

    @property
    def is_reviewable(self) -> bool:
        return bool(self.preview and self.display and self.phash is not None)

    @property
    def open_claim(self) -> Claim | None:
        """The live or lapsed lease on this item: its one claim not ended yet (None when nobody holds it). Read
        from the database each time: the lease is the claim's, never copied onto the item."""
        return self.claims.filter(ended_at__isnull=True).select_related("reviewer").first()

    @property
    def lease_expires_at(self) -> datetime | None:
        claim = self.open_claim
        return claim.expires_at if claim is not None else None

    @property
    def lease_holder_id(self) -> int | None:
        claim = self.open_claim
        return claim.reviewer_id if claim is not None else None

    @property
    def resting_status(self) -> str:
        """Where the item goes when a lease ends without a final decision."""
        return self.Status.ESCALATED if self.escalated_at else self.Status.READY


def motion_upload_to(instance: Motion, filename: str) -> str:
    # "stream" or "clip", fixed per item: a redelivered task overwrites its own files.
    return media_path(f"motion/{filename}", instance.item.media_key, "video/mp4")


class Motion(models.Model):
    """What the worker derived from an animated picture or a video (see intake/motion.py).

    The item's `preview` is the blurred grey contact sheet of the keyframes and its `display` the first keyframe,
    clear; each keyframe is stored clear and served one at a time after a logged reveal; `stream` (clear, with its
    sound) only during a logged playback reveal; `clip` (grey, tiny, no sound) to everyone who may see the item."""

    item = models.OneToOneField(ContentItem, on_delete=models.CASCADE, related_name="motion")
    container = models.CharField(max_length=10)
    video_codec = models.CharField(max_length=16)
    audio_codec = models.CharField(max_length=16, blank=True)
    has_audio = models.BooleanField(default=False)
    duration = models.FloatField(help_text="Seconds of running time.")
    md5 = models.CharField(max_length=32, db_index=True)
    sheet_columns = models.PositiveSmallIntegerField(default=1)
    # [{"index": frame number, "seconds": 1.5, "scene": true, "name": storage name of the clear JPEG}, ...]
    keyframes: models.JSONField[Any, Any] = models.JSONField(default=list)
    stream = models.FileField(upload_to=motion_upload_to, max_length=200, blank=True)
    clip = models.FileField(upload_to=motion_upload_to, max_length=200, blank=True)
    stream_width = models.PositiveIntegerField(default=0)
    stream_height = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"motion of item #{self.item_id} ({self.container}, {self.duration:.1f} s)"


class FrameHash(models.Model):
    """PDQ of one sampled frame of a moving item (one a second of video, every distinct frame of an animation)."""

    item = models.ForeignKey(ContentItem, on_delete=models.CASCADE, related_name="frame_hashes")
    index = models.PositiveIntegerField()
    seconds = models.FloatField()
    pdq = models.CharField(max_length=64)
    quality = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["item", "index"]

    def __str__(self) -> str:
        return f"frame {self.index} of item #{self.item_id}"


class Cluster(models.Model):
    """Copies of one picture. One review decides them all; the representative is the copy that gets reviewed."""

    created_at = models.DateTimeField(auto_now_add=True)
    representative = models.ForeignKey(
        ContentItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="represents"
    )

    def __str__(self) -> str:
        return f"cluster #{self.pk}"


class MatchEvidence(models.Model):
    """Why an item joined a cluster: which earlier item it matched, how, and at what distance."""

    item = models.ForeignKey(ContentItem, on_delete=models.CASCADE, related_name="matches")
    matched_item = models.ForeignKey(ContentItem, on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=40)
    distance = models.PositiveSmallIntegerField()
    explanation = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"item #{self.item_id} ~ #{self.matched_item_id} ({self.method}, {self.distance})"


class HashKey(models.Model):
    """The 64-bit keys of an item's fingerprint: the database side of the in-memory matching index."""

    item = models.ForeignKey(ContentItem, on_delete=models.CASCADE, related_name="hash_keys")
    key = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["key"], name="hashkey_key")]

    def __str__(self) -> str:
        return f"{self.key:#x} of item #{self.item_id}"


class SplitPair(models.Model):
    """Two items a person said are not the same picture: never merged again."""

    item_low = models.ForeignKey(ContentItem, on_delete=models.CASCADE, related_name="+")
    item_high = models.ForeignKey(ContentItem, on_delete=models.CASCADE, related_name="+")
    split_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item_low", "item_high"], name="split_pair_unique"),
            models.CheckConstraint(condition=Q(item_low__lt=models.F("item_high")), name="split_pair_ordered"),
        ]

    def __str__(self) -> str:
        return f"#{self.item_low_id} is not #{self.item_high_id}"


class Decision(models.Model):
    class Action(models.TextChoices):
        APPROVE = "approve", gettext_lazy("Approve")
        REMOVE = "remove", gettext_lazy("Remove")
        ESCALATE = "escalate", gettext_lazy("Escalate to a lead")
        SECOND_OPINION = "second_opinion", gettext_lazy("Ask a second opinion")

    FINAL_ACTIONS = (Action.APPROVE, Action.REMOVE)

    item = models.ForeignKey(ContentItem, on_delete=models.CASCADE, related_name="decisions")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="decisions"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    policy = models.ForeignKey("review_queue.Policy", null=True, blank=True, on_delete=models.PROTECT)
    reason = models.TextField(blank=True)
    is_final = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the decision was not made on this item but carried over from its cluster or a hash list.
    carried_over_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="carried_to"
    )
    hash_list = models.ForeignKey("HashList", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # A carried-over decision undone by a split: kept as history, no longer final.
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item"], condition=Q(is_final=True, voided_at__isnull=True), name="one_final_decision_per_item"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} item #{self.item_id}"


class HashList(models.Model):
    """Known content shared between organisations (PDQ, Veil pHash). Each list says what happens on a match."""

    class Action(models.TextChoices):
        ROUTE = "route", gettext_lazy("Send to a specialist queue (still reviewed, still blurred)")
        REMOVE = "remove", gettext_lazy("Remove without review")
        FLAG = "flag", gettext_lazy("Review as usual, with a note")

    name = models.CharField(max_length=64, unique=True, help_text="Like HMA bank names: A-Z, 0-9 and _.")
    label = models.CharField(max_length=200, help_text="What the list is, for the people who see its matches.")
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.FLAG)
    target_queue = models.ForeignKey(
        "review_queue.Queue", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="For 'route': the specialist queue that receives matches.",
    )
    severity = models.PositiveSmallIntegerField(
        choices=Severity.choices, null=True, blank=True, help_text="Raise matched items to at least this severity."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(action="route") | Q(target_queue__isnull=False),
                                   name="hashlist_route_needs_queue"),
        ]

    def __str__(self) -> str:
        return self.name


class HashListEntry(models.Model):
    hash_list = models.ForeignKey(HashList, on_delete=models.CASCADE, related_name="entries")
    signal_type = models.CharField(max_length=10)
    signal = models.CharField(max_length=64)
    category = models.CharField(max_length=200, blank=True)
    tags = models.CharField(max_length=500, blank=True)
    collab = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hash_list", "signal_type", "signal"], name="hashlist_entry_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.signal_type}:{self.signal[:12]}… in {self.hash_list_id}"


class VideoSignal(models.Model):
    """The frames of a `vpdq` hash-list entry (threatexchange's signal string: a JSON list of
    "pdq_hex,quality,timestamp"). The entry's own `signal` is the SHA-256 of that string, which keeps entries
    unique per list."""

    entry = models.OneToOneField(HashListEntry, on_delete=models.CASCADE, related_name="video")
    body = models.TextField()

    def __str__(self) -> str:
        return f"vpdq frames of entry #{self.entry_id}"

    def frames(self) -> list[tuple[str, int]]:
        import json

        found = []
        for feature in json.loads(self.body or "[]"):
            pdq, quality, _ = str(feature).split(",")
            found.append((pdq.strip().lower(), int(quality)))
        return found


