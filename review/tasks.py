from __future__ import annotations

from celery import shared_task

from review import services


@shared_task(name="review_queue.leases_expire")
def leases_expire() -> int:
    """Beat, every 15 s: items whose lease ran out return to their queue even when nobody claims (a crashed
    server, a closed laptop), so the lead's view and the queue counts agree with the items' state."""
    total = 0
    while True:
        expired = services.leases_expire()
        total += expired
        if expired < 500:  # leases_expire takes at most 500 a transaction
            return total
