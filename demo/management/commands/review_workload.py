"""`manage.py review_workload`: the review workload per queue and day, for capacity planning. Never per person.

What operators looked up in the decision and claim changelists of Django admin, as counts: items that arrived,
final decisions (in review and carried over), escalations, second opinions, leases that ran out, and what waits now.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.models import AuditEvent
from intake.models import ContentItem, Decision
from review.models import Queue

COLUMNS = ("arrived", "decided", "carried_over", "escalated", "second_opinion", "lease_expired")


def _per_queue_and_day(rows: QuerySet[Any], *, at: str, queue: str) -> list[dict[str, Any]]:
    tz = timezone.get_current_timezone()
    return list(rows.annotate(day=TruncDate(at, tzinfo=tz), in_queue=F(queue)).values("in_queue", "day")
                .annotate(n=Count("id")).order_by())


class Command(BaseCommand):
    help = "Items arrived, decided, escalated and waiting, per queue and day (never per person)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=7, help="How many days back, today included (1-366).")
        parser.add_argument("--queue", default="", help="Only this queue (its slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        days = int(options["days"])
        if not 1 <= days <= 366:
            raise CommandError("--days must be between 1 and 366.")
        queues = list(Queue.objects.order_by("slug"))
        if options["queue"]:
            queues = [q for q in queues if q.slug == options["queue"]]
            if not queues:
                raise CommandError(f"There is no queue {options['queue']!r}.")
        ids = [q.pk for q in queues]
        today = timezone.localdate()
        first_day = today - timedelta(days=days - 1)
        since = timezone.make_aware(datetime.combine(first_day, datetime.min.time()))
        table: dict[tuple[int, date], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))

        def add(column: str, rows: list[dict[str, Any]]) -> None:
            for row in rows:
                table[(row["in_queue"], row["day"])][column] += row["n"]

        add("arrived", _per_queue_and_day(ContentItem.objects.filter(queue__in=ids, created_at__gte=since),
                                          at="created_at", queue="queue_id"))
        decisions = Decision.objects.filter(item__queue__in=ids, created_at__gte=since)
        carried = Q(carried_over_from__isnull=False) | Q(hash_list__isnull=False)
        for column, rule in (("decided", Q(is_final=True) & ~carried), ("carried_over", Q(is_final=True) & carried),
                             ("escalated", Q(action=Decision.Action.ESCALATE)),
                             ("second_opinion", Q(action=Decision.Action.SECOND_OPINION))):
            add(column, _per_queue_and_day(decisions.filter(rule), at="created_at", queue="item__queue_id"))
        expired = AuditEvent.objects.filter(action=AuditEvent.Action.LEASE_EXPIRED, item__queue__in=ids,
                                            at__gte=since)
        add("lease_expired", _per_queue_and_day(expired, at="at", queue="item__queue_id"))

        out = self.stdout
        out.write("queue\tday\t" + "\t".join(COLUMNS))
        for queue in queues:
            for offset in range(days):
                day = first_day + timedelta(days=offset)
                row = table.get((queue.pk, day), dict.fromkeys(COLUMNS, 0))
                out.write(f"{queue.slug}\t{day.isoformat()}\t" + "\t".join(str(row[c]) for c in COLUMNS))
        now = dict(ContentItem.objects.filter(queue__in=ids).values("queue_id").order_by()
                   .annotate(n=Count("id", filter=Q(status=ContentItem.Status.READY))).values_list("queue_id", "n"))
        escalated = dict(ContentItem.objects.filter(queue__in=ids, status=ContentItem.Status.ESCALATED)
                         .values("queue_id").order_by().annotate(n=Count("id")).values_list("queue_id", "n"))
        out.write("")
        for queue in queues:
            out.write(f"{queue.slug}: {now.get(queue.pk, 0)} waiting, {escalated.get(queue.pk, 0)} escalated, now")
