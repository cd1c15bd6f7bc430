"""Writes for teams: what a team lead may do about a reviewer's load, the team's stricter limits, a reviewer's
consent to individual OH follow-up, and the audit of who looked at what.

Every lead action goes through the same machinery the reviewer's own actions use (wellbeing.services: the break,
the shift, the claim gate), is audited (LeadAction, PolicyChange), and only ever lightens the load: a lead can send
someone on a break, move them to a lighter queue, end their shift early, or tighten the team's limits, and
nothing else. Access checks (is this your team, is this your team member) happen here too, so the API, the page
and any later caller get the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from core import realtime as console_realtime
from core.errors import ReviewError
from core.i18n import language_of
from oversight import team_selectors
from wellbeing import own_data, realtime, rules, selectors, services
from wellbeing.models import (
    Break,
    DataAccess,
    Department,
    LeadAction,
    OrganisationPolicy,
    PolicyChange,
    Shift,
    Team,
    TeamMembership,
    TeamPolicy,
)


def _refused(code: str, detail: str, status: int = 409) -> ReviewError:
    return ReviewError(code, detail, status=status)


def _member(*, team: Team, reviewer_id: int) -> User:
    """A member of the lead's team, or 404: a lead acts on their own team only."""
    membership = TeamMembership.objects.filter(team=team, user_id=reviewer_id).select_related("user").first()
    if membership is None:
        raise _refused("not_found", gettext("There is no such reviewer in this team."), status=404)
    return membership.user


def _on_shift(reviewer: User, now: datetime) -> Shift:
    shift = team_selectors.shift_of(reviewer_id=reviewer.pk, now=now)
    if shift is None:
        raise _refused("not_on_shift", gettext("%(reviewer)s is not on a shift right now.") % {
            "reviewer": own_data.display_name(reviewer)})
    return shift


def _tell(reviewer_id: int, event: str, message: str) -> None:
    """A calm sentence for the reviewer's open consoles, once committed (static/veil/team.js shows it)."""

    def send() -> None:
        console_realtime.notify_user(user_id=reviewer_id, event=event, message=message)

    transaction.on_commit(send)


def lead_send_on_break(*, lead: User, team: Team, reviewer_id: int, now: datetime | None = None) -> Break:
    """Send a reviewer on a break through the same break machinery as their own: their console gets the push
    and claims are refused until it ends. When a scheduled break is due it is that break."""
    now = now or timezone.now()
    reviewer = _member(team=team, reviewer_id=reviewer_id)
    _on_shift(reviewer, now)
    if selectors.break_state(reviewer_id=reviewer.pk, now=now).phase == rules.Phase.ON_BREAK:
        raise _refused("on_break", gettext("%(reviewer)s is already on a break.") % {
            "reviewer": own_data.display_name(reviewer)})
    with transaction.atomic():
        row = services.break_start(reviewer=reviewer, now=now, sent_by=lead)
        LeadAction.objects.create(at=now, lead=lead, team=team, subject=reviewer, action=LeadAction.Action.BREAK,
                                  detail={"break_id": row.pk, "ends_at": row.ends_at.isoformat() if row.ends_at
                                          else None})
    return row


def lead_move_to_queue(*, lead: User, team: Team, reviewer_id: int, queue_id: int,
                       now: datetime | None = None) -> Shift:
    """Move a reviewer to a lighter queue for the rest of their shift: the claim gate then offers items from that
    queue only. Refused for a queue that is not lighter than the one they work in, and for specialist queues."""
    now = now or timezone.now()
    reviewer = _member(team=team, reviewer_id=reviewer_id)
    shift = _on_shift(reviewer, now)
    if shift.queue_assigned_id is not None:
        raise _refused("already_moved", gettext("This reviewer was already moved for this shift."))
    current = (shift.exposure.order_by("-claimed_at").values_list("queue_id", flat=True).first())
    allowed = {q.pk: q for q in team_selectors.lighter_queues(current_queue_id=current)}
    target = allowed.get(queue_id)
    if target is None:
        raise _refused("not_lighter", gettext("Choose one of the lighter queues offered: a move may only lighten the "
                                              "load."),
                       status=400)
    with transaction.atomic():
        locked = Shift.objects.select_for_update().get(pk=shift.pk)
        locked.queue_assigned = target
        locked.save(update_fields=["queue_assigned"])
        LeadAction.objects.create(at=now, lead=lead, team=team, subject=reviewer, action=LeadAction.Action.MOVE,
                                  detail={"from_queue": current, "to_queue": target.pk, "to_queue_name": target.name})
        with translation.override(language_of(reviewer)):  # the reviewer's language, not the lead's
            _tell(reviewer.pk, "queue.moved", gettext(
                "Your team lead moved you to %(name)s for the rest of this shift, to lighten the load. Take the next "
                "item from there when you are ready.") % {"name": target.name})
        transaction.on_commit(lambda: realtime.team_changed(team_id=team.pk))
    return locked


def lead_end_shift(*, lead: User, team: Team, reviewer_id: int, now: datetime | None = None) -> Shift:
    """End a reviewer's shift early. A running break is recorded as cut short; the rest period starts now."""
    now = now or timezone.now()
    reviewer = _member(team=team, reviewer_id=reviewer_id)
    _on_shift(reviewer, now)
    with transaction.atomic():
        shift = services.shift_end(reviewer=reviewer, now=now, by_lead=True)
        if shift is None:
            raise _refused("not_on_shift", gettext("%(reviewer)s is not on a shift right now.") % {
                "reviewer": own_data.display_name(reviewer)})
        LeadAction.objects.create(at=now, lead=lead, team=team, subject=reviewer,
                                  action=LeadAction.Action.END_SHIFT, detail={"shift_id": shift.pk})
        with translation.override(language_of(reviewer)):
            _tell(reviewer.pk, "shift.ended_by_lead", gettext(
                "Your team lead ended your shift early, to protect your rest. Finish or give back the item in hand; "
                "there are no new items today. Thank you."))
    return shift


def team_load_now(*, team: Team, now: datetime | None = None) -> team_selectors.TeamLoad:
    """The team's live load, after recording any break that began by itself since anyone looked: the view then
    reads breaks from the record, as every other page does, and cannot contradict itself."""
    now = now or timezone.now()
    for reviewer_id in TeamMembership.objects.filter(team=team).values_list("user_id", flat=True):
        services.breaks_catch_up(reviewer_id=reviewer_id, now=now)
    return team_selectors.team_load(team=team, now=now)


# ---- the team's limits: stricter only ------------------------------------------------------------------------------


def _validate_bounds(values: Mapping[str, Any]) -> None:
    problems = services.policy_bound_problems(values=values)
    if problems:
        raise _refused("invalid_limit", next(iter(problems.values())), status=400)


def team_policy_tighten(*, lead: User, team: Team, values: Mapping[str, Any],
                        now: datetime | None = None) -> TeamPolicy:
    """A lead tightens their team's limits. Every value given must be at least as strict as what applies to the
    team now (the organisation's, tightened by the team's); an empty value leaves a setting as it is. Loosening is
    for administrators, in Django admin, and never past the organisation's policy."""
    now = now or timezone.now()
    proposed = {name: values.get(name) for name in services.TEAM_FIELDS if values.get(name) is not None}
    _validate_bounds(proposed)
    with transaction.atomic():
        policy = TeamPolicy.objects.select_for_update().filter(team=team).first() or TeamPolicy(team=team)
        before = services._snapshot(policy, services.TEAM_FIELDS) if policy.pk else {}
        organisation = OrganisationPolicy.objects.current()
        current = rules.policy_combine([rules.PolicyLayer.from_model("organisation", organisation),
                                        rules.PolicyLayer.from_model("team", policy)])
        looser = [name for name, value in proposed.items()
                  if rules.STRICTER[name](getattr(current, name), value) != value
                  and value != getattr(current, name)]
        if looser:
            words = ", ".join(f"{name.replace('_', ' ')} (now {rules.describe(getattr(current, name))})"
                              for name in looser)
            raise _refused("not_stricter", gettext("A team's limits can only be tightened here: %(words)s. Ask an "
                                                   "administrator to loosen them.") % {"words": words}, status=400)
        for name, value in proposed.items():
            setattr(policy, name, value)
        policy.save()
        services._audit(layer=PolicyChange.Layer.TEAM, by=lead, before=before,
                        after=services._snapshot(policy, services.TEAM_FIELDS), now=now, team=team)
        services._schedule_changed(team)
    return policy


# ---- consent to individual follow-up ------------------------------------------------------------------------------


# ---- the access audit ----------------------------------------------------------------------------------------------


def access_record(*, viewer: User, what: str, team: Team | None = None, department: Department | None = None,
                  period: tuple[date, date] | None = None, subjects: Iterable[int] = (),
                  now: datetime | None = None) -> int:
    """Record a look at team or individual data: one row, plus one per person whose individual data was shown (so
    each of them sees it on their own page). Returns the number of rows written."""
    now = now or timezone.now()
    start, end = period if period is not None else (None, None)
    common = {"at": now, "viewer": viewer, "what": what, "team": team, "department": department,
              "period_start": start, "period_end": end}
    people = sorted(set(subjects))
    rows = [DataAccess(**common, subject_id=person) for person in people] or [DataAccess(**common)]
    DataAccess.objects.bulk_create(rows)
    return len(rows)
