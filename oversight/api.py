"""JSON endpoints for the live team view and the OH report (token or session authentication, role-checked,
audited like the pages). Same selectors and services as the pages; errors in the API's one shape."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import ApiError
from core.errors import ReviewError
from core.roles import HasRole, Role, signed_in
from oversight import reports, team_selectors, team_services
from oversight.health_views import QUERY_KEYS, _scope
from review.serializers import ErrorSerializer
from wellbeing.models import DataAccess

ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 403, 404, 409)}
ACTIONS = ("break", "move", "end-shift")


class TeamLoad(APIView):
    """Where each reviewer of your team stands now. No decision counts, speed, accuracy or check-in data."""

    permission_classes = [HasRole.for_roles(Role.TEAM_LEAD)]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **ERRORS}, operation_id="lead_team_load")
    def get(self, request: Request, team_id: int) -> Response:
        user = signed_in(request)
        team = team_selectors.team_for_lead(user=user, team_id=team_id)
        load = team_services.team_load_now(team=team)
        team_services.access_record(viewer=user, what=DataAccess.What.LEAD_API, team=team,
                                    subjects=[row.reviewer_id for row in load.rows])
        return Response(team_selectors.load_payload(load), headers={"Cache-Control": "no-store"})


class TeamAction(APIView):
    """Send a reviewer of your team on a break, move them to a lighter queue (`{"queue": id}`), or end their shift
    early. Audited; the reviewer's console is told."""

    permission_classes = [HasRole.for_roles(Role.TEAM_LEAD)]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT, **ERRORS},
                   operation_id="lead_team_action")
    def post(self, request: Request, team_id: int, reviewer_id: int, action: str) -> Response:
        user = signed_in(request)
        team = team_selectors.team_for_lead(user=user, team_id=team_id)
        if action not in ACTIONS:
            raise ApiError("unknown_action", gettext("Actions are %(actions)s.") % {"actions": ', '.join(ACTIONS)}, 404)
        data: Any = request.data
        try:
            if action == "break":
                team_services.lead_send_on_break(lead=user, team=team, reviewer_id=reviewer_id)
            elif action == "move":
                team_services.lead_move_to_queue(lead=user, team=team, reviewer_id=reviewer_id,
                                                 queue_id=int(data.get("queue") or 0))
            else:
                team_services.lead_end_shift(lead=user, team=team, reviewer_id=reviewer_id)
        except (TypeError, ValueError):
            raise ApiError("invalid", gettext("Give the queue as its id."), 400) from None
        except ReviewError as exc:
            raise ApiError.from_refusal(exc) from None
        load = team_services.team_load_now(team=team)
        return Response(team_selectors.load_payload(load), headers={"Cache-Control": "no-store"})


class HealthReport(APIView):
    """The exposure report of a department's teams assigned to you, for a period (`period=week&start=`,
    `period=month&month=YYYY-MM`, `period=custom&start=&end=`). Suppressed figures carry no value."""

    permission_classes = [HasRole.for_roles(Role.OCCUPATIONAL_HEALTH)]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **ERRORS}, operation_id="health_report")
    def get(self, request: Request, department_id: int) -> Response:
        user = signed_in(request)
        department, teams, focus = _scope(user, department_id, request.query_params.get("team"))
        params = {key: request.query_params.get(key, "") for key in QUERY_KEYS}
        try:
            period = reports.period_from(params, today=timezone.localdate())
        except reports.PeriodError as exc:
            raise ApiError("invalid_period", str(exc), 400) from None
        built = reports.build_report(department=department, teams=teams, period=period, focus=focus)
        team_services.access_record(viewer=user, what=DataAccess.What.REPORT_API, team=focus,
                                    department=department, period=(period.start, period.end))
        return Response(reports.report_payload(built), headers={"Cache-Control": "no-store"})
