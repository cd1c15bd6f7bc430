"""Single-row reads of the claim path, compiled once per process (core.compiled) instead of on every claim.

Each is the queryset it replaces, run through `compiled.first`; building and compiling these small querysets cost
more Python than the rest of their claim-path work (about 1 ms each, measured in issue 23).
"""

from __future__ import annotations

from core import compiled
from wellbeing.models import OrganisationPolicy, QueuePolicy


def organisation_policy() -> OrganisationPolicy:
    """`OrganisationPolicy.objects.current()`: the stored row, or the defaults when nobody saved one (not saved)."""
    found = compiled.first("wellbeing.organisation_policy", OrganisationPolicy,
                           lambda *, pk: OrganisationPolicy.objects.filter(pk=pk), pk=OrganisationPolicy.SINGLETON_PK)
    return found or OrganisationPolicy(pk=OrganisationPolicy.SINGLETON_PK)


def queue_policy(*, queue_id: int) -> QueuePolicy | None:
    """`QueuePolicy.objects.filter(queue=queue).first()`."""
    return compiled.first("wellbeing.queue_policy", QueuePolicy,
                          lambda *, queue_id: QueuePolicy.objects.filter(queue_id=queue_id), queue_id=queue_id)
