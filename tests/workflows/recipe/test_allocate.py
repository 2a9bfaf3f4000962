"""The allocator: never over budget, exact on small cases (against brute force), and honest about its gap."""

from __future__ import annotations

import itertools
import random

import pytest

from medcal_gui.workflows.recipe.allocate import BudgetTooSmall, Option, allocate, lower_hull, pareto


def _random_items(rng: random.Random, n: int, k: int) -> list[list[Option]]:
    items = []
    for _ in range(n):
        size = rng.randint(50, 400)
        opts = []
        for j in range(k):
            bpw = rng.choice([2.5, 3.4, 4.5, 5.5, 6.6, 8.5, 16.0])
            b = int(size * bpw) + rng.randint(0, 7) * 32
            err = size * rng.uniform(0.5, 2.0) * 2.0 ** (-bpw * rng.uniform(0.8, 1.2))
            opts.append(Option(f"T{j}", b, err))
        items.append(opts)
    return items


def _brute(items: list[list[Option]], budget: int) -> float:
    best = float("inf")
    for combo in itertools.product(*[range(len(o)) for o in items]):
        b = sum(items[i][c].bytes for i, c in enumerate(combo))
        if b <= budget:
            best = min(best, sum(items[i][c].error for i, c in enumerate(combo)))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_allocation_is_the_brute_force_optimum_and_within_budget(seed: int) -> None:
    rng = random.Random(seed)
    items = _random_items(rng, rng.randint(2, 6), rng.randint(2, 4))
    lo = sum(min(o.bytes for o in opts) for opts in items)
    hi = sum(max(o.bytes for o in opts) for opts in items)
    budget = rng.randint(lo, hi)
    a = allocate(items, budget)
    assert a.bytes == sum(items[i][c].bytes for i, c in enumerate(a.choice))
    assert a.bytes <= budget
    assert a.error == pytest.approx(sum(items[i][c].error for i, c in enumerate(a.choice)))
    assert a.optimal
    assert a.error == pytest.approx(_brute(items, budget), rel=1e-12)


def test_budget_that_fits_everything_takes_the_least_error_options() -> None:
    items = [[Option("a", 10, 5.0), Option("b", 20, 1.0)], [Option("a", 5, 3.0), Option("b", 9, 2.0)]]
    a = allocate(items, 10_000)
    assert a.choice == [1, 1] and a.bytes == 29 and a.error == 3.0


def test_exact_fit_uses_every_byte() -> None:
    # only the pair (20 + 9) fits 29 exactly; anything else wastes bytes or errs more
    items = [[Option("a", 10, 5.0), Option("b", 20, 1.0)], [Option("a", 5, 3.0), Option("b", 9, 2.0)]]
    a = allocate(items, 29)
    assert a.bytes == 29 and a.error == 3.0
    b = allocate(items, 28)
    assert b.bytes == 25 and b.error == 4.0  # 20 + 5


def test_budget_below_the_smallest_choice_says_what_the_smallest_is() -> None:
    items = [[Option("a", 10, 5.0), Option("b", 20, 1.0)], [Option("a", 5, 3.0)]]
    with pytest.raises(BudgetTooSmall) as e:
        allocate(items, 14)
    assert e.value.smallest == 15


def test_node_limit_reports_a_bound_below_the_answer() -> None:
    rng = random.Random(7)
    items = _random_items(rng, 60, 6)
    lo = sum(min(o.bytes for o in opts) for opts in items)
    hi = sum(max(o.bytes for o in opts) for opts in items)
    a = allocate(items, (lo + hi) // 2, max_nodes=5)
    assert a.bytes <= a.budget
    assert a.bound <= a.error
    full = allocate(items, (lo + hi) // 2)
    assert full.error <= a.error + 1e-12 and full.error >= a.bound - 1e-9


def test_pareto_and_hull_drop_dominated_and_concave_points() -> None:
    opts = [Option("a", 10, 10.0), Option("b", 20, 9.9), Option("c", 30, 1.0), Option("d", 25, 12.0)]
    front = pareto(opts)
    assert front == [0, 1, 2]  # d is bigger than a and worse
    assert lower_hull(opts, front) == [0, 2]  # b sits above the segment a-c
