"""The claim gate's reads in one statement: everything `services.claim_gate` needs to decide, under the shift lock.

The gate used to ask ~20 small questions (four policy layers, exposure sums, severe items in the last hour, breaks,
what is unsettled, ...), one query each, on every claim. Claiming is the hottest path Veil has, and on a small
machine the round trips and the ORM's Python around them were most of its cost (docs/benchmarks.md, Claiming).
Here they are one SELECT of scalar subqueries and LEFT JOINs, written once in SQL that SQLite and PostgreSQL both
run, and turned into plain Python values; the rules that decide stay in `services` and `rules`.

Run it *after* locking the reviewer's shift row, in a statement of its own: in READ COMMITTED a statement sees what
was committed when it started, so reading in the same statement that waited for the lock could miss a concurrent
claim's reservation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from typing import Any

from django.db import connection, models
from django.utils.dateparse import parse_datetime, parse_time

from config import db
from moderation.models import Category, ContentItem, RevealEvent, Severity
from review_queue.models import Claim
from wellbeing import rules
from wellbeing.models import (
    Break,
    ExposureEntry,
    OrganisationPolicy,
    PersonalPolicy,
    QueuePolicy,
    TeamMembership,
    TeamPolicy,
)

# The policy layers as `selectors.policy_layers` builds them: (name, model, SQL alias), organisation first.
LAYERS: tuple[tuple[str, type[models.Model], str], ...] = (
    ("organisation", OrganisationPolicy, "op"),
    ("queue", QueuePolicy, "qp"),
    ("team", TeamPolicy, "tp"),
    ("personal", PersonalPolicy, "pp"),
)


def _layer_fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    names = {f.name for f in model._meta.concrete_fields}
    return [model._meta.get_field(name) for name in rules.POLICY_FIELDS if name in names]  # type: ignore[misc]


@dataclass(frozen=True)
class Unsettled:
    """The one finished, unsettled ledger entry the gate settles without another read (the common case)."""

    entry_id: int
    claim_id: int
    claimed_at: datetime
    claim_ended_at: datetime
    weight_percent: int
    reserved: int
    reveal_count: int


@dataclass(frozen=True)
class GateSnapshot:
    held_claim_id: int | None
    layers: list[rules.PolicyLayer]
    opted_out: frozenset[str]  # the reviewer's opted-out categories, less this queue's specialist category
    team_id: int | None
    # Of the shift (zero/None without one):
    spoken_for: int  # settled exposure + open reservations, weighted seconds
    break_rows: int
    # The item finished last in this shift: (when, entry id, severity), settled or not.
    last_finished: tuple[datetime, int, int] | None
    # Of the reviewer, across shifts:
    severe_last_hour: int
    severe_oldest: datetime | None
    last_severe_end: datetime | None
    unsettled_count: int  # finished items not settled yet
    unsettled_without_claim: int  # ... whose claim is gone (content purged)
    unsettled: Unsettled | None
    expired_leases_in_queue: bool

    @property
    def policy(self) -> rules.EffectivePolicy:
        return rules.policy_combine(self.layers)

    @property
    def last_activity(self) -> datetime | None:
        return self.last_finished[0] if self.last_finished else None

    @property
    def last_finished_severity(self) -> int | None:
        return self.last_finished[2] if self.last_finished else None


def _table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@cache
def _sql() -> str:
    entry, claim, brk = _table(ExposureEntry), _table(Claim), _table(Break)
    reveal, item, member = _table(RevealEvent), _table(ContentItem), _table(TeamMembership)
    quote = connection.ops.quote_name
    policy_columns = ", ".join(
        f"{alias}.{quote(str(f.column))}" for _name, model, alias in LAYERS for f in _layer_fields(model)
    )
    # Finished but not settled: few rows at any time (the gate settles them), found through a partial index.
    # Settled entries carry their end themselves (settling copies the claim's end), so every "last end" below is
    # the larger of an indexed look-up among settled entries and one among the unsettled.
    unsettled = (f"{entry} e JOIN {claim} c ON c.id = e.claim_id WHERE e.reviewer_id = %(reviewer)s "
                 f"AND e.exposure IS NULL AND c.ended_at IS NOT NULL")
    # Constants are written into the text, not bound: the prepared statement soon runs on a generic plan (planned
    # once, for any parameter values), and a generic plan cannot use what it does not know. With the status bound,
    # the expired-lease EXISTS below guessed a third of all items were in review and walked the whole items table
    # looking for one (1.5 ms a claim at 10,000 items; docs/benchmarks.md); with 'in_review' written in, it looks
    # in the lease-expiry index.
    severe, organisation = int(Severity.SEVERE), int(OrganisationPolicy.SINGLETON_PK)
    in_review = "'" + ContentItem.Status.IN_REVIEW.value + "'"
    in_last_hour = (f"e.reviewer_id = %(reviewer)s AND e.severity = {severe} AND e.claimed_at > %(hour_ago)s "
                    "AND e.claimed_at <= %(now)s")
    # Every name below comes from the models; every value other than the constants above is a bound parameter.
    return f"""
SELECT
  (SELECT c.id FROM {claim} c WHERE c.reviewer_id = %(reviewer)s AND c.ended_at IS NULL AND c.expires_at > %(now)s
    ORDER BY c.claimed_at DESC LIMIT 1),
  (SELECT SUM(COALESCE(e.exposure, e.reserved)) FROM {entry} e WHERE e.shift_id = %(shift)s),
  (SELECT COUNT(*) FROM {brk} b WHERE b.shift_id = %(shift)s),
  (SELECT COUNT(*) FROM {entry} e WHERE {in_last_hour}),
  (SELECT MIN(e.claimed_at) FROM {entry} e WHERE {in_last_hour}),
  (SELECT MAX(e.ended_at) FROM {entry} e WHERE e.reviewer_id = %(reviewer)s AND e.severity = {severe}),
  (SELECT MAX(c.ended_at) FROM {unsettled} AND e.severity = {severe}),
  (SELECT COUNT(*) FROM {entry} e LEFT JOIN {claim} c ON c.id = e.claim_id WHERE e.reviewer_id = %(reviewer)s
    AND e.exposure IS NULL AND (e.claim_id IS NULL OR c.ended_at IS NOT NULL)),
  (SELECT COUNT(*) FROM {entry} e WHERE e.reviewer_id = %(reviewer)s AND e.exposure IS NULL AND e.claim_id IS NULL),
  ls.severity, ls.finished, ls.id, lu.severity, lu.finished, lu.id,
  u.id, u.claim_id, u.claimed_at, u.claim_ended_at, u.weight_percent, u.reserved,
  (SELECT COUNT(*) FROM {reveal} r WHERE r.claim_id = u.claim_id),
  EXISTS (SELECT 1 FROM {item} i WHERE i.status = {in_review} AND i.lease_expires_at <= %(now)s
    AND i.queue_id = %(queue)s),
  m.team_id, pp.opted_out_categories, qp.specialist_category,
  {policy_columns}
FROM (SELECT 1 AS one) base
LEFT JOIN (
  SELECT e.severity, e.ended_at AS finished, e.id FROM {entry} e
  WHERE e.shift_id = %(shift)s AND e.ended_at IS NOT NULL ORDER BY e.ended_at DESC, e.id DESC LIMIT 1
) ls ON 1 = 1
LEFT JOIN (
  SELECT e.severity, c.ended_at AS finished, e.id FROM {unsettled} AND e.shift_id = %(shift)s
  ORDER BY c.ended_at DESC, e.id DESC LIMIT 1
) lu ON 1 = 1
LEFT JOIN (
  SELECT e.id, e.claim_id, e.claimed_at, c.ended_at AS claim_ended_at, e.weight_percent, e.reserved
  FROM {unsettled} ORDER BY e.id LIMIT 1
) u ON 1 = 1
LEFT JOIN {_table(OrganisationPolicy)} op ON op.id = {organisation}
LEFT JOIN {_table(QueuePolicy)} qp ON qp.queue_id = %(queue)s
LEFT JOIN {member} m ON m.user_id = %(reviewer)s
LEFT JOIN {_table(TeamPolicy)} tp ON tp.team_id = m.team_id
LEFT JOIN {_table(PersonalPolicy)} pp ON pp.user_id = %(reviewer)s
"""  # noqa: S608


def _fetch_row(sql: str, params: dict[str, Any]) -> tuple[Any, ...]:
    """On PostgreSQL a server-side prepared statement (config.db): planning this query costs more than running it."""
    row = db.fetchone(sql, params)
    assert row is not None  # the FROM clause is one row
    return row


# ---- turning what the driver returns into Python values (SQLite returns text and integers) -------------------------


def _datetime(value: Any) -> datetime | None:
    """SQLite keeps UTC without a zone, as text (or a naive datetime where it knows the column's type)."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else parse_datetime(str(value))
    if parsed is None:
        raise ValueError(f"not a datetime: {value!r}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _duration(value: Any) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(microseconds=int(value))


def _time(value: Any) -> time | None:
    if value is None or isinstance(value, time):
        return value
    return parse_time(str(value))


def _field_value(field: models.Field[Any, Any], value: Any) -> Any:
    if value is None:
        return None
    kind = field.get_internal_type()
    if kind == "DurationField":
        return _duration(value)
    if kind == "TimeField":
        return _time(value)
    if kind == "BooleanField":
        return bool(value)
    return value


def _latest(*values: Any) -> datetime | None:
    found = [d for d in (_datetime(v) for v in values) if d is not None]
    return max(found) if found else None


def _later(*candidates: tuple[Any, Any, Any]) -> tuple[datetime, int, int] | None:
    """The later of (finished, id, severity) rows, as `ORDER BY finished DESC, id DESC` would pick."""
    found = [(d, int(pk), int(severity)) for d, pk, severity in ((_datetime(f), i, s) for f, i, s in candidates)
             if d is not None]
    return max(found) if found else None


def _adapt(moment: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(moment)


def gate_snapshot(*, reviewer_id: int, queue_id: int, shift_id: int | None, now: datetime) -> GateSnapshot:
    """Read everything the claim gate decides on. Call with the reviewer's shift row locked (when there is one)."""
    params = {
        "reviewer": reviewer_id, "queue": queue_id, "shift": shift_id, "now": _adapt(now),
        "hour_ago": _adapt(now - timedelta(hours=1)),
    }
    row = _fetch_row(_sql(), params)
    (held, spoken, break_rows, severe_count, severe_oldest, settled_severe_end, unsettled_severe_end,
     unsettled_count, unsettled_orphans, ls_severity, ls_finished, ls_id, lu_severity, lu_finished, lu_id, u_id,
     u_claim, u_claimed_at, u_claim_end, u_weight, u_reserved, u_reveals, expired_leases, team_id, opted_out_raw,
     specialist) = row[:26]
    policy_values = iter(row[26:])
    layers: list[rules.PolicyLayer] = []
    for name, model, _alias in LAYERS:
        fields = _layer_fields(model)
        values = {f.name: _field_value(f, next(policy_values)) for f in fields}
        if name == "organisation":
            if all(v is None for v in values.values()):  # nobody has saved one yet: the defaults
                values = {f.name: f.get_default() for f in fields}
        elif name == "team" and team_id is None:
            continue
        layers.append(rules.PolicyLayer(name, values))
    # A layer row that does not exist (no queue/team/personal policy) reads as all-NULL: nothing set, no effect,
    # exactly as if it were left out.
    if isinstance(opted_out_raw, str):
        opted_out_raw = json.loads(opted_out_raw)
    opted_out = {c for c in (opted_out_raw or []) if c in Category.values}
    opted_out.discard(specialist or "")
    unsettled = None
    if u_id is not None:
        claimed_at, claim_end = _datetime(u_claimed_at), _datetime(u_claim_end)
        assert claimed_at is not None and claim_end is not None
        unsettled = Unsettled(u_id, u_claim, claimed_at, claim_end, u_weight, u_reserved, int(u_reveals))
    return GateSnapshot(
        held_claim_id=held,
        layers=layers,
        opted_out=frozenset(opted_out),
        team_id=team_id,
        spoken_for=int(spoken or 0),
        break_rows=int(break_rows),
        last_finished=_later((ls_finished, ls_id, ls_severity), (lu_finished, lu_id, lu_severity)),
        severe_last_hour=int(severe_count),
        severe_oldest=_datetime(severe_oldest),
        last_severe_end=_latest(settled_severe_end, unsettled_severe_end),
        unsettled_count=int(unsettled_count),
        unsettled_without_claim=int(unsettled_orphans),
        unsettled=unsettled,
        expired_leases_in_queue=bool(expired_leases),
    )
