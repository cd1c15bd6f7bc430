"""`manage.py create_api_token USERNAME`: the API token a requester system submits items with.

Prints the key alone on stdout so it can be piped (`TOKEN=$(manage.py create_api_token acme-ingest)`); anything
else goes to stderr. The audit log records that a token was issued, never the token itself.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token

from core.audit import audit_record
from core.models import AuditEvent
from core.roles import Role


class Command(BaseCommand):
    help = (
        "Print the API token of a requester account (creating the token if needed) and put the account in the "
        "requester group. Only the key is printed, so the output can be piped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The requester's service account.")
        parser.add_argument("--create", action="store_true",
                            help="Create the account (with no password: it can only use its token) if it is missing.")
        parser.add_argument("--rotate", action="store_true",
                            help="Replace the account's token: the old key stops working at once.")

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"]
        with transaction.atomic():
            user = User.objects.select_for_update().filter(username=username).first()
            user_created = False
            if user is None:
                if not options["create"]:
                    raise CommandError(f"There is no user {username!r}. Pass --create to make it as a requester "
                                       "service account.")
                user = User.objects.create_user(username=username)  # no password given: unusable
                user_created = True
            user.groups.add(Group.objects.get(name=Role.REQUESTER.value))
            if options["rotate"]:
                Token.objects.filter(user=user).delete()
            token, token_created = Token.objects.get_or_create(user=user)
            outcome = "rotated" if options["rotate"] else "created" if token_created else "existing key shown"
            audit_record(action=AuditEvent.Action.TOKEN_CREATED, actor=None, user=username, outcome=outcome,
                         user_created=user_created)
        if not user.is_active:
            self.stderr.write(f"Warning: {username!r} is inactive, so this token will be refused until the account "
                              "is reactivated.")
        if not user.submittable_queues.exists():
            self.stderr.write(f"Note: {username!r} may not submit to any queue yet; add it to a queue's submitters "
                              "in the admin.")
        self.stdout.write(token.key)
