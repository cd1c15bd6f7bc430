"""The team lead's live view of their team's load, and the actions that lighten it. Thin views: access checks and
writes are in oversight.team_selectors / oversight.team_services. A team that is not yours is a 404."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from core.errors import ReviewError
from core.roles import Role, role_required, signed_in
from oversight import team_selectors, team_services
from wellbeing import selectors
from wellbeing.models import DataAccess, LeadAction, OrganisationPolicy, Team
from wellbeing.views import _as_number

# (field, label, unit, seconds per unit)
TEAM_LIMIT_FIELDS = [
    ("exposure_cap_units", gettext_lazy("Exposure limit per shift"), "minutes", None),
    ("break_every", gettext_lazy("A break after every"), "minutes", 60),
    ("break_length", gettext_lazy("Break length"), "minutes", 60),
    ("cooldown", gettext_lazy("Pause after a severe item"), "seconds", 1),
    ("severe_per_hour", gettext_lazy("Most severe items in an hour"), "items", None),
    ("shift_length", gettext_lazy("Longest shift"), "hours", 3600),
]


@require_GET
@role_required(Role.TEAM_LEAD)
def teams(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    led = list(team_selectors.teams_led_by(user=user))
    if len(led) == 1:
        return redirect("lead-team", team_id=led[0].pk)
    return render(request, "lead/teams.html", {"teams": led})


def _limits(team: Team) -> list[dict[str, object]]:
    organisation = OrganisationPolicy.objects.current()
    current = team_selectors.team_policy_of(team=team)
    return [{"name": name, "label": label, "unit": gettext(unit),
             "organisation": _as_number(getattr(organisation, name), per),
             "team": _as_number(getattr(current, name), per)}
            for name, label, unit, per in TEAM_LIMIT_FIELDS]


@require_GET
@role_required(Role.TEAM_LEAD)
def dashboard(request: HttpRequest, team_id: int) -> HttpResponse:
    user = signed_in(request)
    team = team_selectors.team_for_lead(user=user, team_id=team_id)
    load = team_services.team_load_now(team=team)
    team_services.access_record(viewer=user, what=DataAccess.What.LEAD_PAGE, team=team,
                                subjects=[row.reviewer_id for row in load.rows])
    heaviness = team_selectors.queue_heaviness()
    choices = {row.reviewer_id: team_selectors.lighter_queues(current_queue_id=row.queue_id, heaviness=heaviness)
               for row in load.rows if row.can_move}
    recent = (LeadAction.objects.filter(team=team, at__gte=timezone.now() - timedelta(days=1))
              .select_related("lead", "subject")[:10])
    return render(request, "lead/dashboard.html", {
        "team": team,
        "load": load,
        "rows": [(row, choices.get(row.reviewer_id, [])) for row in load.rows],
        "generated_text": selectors.clock(load.generated_at),
        "limits": _limits(team),
        "recent": recent,
    })


@require_POST
@role_required(Role.TEAM_LEAD)
def act(request: HttpRequest, team_id: int, reviewer_id: int, action: str) -> HttpResponse:
    user = signed_in(request)
    team = team_selectors.team_for_lead(user=user, team_id=team_id)
    try:
        if action == "break":
            row = team_services.lead_send_on_break(lead=user, team=team, reviewer_id=reviewer_id)
            messages.success(request, gettext("Sent on a break until %(ends_at)s. Their console shows the break "
                                              "screen, and new items wait until it ends.") % {
                                                  "ends_at": selectors.clock(row.ends_at)})
        elif action == "move":
            shift = team_services.lead_move_to_queue(lead=user, team=team, reviewer_id=reviewer_id,
                                                     queue_id=int(request.POST.get("queue") or 0))
            messages.success(request, gettext("Moved to %(queue_assigned)s for the rest of the shift.") % {
                "queue_assigned": shift.queue_assigned})
        elif action == "end-shift":
            team_services.lead_end_shift(lead=user, team=team, reviewer_id=reviewer_id)
            messages.success(request, gettext("The shift has ended. They were told calmly, and new items stop now."))
        else:
            return HttpResponse(status=404)
    except ValueError:
        messages.error(request, "Choose one of the lighter queues offered.")
    except ReviewError as exc:
        if exc.status == 404:
            return HttpResponse(status=404)
        messages.error(request, exc.detail)
    return redirect("lead-team", team_id=team.pk)


@require_POST
@role_required(Role.TEAM_LEAD)
def tighten(request: HttpRequest, team_id: int) -> HttpResponse:
    user = signed_in(request)
    team = team_selectors.team_for_lead(user=user, team_id=team_id)
    values: dict[str, object] = {}
    try:
        for name, _label, _unit, per in TEAM_LIMIT_FIELDS:
            raw = request.POST.get(name, "").strip()
            if raw:
                number = int(raw)
                values[name] = timedelta(seconds=number * per) if per else number
        team_services.team_policy_tighten(lead=user, team=team, values=values)
    except ValueError:
        messages.error(request, "Use whole numbers, or leave a box empty to keep the current setting.")
    except ReviewError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, gettext("Saved: the team's limits apply from everyone's next item."))
    return redirect("lead-team", team_id=team.pk)
