"""Small-group suppression for reports, pure (no database): which cells of a table must not be shown.

Primary: a cell aggregating fewer than `k` people (VEIL_MIN_GROUP_SIZE, default 5, the COPSOQ survey practice) is
hidden. Complementary: a table also shows totals, and a total minus the shown cells of its group gives back a hidden
cell. So every group (cells that add up to a total, say the team rows of one metric and the department total, or
the severities of one row and the row's total) is one linear equation; while any equation has exactly one hidden
cell, the next smallest shown cell of that equation is hidden too (or the total, when no other cell can be). The
loop runs until nothing changes, and `derivable` then checks the result exactly by linear algebra, over every
equation at once, so chains across rows and columns are caught as well; anything still derivable (not seen in
practice for row/column tables) makes the audit hide further cells until nothing is.

Cells with nobody in them (an empty team) are structural zeros: everybody can tell they are zero, so they are
neither hidden nor used to protect a neighbour.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)


class Reason(StrEnum):
    PRIMARY = "primary"  # fewer than k people
    COMPLEMENTARY = "complementary"  # hidden so that a primary one cannot be worked out


@dataclass(frozen=True)
class Cell:
    value: float
    people: int  # distinct people whose data the cell aggregates (for periods: the smallest weekly count)


@dataclass(frozen=True)
class Group(Generic[K]):
    """`total` is the sum of `members` (when the table shows such a total; None when it does not)."""

    members: tuple[K, ...]
    total: K | None = None

    @property
    def cells(self) -> tuple[K, ...]:
        return (*self.members, self.total) if self.total is not None else self.members


def suppress(cells: Mapping[K, Cell], groups: Sequence[Group[K]], *, k: int) -> dict[K, Reason]:
    """The cells to hide, each with why. Deterministic: ties are broken by people, then by the key's order."""
    hidden: dict[K, Reason] = {key: Reason.PRIMARY for key, cell in cells.items() if 0 < cell.people < k}
    order = {key: n for n, key in enumerate(cells)}
    while True:
        _complete_groups(cells, groups, hidden, order)
        leaking = derivable(cells, groups, hidden)
        if not leaking:
            return hidden
        # Not expected for row/column tables; hide the smallest shown cell next to each leak and check again.
        for key in sorted(leaking, key=order.__getitem__):
            for group in groups:
                if key in group.cells:
                    pick = _smallest_shown(cells, group.cells, hidden, order)
                    if pick is not None:
                        hidden[pick] = Reason.COMPLEMENTARY
                        break
            else:
                continue
            break
        else:
            return hidden  # nothing left to hide (cannot happen while a leak has a shown neighbour)


def _complete_groups(cells: Mapping[K, Cell], groups: Sequence[Group[K]], hidden: dict[K, Reason],
                     order: Mapping[K, int]) -> None:
    changed = True
    while changed:
        changed = False
        for group in groups:
            in_group = [key for key in group.cells if key in cells]
            if sum(1 for key in in_group if key in hidden) != 1:
                continue
            pick = _smallest_shown(cells, group.members, hidden, order)
            if pick is None and group.total is not None and group.total not in hidden and group.total in cells:
                pick = group.total
            if pick is None:
                # Only structural zeros are left: the one hidden cell equals the total minus zeros. Hide the total.
                pick = next((key for key in in_group if key not in hidden), None)
            if pick is not None:
                hidden[pick] = Reason.COMPLEMENTARY
                changed = True


def _smallest_shown(cells: Mapping[K, Cell], keys: Sequence[K], hidden: Mapping[K, Reason],
                    order: Mapping[K, int]) -> K | None:
    candidates = [key for key in keys if key in cells and key not in hidden and cells[key].people > 0]
    if not candidates:
        return None
    return min(candidates, key=lambda key: (cells[key].value, cells[key].people, order[key]))


def derivable(cells: Mapping[K, Cell], groups: Sequence[Group[K]], hidden: Mapping[K, Reason]) -> set[K]:
    """Hidden cells whose value follows from the shown ones through the group equations (exactly: a hidden cell is
    determined when its unit vector lies in the row space of the equations restricted to the hidden cells)."""
    unknown = [key for key in cells if key in hidden]
    if not unknown:
        return set()
    column = {key: n for n, key in enumerate(unknown)}
    rows = []
    for group in groups:
        if group.total is None:
            continue  # without a shown or hidden total there is no equation
        row = np.zeros(len(unknown))
        for key in group.members:
            if key in column:
                row[column[key]] += 1.0
        if group.total in column:
            row[column[group.total]] -= 1.0
        if row.any():
            rows.append(row)
    if not rows:
        return set()
    matrix = np.array(rows)
    rank = np.linalg.matrix_rank(matrix)
    found: set[K] = set()
    for key, n in column.items():
        unit = np.zeros(len(unknown))
        unit[n] = 1.0
        if np.linalg.matrix_rank(np.vstack([matrix, unit])) == rank:
            found.add(key)
    return found
