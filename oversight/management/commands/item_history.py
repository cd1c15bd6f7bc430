"""`manage.py item_history ITEM`: one item's story for an operator (an appeal, a requester's question, a stuck item).

What Django admin used to offer through the decision, claim and reveal changelists, without what made those a
per-person speed record: decisions with their policy, reason and time, the operational audit trail, and how many
times reviewers claimed and revealed it, never who or when.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count
from django.utils import timezone

from core.models import AuditEvent
from intake.admin import REVIEW_ACTIONS
from intake.models import ContentItem


def _when(moment: Any) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z") if moment else "-"


class Command(BaseCommand):
    help = "Show one item's decisions and operational audit trail (never which reviewer did what when)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("item", help="The item's id, or its external id with --external-id.")
        parser.add_argument("--external-id", action="store_true", help="ITEM is the requester's external id.")

    def handle(self, *args: Any, **options: Any) -> None:
        key = str(options["item"]).strip()
        if options["external_id"]:
            found = list(ContentItem.objects.filter(external_id=key).select_related("queue").order_by("id")[:2])
            if len(found) > 1:
                raise CommandError(f"More than one item has the external id {key!r}: give the item id instead.")
        elif key.isdigit():
            found = list(ContentItem.objects.filter(pk=int(key)).select_related("queue"))
        else:
            raise CommandError(f"{key!r} is not an item id (a number); use --external-id for a requester's id.")
        if not found:
            raise CommandError(f"There is no item {key!r}.")
        item = found[0]
        out = self.stdout
        out.write(f"Item {item.pk} · queue {item.queue.slug} · {item.get_status_display()}"
                  + (f" · external id {item.external_id}" if item.external_id else ""))
        out.write(f"Arrived {_when(item.created_at)}; {item.get_category_display()}, "
                  f"severity {item.get_severity_display()}.")
        decisions = list(item.decisions.select_related("policy").order_by("created_at", "id"))
        out.write("Decisions:" if decisions else "No decisions yet.")
        for decision in decisions:
            how = ("carried over" if decision.carried_over_from_id or decision.hash_list_id else "in review")
            state = "voided" if decision.voided_at else ("final" if decision.is_final else "not final")
            policy = f", policy {decision.policy.code}" if decision.policy else ""
            reason = f": {decision.reason}" if decision.reason else ""
            out.write(f"  {_when(decision.created_at)}  {decision.action}{policy} ({how}, {state}){reason}")
        trail = AuditEvent.objects.filter(item=item).exclude(action__in=REVIEW_ACTIONS).order_by("at", "id")
        out.write("Audit trail (operational):")
        for event in trail:
            out.write(f"  {_when(event.at)}  {event.get_action_display()}")
        counts = dict(AuditEvent.objects.filter(item=item, action__in=REVIEW_ACTIONS).values_list("action")
                      .annotate(n=Count("id")).values_list("action", "n"))
        summary = ", ".join(f"{AuditEvent.Action(action).label.lower()}: {n}" for action, n in sorted(counts.items()))
        out.write(f"Reviewers' actions (counts only; who and when are not shown): {summary or 'none'}.")
