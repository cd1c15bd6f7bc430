"""Pushes to the live team view. Like core.realtime: state changes happen in the request path, this only
says "something changed for this team"; each lead's socket then reads the team's load again (oversight.lead_consumer).

The nudge carries no data at all, so nothing about a reviewer travels through the channel layer.
"""

from __future__ import annotations

from core import realtime
from wellbeing.models import TeamMembership


def team_group(team_id: int) -> str:
    return f"team.{team_id}"


def team_changed(*, team_id: int) -> bool:
    return realtime.push(team_group(team_id), {"type": "team.changed"}, coalesce=True)


def reviewer_changed(*, reviewer_id: int) -> bool:
    """A reviewer's shift, break or exposure changed: tell their team's live view, if they have a team."""

    team_id = TeamMembership.objects.filter(user_id=reviewer_id).values_list("team_id", flat=True).first()
    return team_changed(team_id=team_id) if team_id is not None else False
