"""Integrations hear of decisions through intake's signal: the layers below never import this app."""

from __future__ import annotations

from typing import Any

from intake.models import Decision
from intake.signals import decision_recorded


def _announce(sender: Any, *, decision: Decision, **kwargs: Any) -> None:
    from integrations.webhooks import decision_announce

    decision_announce(decision=decision)


def connect() -> None:
    decision_recorded.connect(_announce, sender=Decision, dispatch_uid="veil-webhook-decision")
