"""The floor of "the wellbeing gate inside PostgreSQL": Veil's claim statements in one PL/pgSQL function call.

Not a claim path Veil has, and not one to ship: a measurement for a design question (docs/benchmarks.md,
Claiming). The saturation target (>= 50 % of a raw SKIP LOCKED claim) is out of reach for Veil's Python gate, and
the design left open is moving the gate into the database as a function, one call per claim. Before anyone writes
the cap and break rules a second time in PL/pgSQL, this measures the best that design could do: a function that
runs the very statements Veil's claim runs on PostgreSQL (the reviewer's shift lock, the gate's one-statement
read, and the claim statement that leases the item and writes the claim, its audit event, its exposure
reservation and the settlement of the item finished before), generated from the same SQL text, with the same
prepared plans, in one round trip and one transaction without BEGIN and COMMIT round trips. What it leaves out is
the rules' arithmetic (policy layers, break phases, cap headroom: microseconds of PL/pgSQL against the
milliseconds of the statements) and every rare branch: no shift yet, a held lease, several unsettled items, a
refusal. For those it returns NULL and the caller runs Veil's own `item_claim`, timed like the rest.

The organisation's policy stands in for the combined layers (the bench reviewers have no other layer), read once
when the function is created.
"""

from __future__ import annotations

import re

FUNCTION = "veil_bench_claim_floor"


def _positional(sql: str, expressions: list[str]) -> str:
    """Replace the `%s` placeholders of `sql`, in order, with PL/pgSQL expressions."""
    parts = sql.split("%s")
    if len(parts) - 1 != len(expressions):
        raise ValueError(f"{len(parts) - 1} placeholders, {len(expressions)} expressions")
    out = [parts[0]]
    for expression, part in zip(expressions, parts[1:], strict=True):
        out.extend([f"({expression})", part])
    return "".join(out)


def function_sql() -> str:
    from django.conf import settings

    from moderation.models import AuditEvent, ContentItem, Severity
    from review_queue import services as claims
    from review_queue.models import Claim
    from wellbeing import gate_reads, rules
    from wellbeing import services as wellbeing
    from wellbeing.models import OrganisationPolicy

    org = OrganisationPolicy.objects.filter(pk=OrganisationPolicy.SINGLETON_PK).first() or OrganisationPolicy()
    columns = 26 + sum(len(gate_reads._layer_fields(model)) for _n, model, _a in gate_reads.LAYERS)
    gate = gate_reads._sql()
    for name, expression in (("reviewer", "p_reviewer"), ("queue", "p_queue"), ("shift", "v_shift"),
                             ("now", "p_now"), ("hour_ago", "p_now - interval '1 hour'")):
        gate = gate.replace(f"%({name})s", f"({expression})")
    if re.search(r"%\(|%s", gate):
        raise ValueError("the gate's read has a placeholder this floor does not know")
    shift_lock = _positional(wellbeing._shift_lock_sql(), ["p_reviewer"])
    batch = claims._Batch(benign_only=False, order=("created_at", "id"))
    # The claim statement's placeholders, in the order `_claim_in_one_statement` binds them.
    lease = ["'" + ContentItem.Status.IN_REVIEW.value + "'", "p_reviewer", "v_expires",
             "p_queue", "'" + ContentItem.Status.READY.value + "'", "p_reviewer", str(int(Severity.SEVERE)),
             "'" + ContentItem.Status.READY.value + "'",
             "p_queue", "p_reviewer", "p_now", "v_expires", "'" + Claim.Outcome.OPEN.value + "'",
             "p_now", "p_reviewer", "'" + AuditEvent.Action.CLAIMED.value + "'", "v_expires::text",
             "p_reviewer", "v_shift", "p_queue", "p_now", str(org.item_seconds_max), "v_day", "v_week",
             str(org.weight_none), str(org.weight_low), str(org.weight_medium)]
    settle = ["v_gate.c19", "v_screen", "0", "0", "v_counted", "v_exposure", "v_gate.c16"]
    with_settle = _positional(claims._claim_sql(batch=batch, excluded=0, settles=True), settle + lease)
    without = _positional(claims._claim_sql(batch=batch, excluded=0, settles=False), lease)
    names = ", ".join(f"c{n}" for n in range(1, columns + 1))
    policy = rules.policy_combine([rules.PolicyLayer.from_model("organisation", org)])
    cap, reserve = policy.cap_seconds, policy.reserve_for(Severity.SEVERE)  # the gate's own arithmetic
    zone = settings.TIME_ZONE.replace("'", "")
    return f"""
CREATE OR REPLACE FUNCTION {FUNCTION}(p_reviewer bigint, p_queue bigint, p_now timestamptz, p_lease_seconds int)
RETURNS bigint[] LANGUAGE plpgsql AS $fn$
DECLARE
  -- v_ names: the statements' own aliases are c, e, r, u, ...
  v_lock record; v_gate record; v_claim bigint; v_audited bigint; v_exposed bigint; v_item bigint;
  v_shift bigint; v_expires timestamptz; v_day date; v_week date;
  v_screen int; v_counted int; v_exposure int; v_used bigint;
BEGIN
  SELECT * INTO v_lock FROM ({shift_lock}) AS locked;
  IF v_lock.id IS NULL OR p_now >= v_lock.ends_at THEN RETURN NULL; END IF;  -- a shift to start or end: Veil's gate
  v_shift := v_lock.id;
  SELECT * INTO v_gate FROM ({gate}) AS x({names});
  IF v_gate.c1 IS NOT NULL OR v_gate.c8 > 1 OR (v_gate.c8 = 1 AND v_gate.c16 IS NULL) OR v_gate.c22 > 0
     OR v_gate.c23 THEN
    RETURN NULL;  -- a held lease, several unsettled items, reveals to count, expired leases: Veil's gate
  END IF;
  v_expires := p_now + make_interval(secs => p_lease_seconds);
  v_day := (p_now AT TIME ZONE '{zone}')::date;
  v_week := v_day - (extract(isodow FROM v_day)::int - 1);
  v_used := COALESCE(v_gate.c2, 0);
  IF v_gate.c16 IS NOT NULL THEN
    v_screen := ceil(extract(epoch FROM v_gate.c19 - v_gate.c18))::int;
    v_counted := least(greatest(v_screen, {org.item_seconds_min}), {org.item_seconds_max});
    v_exposure := (v_counted * v_gate.c20 + 99) / 100;
    v_used := v_used - v_gate.c21 + v_exposure;
  END IF;
  IF {cap} - v_used < {reserve} THEN RETURN NULL; END IF;  -- near or at the cap: Veil's gate says what is offered
  IF v_gate.c16 IS NOT NULL THEN
    {with_settle.strip()} INTO v_claim, v_audited, v_exposed, v_item;  -- then leased.*: id first
  ELSE
    {without.strip()} INTO v_claim, v_audited, v_exposed, v_item;  -- then leased.*: id first
  END IF;
  IF v_claim IS NULL THEN RETURN ARRAY[0, 0]::bigint[]; END IF;
  RETURN ARRAY[v_claim, v_item]::bigint[];
END
$fn$
"""


def install() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(function_sql())


CALL = f"SELECT {FUNCTION}(%s, %s, %s, %s)"


def claim(user_id: int, queue_id: int, *, request_loads: bool) -> tuple[int, int] | None:
    """One claim through the function, in autocommit (one round trip, one transaction), and Veil's after-commit push;
    Veil's own path in the benchmark (request loads and `item_claim`) where the function defers to the gate."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from benchmarks.claim import _veil_claim
    from config import db
    from review_queue import realtime
    from review_queue.models import Queue

    lease_seconds = 600
    if request_loads:  # as Veil's path in the benchmark: a request loads its user and the queue
        User.objects.get(pk=user_id)
        lease_seconds = Queue.objects.get(pk=queue_id).lease_duration_seconds
    row = db.fetchone(CALL, [user_id, queue_id, timezone.now(), lease_seconds])
    found = row[0] if row else None
    if found is None:  # a shift's first claim, the rare branches: Veil's path (one claim a claimer a phase)
        return _veil_claim(user_id, queue_id)
    claim_id, item_id = found
    if not claim_id:
        return None
    realtime.queue_counts_changed(queue_ids=[queue_id])
    return int(item_id), int(claim_id)
