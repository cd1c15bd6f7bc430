"""`manage.py health_access`: the one way to make someone occupational health for a team, or to end it.

    manage.py health_access grant USERNAME --team "Night crew" --by dpo --reason "New OH nurse"
    manage.py health_access end USERNAME --team "Night crew" --by dpo
    manage.py health_access list

Each change is recorded (who, for which team, authorised by whom, when, why) and the team's members see who can read
their check-ins, and since when, on their wellbeing page. A superuser can neither hold the access nor be made to.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ReviewError
from wellbeing import health_access
from wellbeing.models import HealthAccessGrant, Team


def _user(username: str, what: str) -> User:
    found = User.objects.filter(username=username).first()
    if found is None:
        raise CommandError(f"There is no account {username!r} ({what}).")
    return found


def _team(name: str) -> Team:
    teams = list(Team.objects.filter(name=name).select_related("department"))
    if not teams and name.isdigit():
        teams = list(Team.objects.filter(pk=int(name)).select_related("department"))
    if len(teams) != 1:
        known = ", ".join(f"{t.pk}: {t}" for t in Team.objects.select_related("department")[:50])
        raise CommandError(f"{'No' if not teams else 'More than one'} team is called {name!r}; give its name or id "
                           f"({known or 'no teams yet'}).")
    return teams[0]


class Command(BaseCommand):
    help = "Grant or end occupational-health access to a team (audited, shown to the team's members), or list it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["grant", "end", "list"])
        parser.add_argument("username", nargs="?", help="the occupational-health account (grant, end)")
        parser.add_argument("--team", help="team name or id (grant, end)")
        parser.add_argument("--by", help="the account authorising the change, recorded with it (grant, end)")
        parser.add_argument("--reason", default="", help="why, recorded with it")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            for grant in HealthAccessGrant.objects.filter(ended_at__isnull=True).select_related(
                    "team__department", "staff", "granted_by").order_by("team__name", "staff__username"):
                granter = grant.granted_by.username if grant.granted_by else "-"
                self.stdout.write(f"{grant.team}: {grant.staff.username} since {grant.granted_at:%Y-%m-%d %H:%M} "
                                  f"(by {granter}, {grant.how})")
            return
        if not options["username"] or not options["team"] or not options["by"]:
            raise CommandError("grant and end need USERNAME, --team and --by.")
        staff = _user(options["username"], "the occupational-health account")
        team = _team(options["team"])
        by = _user(options["by"], "the account authorising the change")
        try:
            if options["action"] == "grant":
                grant = health_access.health_access_grant(team=team, staff=staff, granted_by=by,
                                                          reason=options["reason"])
                self.stdout.write(self.style.SUCCESS(
                    f"{staff.username} is occupational health for {team} since {grant.granted_at:%Y-%m-%d %H:%M}; "
                    "the team's members see it on their wellbeing page."))
            else:
                ended = health_access.health_access_end(team=team, staff=staff, ended_by=by, reason=options["reason"])
                self.stdout.write(self.style.SUCCESS(
                    f"Ended {staff.username}'s access to {team}." if ended else
                    f"{staff.username} had no access to {team}; nothing changed."))
        except ReviewError as exc:
            raise CommandError(exc.detail) from None
