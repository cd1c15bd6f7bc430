"""Small-group suppression (oversight/suppression.py): primary (< k people) and complementary (nothing hidden can
be worked out from totals or neighbouring cells), checked exactly by linear algebra, on hand-made and random
tables."""

from __future__ import annotations

import random
from typing import Any

import pytest

from oversight.suppression import Cell, Group, Reason, derivable, suppress

K = 5


def one_column(sizes: dict[str, int], values: dict[str, float] | None = None) -> tuple[dict[str, Cell],
                                                                                     list[Group[str]]]:
    """Team rows of one figure and their department total."""
    values = values or {name: float(size * 10) for name, size in sizes.items()}
    cells = {name: Cell(values[name], size) for name, size in sizes.items()}
    cells["total"] = Cell(sum(values.values()), sum(sizes.values()))
    return cells, [Group(tuple(sizes), "total")]


def test_a_team_of_4_in_a_department_of_9_hides_both_teams_and_keeps_the_total():
    cells, groups = one_column({"team of 4": 4, "team of 5": 5})
    hidden = suppress(cells, groups, k=K)
    assert hidden == {"team of 4": Reason.PRIMARY, "team of 5": Reason.COMPLEMENTARY}
    assert "total" not in hidden and derivable(cells, groups, hidden) == set()


def test_without_complementary_suppression_the_small_team_could_be_worked_out():
    cells, groups = one_column({"team of 4": 4, "team of 5": 5})
    assert derivable(cells, groups, {"team of 4": Reason.PRIMARY}) == {"team of 4"}


def test_the_next_smallest_sibling_is_the_one_hidden_with_it():
    cells, groups = one_column({"a": 3, "b": 9, "c": 6, "d": 12},
                               values={"a": 30.0, "b": 80.0, "c": 20.0, "d": 95.0})
    hidden = suppress(cells, groups, k=K)
    assert hidden == {"a": Reason.PRIMARY, "c": Reason.COMPLEMENTARY}  # c has the smallest value of the rest


def test_two_small_teams_protect_each_other():
    cells, groups = one_column({"a": 3, "b": 4, "c": 8})
    assert suppress(cells, groups, k=K) == {"a": Reason.PRIMARY, "b": Reason.PRIMARY}


def test_a_single_team_department_hides_the_total_with_its_only_team():
    cells, groups = one_column({"only": 4})
    hidden = suppress(cells, groups, k=K)
    assert set(hidden) == {"only", "total"}


def test_an_empty_team_is_a_known_zero_and_cannot_protect_a_neighbour():
    cells, groups = one_column({"small": 3, "empty": 0, "big": 7}, values={"small": 5.0, "empty": 0.0, "big": 1.0})
    hidden = suppress(cells, groups, k=K)
    assert "empty" not in hidden and hidden["big"] == Reason.COMPLEMENTARY
    assert derivable(cells, groups, hidden) == set()


def test_groups_large_enough_show_everything():
    cells, groups = one_column({"a": 5, "b": 7, "c": 12})
    assert suppress(cells, groups, k=K) == {}


def test_rows_and_columns_together_are_safe():
    """Teams x severities with row totals, column totals and a grand total: hiding a cell in a column forces more
    hiding in its row, and so on, until no equation has a single unknown."""
    people = {"a": 9, "b": 6, "c": 7}
    # Severe items reached few people in team a, and low items few in team b.
    reached = {("a", "severe"): 3, ("b", "low"): 2}
    columns = ["none", "low", "severe"]
    cells: dict[Any, Cell] = {}
    rng = random.Random(4)
    for team, size in people.items():
        for col in columns:
            cells[(team, col)] = Cell(float(rng.randint(10, 90)), reached.get((team, col), size))
        cells[(team, "all")] = Cell(sum(cells[(team, c)].value for c in columns), size)
    for col in [*columns, "all"]:
        cells[("total", col)] = Cell(sum(cells[(t, col)].value for t in people), sum(people.values()))
    groups = [Group(tuple((t, col) for t in people), ("total", col)) for col in [*columns, "all"]]
    groups += [Group(tuple((row, c) for c in columns), (row, "all")) for row in [*people, "total"]]
    hidden = suppress(cells, groups, k=K)
    assert hidden[("a", "severe")] == hidden[("b", "low")] == Reason.PRIMARY
    assert derivable(cells, groups, hidden) == set()
    for group in groups:  # no equation is left with exactly one unknown
        assert sum(1 for key in group.cells if key in hidden) != 1


@pytest.mark.parametrize("seed", range(40))
def test_random_tables_never_leak(seed):
    rng = random.Random(seed)
    rows = [f"t{n}" for n in range(rng.randint(1, 6))]
    cols = [f"c{n}" for n in range(rng.randint(1, 5))]
    cells: dict[Any, Cell] = {}
    for row in rows:
        size = rng.choice([0, 1, 3, 4, 5, 6, 9, 14])
        for col in cols:
            cells[(row, col)] = Cell(float(rng.randint(0, 50)), rng.randint(min(size, 1), size) if size else 0)
        cells[(row, "all")] = Cell(sum(cells[(row, c)].value for c in cols), size)
    for col in [*cols, "all"]:
        cells[("total", col)] = Cell(sum(cells[(r, col)].value for r in rows), sum(cells[(r, "all")].people
                                                                                    for r in rows))
    groups = [Group(tuple((r, col) for r in rows), ("total", col)) for col in [*cols, "all"]]
    groups += [Group(tuple((row, c) for c in cols), (row, "all")) for row in [*rows, "total"]]
    hidden = suppress(cells, groups, k=K)
    assert all(key in hidden for key, cell in cells.items() if 0 < cell.people < K)
    assert derivable(cells, groups, hidden) == set()


def test_the_result_is_deterministic():
    cells, groups = one_column({"a": 3, "b": 8, "c": 8}, values={"a": 1.0, "b": 7.0, "c": 7.0})
    first = suppress(cells, groups, k=K)
    assert all(suppress(cells, groups, k=K) == first for _ in range(5))
    assert first == {"a": Reason.PRIMARY, "b": Reason.COMPLEMENTARY}
