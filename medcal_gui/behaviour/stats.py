"""Small exact statistics for behaviour checks: confidence intervals of a proportion and McNemar's test.

Pure Python (no SciPy): the binomial sums are exact and the beta quantile for Clopper-Pearson is found by
bisection on the binomial tail, which is the definition of that interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (95 % by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"successes {k} not within 0..{n}")
    p = k / n
    z2 = z * z
    den = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return math.fsum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))


def _bisect(f: Any, lo: float = 0.0, hi: float = 1.0) -> float:
    """The root of a decreasing function f on [lo, hi] (f(lo) >= 0 >= f(hi))."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return (lo + hi) / 2


def clopper_pearson_ci(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval: the p where the binomial tails equal alpha/2."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"successes {k} not within 0..{n}")
    a = alpha / 2
    lower = 0.0 if k == 0 else _bisect(lambda p: a - (1 - _binom_cdf(k - 1, n, p)))
    upper = 1.0 if k == n else _bisect(lambda p: _binom_cdf(k, n, p) - a)
    return lower, upper


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (binomial test of b against n=b+c, p=1/2)."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = math.fsum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Proportion:
    """k of n, with its 95 % Wilson interval (the one reported) and the exact Clopper-Pearson one."""

    k: int
    n: int
    value: float
    wilson_low: float
    wilson_high: float
    exact_low: float
    exact_high: float

    @classmethod
    def of(cls, k: int, n: int) -> Proportion:
        wl, wh = wilson_ci(k, n)
        el, eh = clopper_pearson_ci(k, n)
        return cls(k, n, k / n if n else 0.0, wl, wh, el, eh)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        return (f"{100 * self.value:.1f} % ({self.k}/{self.n}; 95 % CI {100 * self.wilson_low:.1f}-"
                f"{100 * self.wilson_high:.1f} %)")
