"""Units: sizes in bytes as users write them and as medcal prints them, and numbers that must be finite. The
one home of all three.

Decimal units (K, M, G, T, KB, MB, GB, TB) are powers of 1000, as every message prints sizes; the binary ones
(KiB, MiB, GiB, TiB) are powers of 1024. "2GiB" is 2,147,483,648 bytes everywhere in medcal.
"""

from __future__ import annotations

import math
import re

from medcal_gui.core.errors import InputError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
_SIZE = re.compile(r"^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)(k|m|g|t|kb|mb|gb|tb|kib|mib|gib|tib|b)?$", re.IGNORECASE)
_MULT = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
         "t": 10**12, "tb": 10**12, "kib": KiB, "mib": MiB, "gib": GiB, "tib": GiB << 10}
# no machine medcal runs on has a petabyte to give a step: a larger figure is a typo (or 1e400)
MAX_SIZE = 10**15


def parse_size(text: str, what: str = "size", *, allow_zero: bool = False) -> int:
    """'2.5GB', '300 MB', '300M', '1.2GiB', '500000000' -> bytes. An InputError naming `what` for anything
    else: a word, a negative or zero size (unless `allow_zero`), nan, inf, 1e400, or more than a petabyte."""
    s = str(text).strip().replace(" ", "").replace("_", "")
    m = _SIZE.match(s)
    if not m:
        raise InputError(f"Cannot read the {what} {text!r}: write it like 2.5GB, 300MB or 1.2GiB.")
    value = float(m.group(1)) * _MULT[(m.group(2) or "").lower()]
    if not math.isfinite(value) or value > MAX_SIZE:
        raise InputError(f"The {what} {text!r} is not a size medcal can use: write it like 2.5GB, 300MB or "
                         "1.2GiB (at most 1000TB).")
    if value < 1 and not (allow_zero and value == 0):
        raise InputError(f"The {what} {text!r} must be above zero: write it like 2.5GB, 300MB or 1.2GiB.")
    return int(value)


def format_bytes(n: float, *, rough: bool = False) -> str:
    """A size for people, in the decimal units parse_size reads back. Measured (a file, a cache): whole kB below
    1 MB, MB to one decimal below 1 GB, GB to two decimals ("262 kB", "253.4 MB", "1.23 GB"). `rough` (an
    estimate, a budget, a limit, free space): whole MB below 1 GB, GB to one decimal ("50 MB", "9.1 GB")."""
    if rough:
        return f"{n / 1e6:,.0f} MB" if round(n / 1e6) < 1000 else f"{n / 1e9:,.1f} GB"
    if round(n / 1e3) < 1000:
        return f"{n / 1e3:,.0f} kB"
    if round(n / 1e6, 1) < 1000:
        return f"{n / 1e6:,.1f} MB"
    return f"{n / 1e9:,.2f} GB"


def finite_float(text: str, what: str, *, low: float | None = None, high: float | None = None) -> float:
    """A number that is finite (no nan, inf or 1e400) and within [low, high] where given; an InputError naming
    `what` ("--target-bpw", "MEDCAL_EVAL_CACHE_MB") and what to write instead otherwise."""
    bounds = ("" if low is None and high is None else
              f" between {low:g} and {high:g}" if low is not None and high is not None else
              f" of at least {low:g}" if low is not None else f" of at most {high:g}")
    try:
        value = float(str(text).strip())
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a number; write a number{bounds}.") from None
    if not math.isfinite(value):
        raise InputError(f"{what}: {text!r} is not a finite number; write a number{bounds}.")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InputError(f"{what}: {text!r} is out of range; write a number{bounds}.")
    return value
