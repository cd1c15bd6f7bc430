"""Review hears of breaks through wellbeing's signal: wellbeing never imports review."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from core.errors import ReviewError
from review.models import Claim
from review.services import item_release
from wellbeing.signals import viewing_stopped


def give_back_held(sender: Any, *, reviewer: User, **kwargs: Any) -> int:
    """A break stops all viewing: the item in hand goes back to its queue for someone else (its exposure is settled
    up to now; the break is not counted as time on screen), and a reveal still open ends now."""
    given_back = 0
    for claim in Claim.objects.filter(reviewer=reviewer, ended_at__isnull=True).select_related("item"):
        try:
            item_release(item=claim.item, reviewer=reviewer)
        except ReviewError:
            continue  # its lease was taken back meanwhile: nothing left to give back
        given_back += 1
    return given_back


def connect() -> None:
    viewing_stopped.connect(give_back_held, dispatch_uid="veil-break-gives-back")
