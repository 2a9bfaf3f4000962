"""Choose one option (a quant type: bytes, error) per tensor to minimise the total error under a byte budget.

This is the multiple-choice knapsack problem. The method is exact: branch and bound, whose bound at every
node is the linear relaxation over the remaining tensors (each tensor's lower convex hull of its
size/error options, walked in order of error saved per byte: the Lagrangian relaxation's optimum), and
whose first incumbent is the relaxation's integer part filled up greedily with the bytes it left. A node
limit keeps the worst case bounded; when it is reached the answer says so and carries the gap to the
relaxation's bound, so the result is always optimal or provably within `gap` of it. Never over budget.

Pure maths: no Qt, no model, no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MAX_NODES = 200_000


class BudgetTooSmall(ValueError):
    """Even the smallest option of every item does not fit the budget."""

    def __init__(self, smallest: int, budget: int) -> None:
        super().__init__(f"the smallest choice takes {smallest} bytes, the budget is {budget}")
        self.smallest = smallest
        self.budget = budget


@dataclass(frozen=True)
class Option:
    label: str
    bytes: int
    error: float


@dataclass
class Allocation:
    choice: list[int]  # per item, the index into its options as given
    bytes: int
    error: float
    bound: float  # no allocation within the budget has less error than this
    optimal: bool  # the search finished: `error` is the optimum
    nodes: int
    budget: int
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        return max(0.0, self.error - self.bound)


def pareto(options: Sequence[Option]) -> list[int]:
    """Indices of the options no other option beats on both bytes and error, by bytes ascending."""
    order = sorted(range(len(options)), key=lambda i: (options[i].bytes, options[i].error))
    kept: list[int] = []
    for i in order:
        if kept and options[i].error >= options[kept[-1]].error:
            continue  # as big or bigger and no better
        kept.append(i)
    return kept


def lower_hull(options: Sequence[Option], front: Sequence[int]) -> list[int]:
    """The lower convex hull of the Pareto front (indices into `options`), by bytes ascending."""
    hull: list[int] = []
    for i in front:
        while len(hull) >= 2:
            a, b = options[hull[-2]], options[hull[-1]]
            c = options[i]
            # drop b when it lies on or above the segment a-c
            if (b.error - a.error) * (c.bytes - a.bytes) >= (c.error - a.error) * (b.bytes - a.bytes):
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


class _Problem:
    """The items in branching order, their fronts, and the relaxation's segments sorted once."""

    def __init__(self, items: Sequence[Sequence[Option]]) -> None:
        self.items = items
        self.fronts = [pareto(opts) for opts in items]
        spread = [items[i][f[-1]].bytes - items[i][f[0]].bytes for i, f in enumerate(self.fronts)]
        self.order = sorted(range(len(items)), key=lambda i: -spread[i])  # big decisions first
        pos = {item: k for k, item in enumerate(self.order)}
        n = len(items)
        self.min_bytes = np.zeros(n + 1, dtype=np.int64)  # suffix sums by branching position
        self.min_err = np.zeros(n + 1)
        segs: list[tuple[float, int, int, float]] = []  # (efficiency, position, bytes added, error saved)
        for item, f in enumerate(self.fronts):
            hull = lower_hull(items[item], f)
            for a, b in zip(hull, hull[1:], strict=False):
                oa, ob = items[item][a], items[item][b]
                db, de = ob.bytes - oa.bytes, oa.error - ob.error
                segs.append((de / db, pos[item], db, de))
        for k in range(n - 1, -1, -1):
            first = items[self.order[k]][self.fronts[self.order[k]][0]]
            self.min_bytes[k] = self.min_bytes[k + 1] + first.bytes
            self.min_err[k] = self.min_err[k + 1] + first.error
        segs.sort(key=lambda s: (-s[0], s[1]))
        self.seg_eff = np.array([s[0] for s in segs])
        self.seg_pos = np.array([s[1] for s in segs], dtype=np.int64)
        self.seg_db = np.array([s[2] for s in segs], dtype=np.int64)
        self.seg_de = np.array([s[3] for s in segs])
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def _free(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        got = self._cache.get(k)
        if got is None:
            m = self.seg_pos >= k
            db, de = self.seg_db[m], self.seg_de[m]
            got = (db, de, np.cumsum(db), np.cumsum(de))
            self._cache[k] = got
        return got

    def bound(self, k: int, room: int) -> float:
        """Least error the relaxation reaches for the items at positions k.. within `room` bytes."""
        avail = room - int(self.min_bytes[k])
        if avail < 0:
            return float("inf")
        db, de, cdb, cde = self._free(k)
        n = int(np.searchsorted(cdb, avail, side="right"))
        saved = float(cde[n - 1]) if n else 0.0
        if n < len(db):
            used = int(cdb[n - 1]) if n else 0
            saved += (avail - used) / float(db[n]) * float(de[n])
        return float(self.min_err[k]) - saved

    def lagrange_price(self, room: int) -> float:
        """Error saved per byte at the relaxation's optimum: the multiplier of the budget."""
        db, _, cdb, _ = self._free(0)
        n = int(np.searchsorted(cdb, room - int(self.min_bytes[0]), side="right"))
        return float(self.seg_eff[n]) if n < len(db) else 0.0


def _greedy(p: _Problem, budget: int, price: float) -> list[int]:
    """Per item the option best at the multiplier `price` (at most budget), then upgrades while they fit,
    each time the one saving the most error."""
    pick: list[int] = []
    for item, f in enumerate(p.fronts):
        pick.append(min(f, key=lambda i: p.items[item][i].error + price * p.items[item][i].bytes))
    used = sum(p.items[i][c].bytes for i, c in enumerate(pick))
    while used > budget:  # the relaxation's point may straddle the budget: step down the steepest loss
        best: tuple[float, int, int] | None = None
        for item, f in enumerate(p.fronts):
            cur = p.items[item][pick[item]]
            for i in f:
                o = p.items[item][i]
                if o.bytes < cur.bytes:
                    cost = (o.error - cur.error) / (cur.bytes - o.bytes)
                    if best is None or cost < best[0]:
                        best = (cost, item, i)
        assert best is not None
        used += p.items[best[1]][best[2]].bytes - p.items[best[1]][pick[best[1]]].bytes
        pick[best[1]] = best[2]
    while True:
        best2: tuple[float, int, int] | None = None
        for item, f in enumerate(p.fronts):
            cur = p.items[item][pick[item]]
            for i in f:
                o = p.items[item][i]
                if o.error < cur.error and used - cur.bytes + o.bytes <= budget:
                    gain = cur.error - o.error
                    if best2 is None or gain > best2[0]:
                        best2 = (gain, item, i)
        if best2 is None:
            return pick
        used += p.items[best2[1]][best2[2]].bytes - p.items[best2[1]][pick[best2[1]]].bytes
        pick[best2[1]] = best2[2]


def allocate(items: Sequence[Sequence[Option]], budget: int, *, max_nodes: int = MAX_NODES,
             rel_tol: float = 1e-12) -> Allocation:
    """The options (one per item) of least total error whose bytes sum to at most `budget`."""
    if not items or any(not opts for opts in items):
        raise ValueError("every item needs at least one option")
    p = _Problem(items)
    if int(p.min_bytes[0]) > budget:
        raise BudgetTooSmall(int(p.min_bytes[0]), budget)
    root = p.bound(0, budget)
    price = p.lagrange_price(budget)
    best = _greedy(p, budget, price)
    best_err = sum(items[i][c].error for i, c in enumerate(best))
    n = len(items)
    tol = rel_tol * max(abs(root), 1e-300)
    cur = [0] * n
    nodes = 0
    stopped = False
    # children tried best-first at the multiplier: the incumbent improves early and prunes the rest
    def priced(item: int) -> list[int]:
        return sorted(p.fronts[item], key=lambda i: items[item][i].error + price * items[item][i].bytes)

    ordered = [priced(item) for item in p.order]

    def dfs(k: int, room: int, acc: float) -> None:
        nonlocal best, best_err, nodes, stopped
        if k == n:
            if acc < best_err - tol:
                best_err = acc
                best = [0] * n
                for pos, item in enumerate(p.order):
                    best[item] = cur[pos]
            return
        item = p.order[k]
        for i in ordered[k]:
            if stopped:
                return
            o = items[item][i]
            rest = room - o.bytes
            if rest < int(p.min_bytes[k + 1]):
                continue
            nodes += 1
            if nodes > max_nodes:
                stopped = True
                return
            if acc + o.error + p.bound(k + 1, rest) >= best_err - tol:
                continue
            cur[k] = i
            dfs(k + 1, rest, acc + o.error)

    if root < best_err - tol:
        dfs(0, budget, 0.0)
    used = sum(items[i][c].bytes for i, c in enumerate(best))
    assert used <= budget
    return Allocation(choice=best, bytes=used, error=best_err, bound=root if stopped else best_err,
                      optimal=not stopped, nodes=nodes, budget=budget, extra={"price": price})
