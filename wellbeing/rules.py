"""Pure rules, no database: how policy layers combine, how much an item counts, and where a break stands.

Kept apart from services and selectors so the same arithmetic decides at claim time (under the shift lock) and
explains itself on the page and over the websocket, and so it can be tested without a clock or a database.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any

from django.utils.translation import gettext

from intake.models import Severity

# ---- policy layers -------------------------------------------------------------------------------------------------

Stricter = Callable[[Any, Any], Any]


def _lower(a: Any, b: Any) -> Any:
    return min(a, b)


def _higher(a: Any, b: Any) -> Any:
    return max(a, b)


def _earlier_cutoff(a: time | None, b: time | None) -> time | None:
    # No cut-off is the loosest value, so any cut-off is stricter than none.
    if a is None or b is None:
        return a or b
    return min(a, b)


def _later_start(a: time | None, b: time | None) -> time | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


# Every field a layer may set, and which way is stricter. A later layer's value is used only where it is stricter,
# so the order of layers never matters and no layer can loosen another.
STRICTER: dict[str, Stricter] = {
    "shift_length": _lower,
    "day_cutoff": _earlier_cutoff,
    "day_start": _later_start,
    "rest_between_shifts": _higher,
    "exposure_cap_units": _lower,
    "weight_none": _higher,
    "weight_low": _higher,
    "weight_medium": _higher,
    "severe_per_hour": _lower,
    "cooldown": _higher,
    "break_every": _lower,
    "break_length": _higher,
    "break_window": _lower,
    "interleave_benign": _higher,
    "near_cap_percent": _lower,
}
# These define the unit of measurement rather than how much is safe: only the organisation sets them.
ORGANISATION_ONLY = ("item_seconds_min", "item_seconds_max", "reveal_extra_percent")
POLICY_FIELDS = (*STRICTER, *ORGANISATION_ONLY)


@dataclass(frozen=True)
class PolicyLayer:
    """One layer of policy: its name ("organisation", "queue", "team", "personal") and the values it sets
    (None = not set)."""

    name: str
    values: Mapping[str, Any]

    @classmethod
    def from_model(cls, name: str, obj: Any) -> PolicyLayer:
        return cls(name, {f: getattr(obj, f) for f in POLICY_FIELDS if hasattr(obj, f)})


@dataclass(frozen=True)
class EffectivePolicy:
    shift_length: timedelta
    day_cutoff: time | None
    day_start: time | None
    rest_between_shifts: timedelta
    exposure_cap_units: int
    weight_none: int
    weight_low: int
    weight_medium: int
    severe_per_hour: int
    cooldown: timedelta
    break_every: timedelta
    break_length: timedelta
    break_window: timedelta
    interleave_benign: bool
    near_cap_percent: int
    item_seconds_min: int
    item_seconds_max: int
    reveal_extra_percent: int
    # Which layer each value came from, for "why is my limit this?" on the page.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def cap_seconds(self) -> int:
        """The cap in weighted seconds (the ledger's unit)."""
        return self.exposure_cap_units * 60

    def weight(self, severity: int) -> int:
        return {
            Severity.NONE: self.weight_none,
            Severity.LOW: self.weight_low,
            Severity.MEDIUM: self.weight_medium,
        }.get(Severity(severity), 100)

    def reserve_for(self, severity: int) -> int:
        """The most an item of this severity can count for: what a claim reserves."""
        return weighted(self.item_seconds_max, self.weight(severity))


def policy_combine(layers: Sequence[PolicyLayer]) -> EffectivePolicy:
    """Combine layers, organisation first. The organisation's layer must set every field; every later layer
    (queue, team, personal) only ever tightens. A future team layer slots in anywhere in the list."""
    if not layers:
        raise ValueError("policy_combine needs at least the organisation's layer")
    base, *overrides = layers
    values = {name: base.values[name] for name in POLICY_FIELDS}
    sources = dict.fromkeys(POLICY_FIELDS, base.name)
    for layer in overrides:
        for name, stricter in STRICTER.items():
            proposed = layer.values.get(name)
            if proposed is None:
                continue
            combined = stricter(values[name], proposed)
            if combined != values[name]:
                values[name] = combined
                sources[name] = layer.name
    # Keep weights rising with severity (a layer may raise one weight alone): then "everything up to severity s"
    # is exactly what fits a given headroom, which is how the gate narrows the offer.
    values["weight_low"] = max(values["weight_low"], values["weight_none"])
    values["weight_medium"] = max(values["weight_medium"], values["weight_low"])
    return EffectivePolicy(**values, sources=sources)


def looser_than(override: Any, organisation: Any) -> dict[str, str]:
    """Fields where an override would loosen the organisation's policy, with a sentence for each."""
    errors: dict[str, str] = {}
    for name, stricter in STRICTER.items():
        proposed = getattr(override, name, None)
        if proposed is None or not hasattr(organisation, name):
            continue
        current = getattr(organisation, name)
        if stricter(current, proposed) != proposed and proposed != current:
            errors[name] = gettext("Only a stricter value is allowed here; the organisation's is %(current)s.") % {
                "current": describe(current)}
    return errors


def describe(value: Any) -> str:
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        if seconds % 3600 == 0 and seconds:
            return f"{seconds // 3600} h"
        if seconds % 60 == 0 and seconds:
            return f"{seconds // 60} min"
        return f"{seconds} s"
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value)


# ---- exposure ----------------------------------------------------------------------------------------------------


def weighted(seconds: int, weight_percent: int) -> int:
    """Weighted seconds, rounded up: the ledger never under-counts."""
    return -(-seconds * weight_percent // 100)


def counted_seconds(*, screen_seconds: float, reveal_seconds: float, policy: EffectivePolicy) -> int:
    """Time on screen as counted: claim to decision, plus extra for every second of the clear image, bounded."""
    raw = screen_seconds + reveal_seconds * policy.reveal_extra_percent / 100
    return int(min(max(math.ceil(raw), policy.item_seconds_min), policy.item_seconds_max))


# ---- breaks ------------------------------------------------------------------------------------------------------


class Phase(StrEnum):
    OFF_SHIFT = "off_shift"  # no open shift: nothing is scheduled
    WORKING = "working"  # a break falls due at due_at
    RESTED = "rested"  # nothing open for at least a break's length: the work stretch restarts with the next item
    DUE = "due"  # due now; claiming goes on until window_ends_at, the moderator chooses the moment
    FINISH_ITEM = "finish_item"  # the window has passed: finish the item in hand, then the break starts
    ON_BREAK = "on_break"


@dataclass(frozen=True)
class BreakState:
    phase: Phase
    due_at: datetime | None = None
    window_ends_at: datetime | None = None
    break_starts_at: datetime | None = None
    break_ends_at: datetime | None = None
    voluntary: bool = False
    # ON_BREAK computed from the schedule but not recorded yet (the gate records it; reads only describe it).
    starts_automatically: bool = False
    # The next moment this state changes by the clock alone (what the websocket consumer waits for).
    next_change_at: datetime | None = None

    @property
    def claiming_allowed(self) -> bool:
        return self.phase in (Phase.OFF_SHIFT, Phase.WORKING, Phase.RESTED, Phase.DUE)


@dataclass(frozen=True)
class BreakSpan:
    started_at: datetime
    ends_at: datetime  # effective end: planned, or earlier if cut short
    voluntary: bool


def work_stretch_start(
    *, shift_started_at: datetime, rested_at: datetime | None, breaks: Sequence[BreakSpan], policy: EffectivePolicy,
    now: datetime,
) -> datetime:
    """When the current stretch of work began: shift start, the end of the last full break, or the last idle rest.

    A break shorter than a full scheduled break (a voluntary one cut short) does not restart the stretch: it never
    costs the moderator their scheduled break."""
    candidates = [shift_started_at]
    if rested_at is not None:
        candidates.append(rested_at)
    candidates.extend(
        b.ends_at for b in breaks if b.ends_at <= now and b.ends_at - b.started_at >= policy.break_length
    )
    return max(candidates)


def break_phase(
    *, policy: EffectivePolicy, work_since: datetime, last_activity: datetime | None, holding: bool,
    active: BreakSpan | None, now: datetime,
) -> BreakState:
    """Where the reviewer stands in the break schedule at `now`.

    Every `break_every` of work a break of `break_length` falls due. The moderator may go on working for
    `break_window` and start it when it suits them; after the window claiming stops, and the break starts when the
    item in hand is finished (or at once). Time with nothing open for a full break's length counts as rest.
    """
    if active is not None and active.started_at <= now < active.ends_at:
        return BreakState(Phase.ON_BREAK, break_starts_at=active.started_at, break_ends_at=active.ends_at,
                          voluntary=active.voluntary, next_change_at=active.ends_at)
    last = max(work_since, last_activity) if last_activity is not None else work_since
    idle_enough = not holding and now - last >= policy.break_length
    due = work_since + policy.break_every
    window_ends = due + policy.break_window
    if now < window_ends:
        if idle_enough:
            return BreakState(Phase.RESTED, due_at=due if now >= due else None)
        if now < due:
            return BreakState(Phase.WORKING, due_at=due, next_change_at=due)
        return BreakState(Phase.DUE, due_at=due, window_ends_at=window_ends, next_change_at=window_ends)
    if holding:
        return BreakState(Phase.FINISH_ITEM, due_at=due, window_ends_at=window_ends)
    if window_ends - last >= policy.break_length:
        # Already idle for a full break when the window closed: that was the break.
        return BreakState(Phase.RESTED, due_at=due)
    starts = max(window_ends, last)
    ends = starts + policy.break_length
    if now < ends:
        return BreakState(Phase.ON_BREAK, due_at=due, window_ends_at=window_ends, break_starts_at=starts,
                          break_ends_at=ends, starts_automatically=True, next_change_at=ends)
    # That break has passed while nothing was claimed: it was taken, and the reviewer is rested.
    return BreakState(Phase.RESTED, due_at=due, break_starts_at=starts, break_ends_at=ends)
