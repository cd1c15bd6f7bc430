"""Wellbeing: the exposure policy and its stricter-only layers, shifts, the exposure ledger, breaks and check-ins.

The rules that turn these rows into decisions (how much exposure an item counts for, when a break is due) are pure
functions in wellbeing/rules.py; writes go through wellbeing/services.py and reads through wellbeing/selectors.py.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.deconstruct import deconstructible
from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_lazy

from core import compiled
from intake.models import Category, Severity
from wellbeing import rules


@deconstructible
class DurationBetween:
    """Validates that a duration lies within [low, high] seconds (deconstructible, so migrations can record it)."""

    def __init__(self, low: int, high: int, what: str | Promise) -> None:
        self.low, self.high, self.what = low, high, what

    def __call__(self, value: timedelta | None) -> None:
        if value is not None and not self.low <= value.total_seconds() <= self.high:
            raise ValidationError(
                gettext("%(what)s must be between %(low)s and %(high)s.") % {
                    "what": self.what, "low": _words(timedelta(seconds=self.low)),
                    "high": _words(timedelta(seconds=self.high))}
            )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DurationBetween) and (self.low, self.high, self.what) == (
            other.low, other.high, other.what)

    def __hash__(self) -> int:
        return hash((self.low, self.high, self.what))


def _between(bounds: tuple[timedelta, timedelta], what: str | Promise) -> list[Any]:
    return [DurationBetween(int(bounds[0].total_seconds()), int(bounds[1].total_seconds()), what)]


def _words(value: timedelta) -> str:
    minutes = int(value.total_seconds()) // 60
    if minutes and minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min" if minutes else f"{int(value.total_seconds())} s"


# Bounds an administrator can choose within. Tests may store shorter durations directly (a browser test cannot wait
# fifty minutes); the admin form, the service and the personal form all validate against these.
SHIFT_LENGTH = (timedelta(hours=1), timedelta(hours=12))
REST_BETWEEN_SHIFTS = (timedelta(hours=8), timedelta(hours=24))
BREAK_EVERY = (timedelta(minutes=10), timedelta(hours=4))
BREAK_LENGTH = (timedelta(minutes=5), timedelta(hours=1))
BREAK_WINDOW = (timedelta(0), timedelta(minutes=15))
COOLDOWN = (timedelta(0), timedelta(minutes=15))
CAP_UNITS = (10, 600)


class StricterThanOrganisation:
    """Validation shared by the policy layers below the organisation: a setting may only be stricter."""

    def clean(self) -> None:
        errors = rules.looser_than(self, OrganisationPolicy.objects.current())
        if errors:
            raise ValidationError(errors)


class OrganisationPolicyManager(models.Manager["OrganisationPolicy"]):
    def current(self) -> OrganisationPolicy:
        """The organisation's policy, or its defaults when nobody has saved one yet (not saved by reading it). Read on
        every claim: compiled once per process (core.compiled), the queryset staying its definition."""
        return self.or_defaults(compiled.first("wellbeing.organisation_policy", OrganisationPolicy, self.row))

    def row(self) -> models.QuerySet[OrganisationPolicy]:
        """The one row, when saved: what current() reads, for reads that load it with theirs (compiled.columns_of)."""
        return self.filter(pk=OrganisationPolicy.SINGLETON_PK)

    @staticmethod
    def or_defaults(found: OrganisationPolicy | None) -> OrganisationPolicy:
        return found or OrganisationPolicy(pk=OrganisationPolicy.SINGLETON_PK)


class OrganisationPolicy(models.Model):
    """The organisation's exposure policy: one row (pk=1), edited by administrators in Django admin.

    1 exposure unit = one minute with the most severe content on screen. Milder items count a percentage of that
    (the weights), so the cap reads as "minutes of severe-equivalent exposure per shift". Defaults follow practice:
    IWF analysts see at most about 5 hours a day of the worst content and some platforms cap it at 4 hours, so the
    default cap is 240 units; HSE-style scheduled rest is 10 minutes after every 50 minutes.
    """

    SINGLETON_PK = 1

    shift_length = models.DurationField(
        default=timedelta(hours=8), validators=_between(SHIFT_LENGTH, "A shift"),
        help_text="Claiming stops when a shift has lasted this long (HH:MM:SS).",
    )
    day_cutoff = models.TimeField(
        null=True, blank=True,
        help_text="Optional hard cut-off: no claiming at or after this local time (VEIL_TIME_ZONE). Empty: none.",
    )
    day_start = models.TimeField(
        null=True, blank=True, help_text="Optional: no claiming before this local time. Must be before the cut-off.",
    )
    rest_between_shifts = models.DurationField(
        default=timedelta(hours=11), validators=_between(REST_BETWEEN_SHIFTS, gettext_lazy("Rest between shifts")),
        help_text="A new shift starts only this long after the last one ended (EU working-time minimum: 11 h).",
    )
    exposure_cap_units = models.PositiveIntegerField(
        default=240, validators=[MinValueValidator(CAP_UNITS[0]), MaxValueValidator(CAP_UNITS[1])],
        help_text="Per-shift cap, in minutes of severe-equivalent exposure (default 240 = 4 h).",
    )
    weight_none = models.PositiveSmallIntegerField(
        default=10, validators=[MaxValueValidator(100)],
        help_text="% of a severe minute that an item rated 'none' counts for. Unrated items count here too, so it "
        "is not 0.",
    )
    weight_low = models.PositiveSmallIntegerField(default=25, validators=[MaxValueValidator(100)])
    weight_medium = models.PositiveSmallIntegerField(default=50, validators=[MaxValueValidator(100)])
    severe_per_hour = models.PositiveSmallIntegerField(
        default=12, validators=[MinValueValidator(1), MaxValueValidator(60)],
        help_text="Most severe items a person may claim in any 60 minutes.",
    )
    cooldown = models.DurationField(
        default=timedelta(seconds=60), validators=_between(COOLDOWN, gettext_lazy("The cool-down")),
        help_text="After a severe item, no other severe item for this long (milder items are still offered).",
    )
    break_every = models.DurationField(
        default=timedelta(minutes=50), validators=_between(BREAK_EVERY, gettext_lazy("Work between breaks")),
        help_text="A break is due after this much time on shift since the last break.",
    )
    break_length = models.DurationField(
        default=timedelta(minutes=10), validators=_between(BREAK_LENGTH, "A break"),
    )
    break_window = models.DurationField(
        default=timedelta(minutes=5), validators=_between(BREAK_WINDOW, gettext_lazy("The window to start a break")),
        help_text="Once a break is due, the moderator may finish the item in hand and start the break within this "
        "window; after it claiming stops anyway and the break starts.",
    )
    interleave_benign = models.BooleanField(
        default=True, help_text="After a severe item, offer an item rated 'none' next when the queue has one.",
    )
    near_cap_percent = models.PositiveSmallIntegerField(
        default=75, validators=[MinValueValidator(10), MaxValueValidator(100)],
        help_text="From this share of the cap on, milder items are offered first.",
    )
    # How time on screen is measured (organisation only: these define the unit, they are not safety levers).
    item_seconds_min = models.PositiveIntegerField(
        default=15, validators=[MaxValueValidator(600)],
        help_text="An item counts at least this many seconds on screen, however fast it was decided.",
    )
    item_seconds_max = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(1), MaxValueValidator(3600)],
        help_text="…and at most this many (time beyond it is someone stepping away, not looking). A claim reserves "
        "this much, so concurrent claims can never overrun the cap.",
    )
    reveal_extra_percent = models.PositiveSmallIntegerField(
        default=100, validators=[MaxValueValidator(400)],
        help_text="Each second the clear image is revealed counts this % extra (100: a revealed second counts twice).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrganisationPolicyManager()

    class Meta:
        verbose_name = gettext_lazy("organisation exposure policy")
        verbose_name_plural = gettext_lazy("organisation exposure policy")
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="wellbeing_org_policy_singleton"),
            models.CheckConstraint(
                condition=Q(weight_none__lte=models.F("weight_low"), weight_low__lte=models.F("weight_medium"),
                            weight_medium__lte=100),
                name="wellbeing_org_policy_weights_ordered",
            ),
        ]

    def __str__(self) -> str:
        return "Organisation exposure policy"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not self.weight_none <= self.weight_low <= self.weight_medium <= 100:
            errors["weight_medium"] = gettext("Weights must rise with severity: none ≤ low ≤ medium ≤ 100 (severe).")
        if self.item_seconds_min > self.item_seconds_max:
            errors["item_seconds_min"] = gettext("The shortest counted time must not be longer than the longest.")
        if self.day_start and self.day_cutoff and self.day_start >= self.day_cutoff:
            errors["day_start"] = gettext("The day must start before the cut-off (night work: leave both empty).")
        if errors:
            raise ValidationError(errors)


class QueuePolicy(StricterThanOrganisation, models.Model):
    """A queue's stricter settings (empty = the organisation's), and the category it is a specialist queue for."""

    queue = models.OneToOneField("review_queue.Queue", on_delete=models.CASCADE, related_name="wellbeing_policy")
    specialist_category = models.CharField(
        max_length=32, choices=Category.choices, blank=True,
        help_text="Moderators who opted out of this category still get it here: working this queue is the "
        "specialist assignment.",
    )
    exposure_cap_units = models.PositiveIntegerField(null=True, blank=True)
    severe_per_hour = models.PositiveSmallIntegerField(null=True, blank=True)
    cooldown = models.DurationField(null=True, blank=True)
    weight_none = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(100)])
    weight_low = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(100)])
    weight_medium = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(100)])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = gettext_lazy("queue exposure policy")
        verbose_name_plural = gettext_lazy("queue exposure policies")

    def __str__(self) -> str:
        return f"Exposure policy of {self.queue}"


class PersonalPolicy(models.Model):
    """A moderator's own stricter limits and the categories they opted out of. Theirs alone: not in the admin."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wellbeing_policy")
    shift_length = models.DurationField(null=True, blank=True)
    exposure_cap_units = models.PositiveIntegerField(null=True, blank=True)
    severe_per_hour = models.PositiveSmallIntegerField(null=True, blank=True)
    cooldown = models.DurationField(null=True, blank=True)
    break_every = models.DurationField(null=True, blank=True)
    break_length = models.DurationField(null=True, blank=True)
    opted_out_categories: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Personal limits of {self.user_id}"


class PolicyChange(models.Model):
    """The audit of every change to any policy layer: who, which layer, before and after."""

    class Layer(models.TextChoices):
        ORGANISATION = "organisation", gettext_lazy("Organisation")
        QUEUE = "queue", gettext_lazy("Queue")
        TEAM = "team", gettext_lazy("Team")
        PERSONAL = "personal", gettext_lazy("Personal")

    at = models.DateTimeField(db_index=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    layer = models.CharField(max_length=16, choices=Layer.choices)
    queue = models.ForeignKey("review_queue.Queue", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    team = models.ForeignKey("wellbeing.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Whose personal limits changed.",
    )
    before: models.JSONField[Any, Any] = models.JSONField(default=dict)
    after: models.JSONField[Any, Any] = models.JSONField(default=dict)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.layer} policy changed by {self.changed_by_id}"


class Shift(models.Model):
    """A moderator's working shift. It starts explicitly or with the first claim; its planned end is fixed at start."""

    class EndReason(models.TextChoices):
        MANUAL = "manual", gettext_lazy("Ended by the moderator")
        LENGTH = "length", gettext_lazy("Reached its length")
        CUTOFF = "cutoff", gettext_lazy("Reached the day's cut-off")
        LEAD = "lead", gettext_lazy("Ended early by a team lead")

    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shifts")
    started_at = models.DateTimeField()
    ends_at = models.DateTimeField(help_text="Planned end: the shift length or the day's cut-off, whichever is first.")
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=10, choices=EndReason.choices, blank=True)
    # Set when time with nothing open was long enough to count as rest: the work stretch restarts here.
    rested_at = models.DateTimeField(null=True, blank=True)
    day = models.DateField(help_text="Local date the shift started on.")
    # A team lead moved the reviewer to a lighter queue: for the rest of this shift, items come only from there.
    queue_assigned = models.ForeignKey("review_queue.Queue", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["reviewer"], condition=Q(ended_at__isnull=True),
                                    name="wellbeing_one_open_shift"),
        ]

    def __str__(self) -> str:
        return f"shift of {self.reviewer_id} from {self.started_at:%Y-%m-%d %H:%M}"


class ExposureEntry(models.Model):
    """One item shown to one person: the exposure ledger.

    Opened at claim with `reserved` (the most the item can count for), settled after the claim ends from the
    server's own clock (claim to decision, bounded) and the logged reveals. Sum `exposure` for settled entries and
    `reserved` for open ones to know how much of a cap is spoken for.
    """

    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exposure")
    shift = models.ForeignKey(Shift, on_delete=models.CASCADE, related_name="exposure")
    # Items and claims may be deleted when content is purged; the ledger outlives them.
    claim = models.OneToOneField("review_queue.Claim", null=True, on_delete=models.SET_NULL, related_name="exposure")
    item = models.ForeignKey("moderation.ContentItem", null=True, on_delete=models.SET_NULL, related_name="+")
    queue = models.ForeignKey("review_queue.Queue", null=True, on_delete=models.SET_NULL, related_name="+")
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    category = models.CharField(max_length=32, choices=Category.choices)
    weight_percent = models.PositiveSmallIntegerField()
    claimed_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Set when settled.")
    screen_seconds = models.PositiveIntegerField(default=0, help_text="Claim to decision, as measured.")
    reveal_count = models.PositiveSmallIntegerField(default=0)
    reveal_seconds = models.PositiveIntegerField(default=0)
    counted_seconds = models.PositiveIntegerField(default=0, help_text="Time on screen as counted (bounded).")
    reserved = models.PositiveIntegerField(help_text="Weighted seconds reserved at claim (the most it can count).")
    exposure = models.PositiveIntegerField(null=True, blank=True, help_text="Weighted seconds, once settled.")
    day = models.DateField(help_text="Local date of the claim.")
    week = models.DateField(help_text="Monday of the claim's local week.")

    class Meta:
        ordering = ["-claimed_at"]
        verbose_name_plural = gettext_lazy("exposure entries")
        indexes = [
            models.Index(fields=["reviewer", "day"], name="exposure_reviewer_day"),
            models.Index(fields=["reviewer", "week"], name="exposure_reviewer_week"),
            models.Index(fields=["reviewer", "severity", "claimed_at"], name="exposure_reviewer_severity"),
            # The claim gate's reads (wellbeing/gate_reads.py): the last settled item of a shift, the last severe
            # item of a reviewer, and the few entries not settled yet.
            models.Index(fields=["shift", "ended_at"], name="exposure_shift_end"),
            models.Index(fields=["reviewer", "severity", "ended_at"], name="exposure_reviewer_severe_end"),
            models.Index(fields=["reviewer"], condition=Q(exposure__isnull=True), name="exposure_unsettled"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(exposure__isnull=True) | Q(exposure__lte=models.F("reserved")),
                                   name="exposure_within_reservation"),
        ]

    def __str__(self) -> str:
        return f"exposure of {self.reviewer_id} to item #{self.item_id} ({self.get_severity_display()})"

    @property
    def is_settled(self) -> bool:
        return self.exposure is not None


class Break(models.Model):
    """A break: scheduled ones are recorded when they fall due, voluntary ones when started. Never counted against
    anyone: a voluntary break does not shift or replace the scheduled one unless it was a full break's length."""

    class Kind(models.TextChoices):
        SCHEDULED = "scheduled", gettext_lazy("Scheduled")
        VOLUNTARY = "voluntary", gettext_lazy("Voluntary")
        LEAD = "lead", gettext_lazy("Sent by a team lead")

    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="breaks")
    # Empty for a voluntary break taken off shift: never refused, nothing to pause.
    shift = models.ForeignKey(Shift, null=True, blank=True, on_delete=models.CASCADE, related_name="breaks")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    due_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Planned end.")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Set when it ended before its planned end.")
    started_automatically = models.BooleanField(
        default=False, help_text="Claiming paused when the window to start it had passed, or the time off was idle.",
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Who started it: the reviewer, or a team lead who sent them on it. Empty when it began by itself.",
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["shift"], condition=Q(kind="scheduled", started_at__isnull=True),
                                    name="wellbeing_one_pending_break"),
            models.CheckConstraint(condition=Q(started_at__isnull=True) | Q(ends_at__isnull=False),
                                   name="wellbeing_started_break_has_end"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} break of {self.reviewer_id}"

    @property
    def effective_end(self) -> Any:
        """When the break ended or will end: early if cut short, else as planned."""
        if self.ended_at is not None and self.ends_at is not None:
            return min(self.ended_at, self.ends_at)
        return self.ends_at

    @property
    def cut_short(self) -> bool:
        return self.ended_at is not None and self.ends_at is not None and self.ended_at < self.ends_at


# ---- check-ins: health data ---------------------------------------------------------------------------------------

_checkin_read_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar("veil_checkin_read", default=False)


class CheckInReadRefused(PermissionDenied):
    """Raised when check-in answers are loaded outside wellbeing.selectors.checkins_read (which logs every read)."""


class CheckInQuerySet(models.QuerySet["CheckIn"]):
    """Check-in answers are health data (GDPR Art. 9). Loading rows is refused unless wellbeing.selectors has
    checked who is reading and logged it; counting and deleting (retention) need no read and stay possible."""

    def _fetch_all(self) -> None:
        if self._result_cache is None:
            _refuse_unless_reading()
        super()._fetch_all()

    def iterator(self, chunk_size: int | None = None) -> Iterator[Any]:
        # iterator() streams rows without _fetch_all (dumpdata uses it): guarded on its own.
        _refuse_unless_reading()
        return super().iterator(chunk_size=chunk_size)

    def raw(self, raw_query: Any, params: Any = (), translations: dict[str, str] | None = None,
            using: str | None = None) -> Any:
        _refuse_unless_reading()
        return super().raw(raw_query, params, translations, using)


def _refuse_unless_reading() -> None:
    if not _checkin_read_allowed.get():
        raise CheckInReadRefused(gettext("Check-ins are read only through wellbeing.selectors.checkins_read."))


class CheckIn(models.Model):
    """An optional, private check-in: one 1-5 'how are you' answer, or a WHO-5 wellbeing index.

    Readable by the person and by occupational health only; every read is logged (CheckInRead); deleted after
    VEIL_CHECKIN_RETENTION_DAYS. Not in the Django admin.
    """

    class Kind(models.TextChoices):
        AFTER_BREAK = "after_break", gettext_lazy("After a break")
        SHIFT_END = "shift_end", gettext_lazy("End of shift")
        WHO5 = "who5", gettext_lazy("WHO-5 wellbeing index")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="checkins")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    created_at = models.DateTimeField(db_index=True)
    mood = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)],
    )
    who5_answers: models.JSONField[Any, Any] = models.JSONField(
        null=True, blank=True, help_text="Five answers, 0-5 each, in the order of the WHO-5 items.",
    )
    who5_raw = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(25)])

    objects = CheckInQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # No base_manager_name on purpose: Django's plain base manager is what account deletion collects with,
        # and the retention purge deletes without loading rows, so neither needs a read.
        constraints = [
            models.CheckConstraint(condition=Q(mood__isnull=True) | Q(mood__gte=1, mood__lte=5),
                                   name="checkin_mood_range"),
            models.CheckConstraint(condition=Q(who5_raw__isnull=True) | Q(who5_raw__lte=25),
                                   name="checkin_who5_range"),
            models.CheckConstraint(
                condition=(Q(kind="who5", who5_raw__isnull=False, mood__isnull=True)
                           | (~Q(kind="who5") & Q(mood__isnull=False, who5_raw__isnull=True))),
                name="checkin_answer_matches_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"check-in #{self.pk}"  # never the answer

    @property
    def who5_percent(self) -> int | None:
        return None if self.who5_raw is None else self.who5_raw * 4


class CheckInRead(models.Model):
    """Every read of check-in answers, and every refused attempt: who read whose, when, why, how many."""

    at = models.DateTimeField(db_index=True)
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    subject = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    purpose = models.CharField(max_length=40)
    allowed = models.BooleanField()
    rows = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.reader_id} read check-ins of {self.subject_id} ({self.purpose})"


# ---- teams, consent to follow-up, and the audit of who looked at whose data -----------------------------------------


class Department(models.Model):
    """A grouping of teams. OH reports show a department's teams side by side with their total, which is why
    suppression there must be complementary (a total minus the shown teams must not reveal a hidden one)."""

    name = models.CharField(max_length=120, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    """Reviewers belong to at most one team (so department totals are plain sums); leads and OH staff may be
    assigned to several. Managed by administrators in Django admin."""

    name = models.CharField(max_length=120)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="teams")
    leads = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams_led",
                                   help_text="Team leads who see this team's live load and may act on it.")
    health_staff = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="teams_in_care",
        help_text="Occupational-health staff who see this team's reports and follow-up list. Changed only with "
                  "`manage.py health_access`; every change is kept (HealthAccessGrant) and shown to the team.",
    )

    class Meta:
        ordering = ["department__name", "name"]
        constraints = [models.UniqueConstraint(fields=["department", "name"], name="wellbeing_team_name_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.department})"


class TeamMembership(models.Model):
    """A reviewer's team: one at most."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_membership")
    since = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team}"


class TeamPolicy(StricterThanOrganisation, models.Model):
    """A team's stricter settings (empty = the organisation's). Leads may only tighten them further; an
    administrator may also loosen them back, never past the organisation's policy."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="policy")
    shift_length = models.DurationField(null=True, blank=True)
    exposure_cap_units = models.PositiveIntegerField(null=True, blank=True)
    severe_per_hour = models.PositiveSmallIntegerField(null=True, blank=True)
    cooldown = models.DurationField(null=True, blank=True)
    break_every = models.DurationField(null=True, blank=True)
    break_length = models.DurationField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = gettext_lazy("team exposure policy")
        verbose_name_plural = gettext_lazy("team exposure policies")

    def __str__(self) -> str:
        return f"Exposure policy of {self.team}"


class LeadAction(models.Model):
    """Every action a team lead takes on a reviewer's shift: who, on whom, what, when. The reviewer sees these."""

    class Action(models.TextChoices):
        BREAK = "break", gettext_lazy("Sent on a break")
        MOVE = "move", gettext_lazy("Moved to a lighter queue")
        END_SHIFT = "end_shift", gettext_lazy("Ended the shift early")

    at = models.DateTimeField(db_index=True)
    lead = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    team = models.ForeignKey(Team, null=True, on_delete=models.SET_NULL, related_name="+")
    subject = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices)
    detail: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.lead_id} {self.action} {self.subject_id}"


class FollowUpConsent(models.Model):
    """A reviewer's choice about individual occupational-health follow-up: append-only, the latest row counts.

    Refusing or withdrawing has no consequence anywhere in Veil: nothing but the OH follow-up list reads this, and
    it only decides whether the person is named there or counted."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="followup_consents")
    given = models.BooleanField()
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"follow-up consent of {self.user_id}: {'given' if self.given else 'withdrawn'}"


class DataAccess(models.Model):
    """The audit of every look at team or individual data: lead dashboard views, OH reports and exports, follow-up.

    `subject` is set when the view showed that person's individual data; the person sees those rows on their own
    wellbeing page. Aggregate reports have no subject, only the team or department and period."""

    class What(models.TextChoices):
        LEAD_PAGE = "lead_page", gettext_lazy("Live team view")
        LEAD_API = "lead_api", gettext_lazy("Live team view (API)")
        LEAD_SOCKET = "lead_socket", gettext_lazy("Live team view (live updates)")
        REPORT_PAGE = "report_page", gettext_lazy("Exposure report")
        REPORT_API = "report_api", gettext_lazy("Exposure report (API)")
        REPORT_CSV = "report_csv", gettext_lazy("Exposure report (CSV export)")
        REPORT_PDF = "report_pdf", gettext_lazy("Exposure report (PDF export)")
        FOLLOWUP = "followup", gettext_lazy("Follow-up list")
        PERSON = "person", gettext_lazy("Individual follow-up page")

    at = models.DateTimeField(db_index=True)
    viewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    what = models.CharField(max_length=16, choices=What.choices)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    department = models.ForeignKey(Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    subject = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="+")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = gettext_lazy("data access")
        verbose_name_plural = gettext_lazy("data accesses")
        indexes = [models.Index(fields=["subject", "at"], name="dataaccess_subject_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.viewer_id} {self.what}"


class HealthAccessGrant(models.Model):
    """Every time someone became, or stopped being, occupational health for a team: the history of who could read
    the team's reports and, for those who consent to follow-up, their check-ins. Written for every change of
    Team.health_staff, whichever way it was made (wellbeing.signals), so no change goes unrecorded; the team's
    members see the open grants on their wellbeing page ("who can read your check-ins", since when)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="health_grants")
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    granted_at = models.DateTimeField()
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    # How the change was made: "health_access" (the audited command), or "outside health_access" (the shell, a
    # script) so that such a change is visible as what it is.
    how = models.CharField(max_length=40)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-granted_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["team", "staff"], condition=Q(ended_at__isnull=True),
                                    name="health_grant_one_open_per_team_staff"),
        ]

    def __str__(self) -> str:
        return f"OH access of {self.staff_id} to team {self.team_id} since {self.granted_at:%Y-%m-%d}"
