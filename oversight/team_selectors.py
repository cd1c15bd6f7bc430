"""Reads for teams: who may see which team, and the live load a team lead sees.

The live load deliberately carries no per-person decision count, speed, accuracy or check-in data: only where
each reviewer stands (reviewing, break due, on break, off shift), how much of the team's exposure cap (never a
personal one) their finished items used, how long since their last break, and which queue they work in.
`LOAD_FIELDS` is the whole vocabulary; tests check that nothing else reaches the page, the API or the socket.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Avg, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from core.roles import Role, has_role
from intake.models import ContentItem, Severity
from review.models import Queue
from wellbeing import own_data, rules, selectors
from wellbeing.models import (
    Department,
    ExposureEntry,
    OrganisationPolicy,
    QueuePolicy,
    Shift,
    Team,
    TeamMembership,
    TeamPolicy,
)

# ---- who sees which team ------------------------------------------------------------------------------------------


def teams_led_by(*, user: User) -> QuerySet[Team]:
    """Teams this user leads (named in Team.leads). Administrators are not leads of every team."""
    if not has_role(user, Role.TEAM_LEAD):
        return Team.objects.none()
    return Team.objects.filter(leads=user).select_related("department")


def team_for_lead(*, user: User, team_id: int) -> Team:
    """The team, if this user leads it; 404 otherwise (another team's existence is none of their business)."""
    team = teams_led_by(user=user).filter(pk=team_id).first()
    if team is None:
        raise Http404(gettext("No such team among the teams you lead."))
    return team


def teams_in_care_of(*, user: User) -> QuerySet[Team]:
    """Teams assigned to this occupational-health professional (wellbeing.health_access). Never a superuser's: an
    administrator does not hold OH access, whatever groups or teams they put themself in."""
    if user.is_superuser or not has_role(user, Role.OCCUPATIONAL_HEALTH):
        return Team.objects.none()
    return Team.objects.filter(health_staff=user).select_related("department")


def departments_in_care_of(*, user: User) -> list[tuple[Department, list[Team]]]:
    grouped: dict[int, tuple[Department, list[Team]]] = {}
    for team in teams_in_care_of(user=user).order_by("department__name", "name"):
        grouped.setdefault(team.department_id, (team.department, []))[1].append(team)
    return list(grouped.values())


def member_ids(*, teams: QuerySet[Team] | list[Team]) -> dict[int, int]:
    """reviewer id -> team id, for the given teams."""
    return dict(TeamMembership.objects.filter(team__in=teams).values_list("user_id", "team_id"))


def members_of(*, team: Team) -> list[User]:
    return list(User.objects.filter(team_membership__team=team, is_active=True).order_by("first_name", "username"))


def team_of(*, user_id: int) -> Team | None:
    membership = TeamMembership.objects.filter(user_id=user_id).select_related("team").first()
    return membership.team if membership is not None else None


def team_policy_of(*, team: Team) -> TeamPolicy:
    return TeamPolicy.objects.filter(team=team).first() or TeamPolicy(team=team)


# ---- queues: which are lighter ------------------------------------------------------------------------------------

HEAVINESS_DAYS = 28


def queue_heaviness(*, now: datetime | None = None) -> dict[int, int]:
    """How heavy each active queue's content is, as the average weight (0-100 %, severe = 100) of what was shown
    from it in the last four weeks, or of what waits in it when nothing was shown yet. A lead may move a reviewer
    only to a queue that is lighter by this measure."""
    now = now or timezone.now()
    org = OrganisationPolicy.objects.current()
    weights = {Severity.NONE: org.weight_none, Severity.LOW: org.weight_low, Severity.MEDIUM: org.weight_medium,
               Severity.SEVERE: 100}
    found: dict[int, int] = {}
    shown = (ExposureEntry.objects.filter(claimed_at__gte=now - timedelta(days=HEAVINESS_DAYS), queue__isnull=False)
             .values("queue").annotate(weight=Avg("weight_percent")))
    for row in shown:
        found[row["queue"]] = round(row["weight"])
    for queue_id in Queue.objects.filter(is_active=True).exclude(pk__in=list(found)).values_list("pk", flat=True):
        waiting = list(ContentItem.objects.filter(queue_id=queue_id, status=ContentItem.Status.READY)
                       .values_list("severity", flat=True)[:500])
        if waiting:
            found[queue_id] = round(sum(weights[Severity(s)] for s in waiting) / len(waiting))
    return found


def specialist_queue_ids() -> set[int]:
    return set(QueuePolicy.objects.exclude(specialist_category="").values_list("queue_id", flat=True))


def lighter_queues(*, current_queue_id: int | None, heaviness: dict[int, int] | None = None) -> list[Queue]:
    """Active queues lighter than the current one (any known non-specialist queue when there is no current one),
    lightest first. Specialist queues are never "lighter": working them is a specialist assignment."""
    heaviness = heaviness if heaviness is not None else queue_heaviness()
    ceiling = heaviness.get(current_queue_id) if current_queue_id is not None else None
    excluded = specialist_queue_ids()
    queues = [q for q in Queue.objects.filter(is_active=True).order_by("name")
              if q.pk != current_queue_id and q.pk not in excluded and q.pk in heaviness
              and (ceiling is None or heaviness[q.pk] < ceiling)]
    return sorted(queues, key=lambda q: (heaviness[q.pk], q.name))


# ---- the live load ------------------------------------------------------------------------------------------------


class State:
    REVIEWING = "reviewing"
    BREAK_DUE = "break_due"
    ON_BREAK = "on_break"
    OFF = "off"


STATE_WORDS = {State.REVIEWING: gettext_lazy("Reviewing"), State.BREAK_DUE: gettext_lazy("Reviewing, break due"),
               State.ON_BREAK: gettext_lazy("On break"), State.OFF: gettext_lazy("Off shift")}


@dataclass(frozen=True)
class ReviewerLoad:
    """One row of the live team view. Everything here may be shown to the lead; nothing else is."""

    reviewer_id: int
    name: str
    state: str
    state_text: str
    exposure_percent: int | None  # share of this shift's cap used by finished items
    exposure_step: int  # the same in 5 % steps, for the bar's width class (no inline styles under the CSP)
    exposure_level: str  # light / moderate / most / limit, as on the moderator's own gauge
    exposure_text: str
    since_break_text: str
    queue: str
    queue_id: int | None
    moved: bool
    can_send_on_break: bool
    can_move: bool
    can_end_shift: bool


LOAD_FIELDS = frozenset(ReviewerLoad.__dataclass_fields__)


@dataclass(frozen=True)
class TeamLoad:
    team: Team
    rows: list[ReviewerLoad]
    generated_at: datetime

    @property
    def on_shift(self) -> int:
        return sum(1 for row in self.rows if row.state != State.OFF)


def limits_seen_by_lead(*, reviewer: User | int) -> rules.EffectivePolicy:
    """The limits a lead's view measures a reviewer's load against: the organisation's and the team's. A reviewer's
    own stricter limits are private to them (and OH, in aggregate): measured against those, "39 % (4 min of 10 min)"
    would tell the lead that this person chose one, and which."""
    return rules.policy_combine([layer for layer in selectors.policy_layers(reviewer=reviewer)
                                 if layer.name != "personal"])


def _since_words(start: datetime, now: datetime) -> str:
    minutes = max(0, int((now - start).total_seconds() // 60))
    return gettext("%(duration)s (since %(time)s)") % {"duration": selectors.duration_words(minutes),
                                                       "time": selectors.clock(start, now=now)}


def reviewer_load(*, reviewer: User, now: datetime, heaviness: dict[int, int] | None = None) -> ReviewerLoad:
    shift = selectors.shift_open(reviewer_id=reviewer.pk)
    if shift is not None and now >= shift.ends_at:
        shift = None
    name = own_data.display_name(reviewer)
    if shift is None:
        return ReviewerLoad(reviewer.pk, name, State.OFF, str(STATE_WORDS[State.OFF]), None, 0, "light", "", "", "",
                            None, False, False, False, False)
    policy = selectors.policy_effective(reviewer=reviewer)
    holding = selectors.is_holding(reviewer_id=reviewer.pk, now=now)
    situation = selectors.break_situation(shift=shift, policy=policy, now=now, holding=holding)
    phase = situation.state.phase
    if phase == rules.Phase.ON_BREAK:
        state = State.ON_BREAK
        text = gettext("On break until %(now)s") % {"now": selectors.clock(situation.state.break_ends_at, now=now)}
        since = ""
    else:
        state = State.BREAK_DUE if phase in (rules.Phase.DUE, rules.Phase.FINISH_ITEM) else State.REVIEWING
        text = str(STATE_WORDS[state])
        since = _since_words(selectors.last_rest_end(shift=shift, now=now), now)
    team_limits = limits_seen_by_lead(reviewer=reviewer)
    gauge = selectors.Gauge(used_seconds=selectors.exposure_finished(shift=shift, policy=policy),
                            cap_seconds=team_limits.cap_seconds, near_percent=team_limits.near_cap_percent)
    queue_id = shift.queue_assigned_id or (ExposureEntry.objects.filter(shift=shift).order_by("-claimed_at")
                                           .values_list("queue_id", flat=True).first())
    queue_name = Queue.objects.filter(pk=queue_id).values_list("name", flat=True).first() if queue_id else None
    lighter = lighter_queues(current_queue_id=queue_id, heaviness=heaviness)
    return ReviewerLoad(
        reviewer_id=reviewer.pk,
        name=name,
        state=state,
        state_text=text,
        exposure_percent=round(gauge.share * 100),
        exposure_step=gauge.step,
        exposure_level=gauge.level,
        exposure_text=gettext("%(share)s %% of the shift's limit (%(used_words)s of %(cap_minutes)s)") % {
            "share": round(gauge.share * 100), "used_words": gauge.used_words,
            "cap_minutes": selectors.duration_words(gauge.cap_minutes)},
        since_break_text=since,
        queue=(queue_name or "") + (gettext(" (moved there)") if shift.queue_assigned_id else ""),
        queue_id=queue_id,
        moved=shift.queue_assigned_id is not None,
        can_send_on_break=state != State.ON_BREAK,
        can_move=not shift.queue_assigned_id and bool(lighter),
        can_end_shift=True,
    )


def team_load(*, team: Team, now: datetime | None = None) -> TeamLoad:
    now = now or timezone.now()
    heaviness = queue_heaviness(now=now)
    rows = [reviewer_load(reviewer=member, now=now, heaviness=heaviness) for member in members_of(team=team)]
    # On shift first, then by name: never by load, so the view is not a ranking.
    rows.sort(key=lambda row: (row.state == State.OFF, row.name.lower()))
    return TeamLoad(team=team, rows=rows, generated_at=now)


def load_payload(load: TeamLoad) -> dict[str, Any]:
    """The JSON the API and the socket send (exactly the fields of ReviewerLoad)."""
    return {
        "team": {"id": load.team.pk, "name": load.team.name},
        "generated_at": load.generated_at.isoformat(),
        "generated_at_text": selectors.clock(load.generated_at, now=load.generated_at),
        "on_shift": load.on_shift,
        "reviewers": [asdict(row) for row in load.rows],
    }


def shift_of(*, reviewer_id: int, now: datetime) -> Shift | None:
    shift = selectors.shift_open(reviewer_id=reviewer_id)
    return shift if shift is not None and now < shift.ends_at else None


# ---- who looked at a reviewer's individual data (shown to the reviewer) ------------------------------------------


