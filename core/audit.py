"""The audit log's one writer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User

from core import compiled
from core.models import AuditEvent

if TYPE_CHECKING:
    from intake.models import ContentItem


def audit_record(
    *, action: str, actor: User | None = None, item: ContentItem | None = None, **data: Any
) -> AuditEvent:
    # AuditEvent.objects.create, its INSERT compiled once per process (every claim and decision writes one).
    return compiled.create("core.audit_event", AuditEvent, action=action, actor=actor, item=item, data=data)
