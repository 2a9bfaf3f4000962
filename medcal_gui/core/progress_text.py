"""Progress records in words, one formatter for every place that shows them (a stage row, the status bar).

An ETA extrapolated from the first unit or two is wild (the first tensor of a quantization is the token
embedding, the largest one), so none is shown until `MIN_ETA_UNITS` units and `MIN_ETA_FRACTION` of the work
are done. `eta_left` counts a reported ETA down between reports, so a slow last unit does not leave a stale
figure standing.
"""

from __future__ import annotations

from medcal_gui.core.jobs import Progress

MIN_ETA_UNITS = 1
MIN_ETA_FRACTION = 0.1


def eta_text(s: float | None) -> str:
    if s is None:
        return ""
    s = int(round(s))
    return f"ETA {s // 60}:{s % 60:02d}"


def trustworthy_eta(p: Progress) -> float | None:
    """The record's ETA once enough of the work is done to extrapolate from, else None."""
    if p.eta_s is None or not p.total or p.done >= p.total:
        return None
    if p.done < MIN_ETA_UNITS or p.done / p.total < MIN_ETA_FRACTION:
        return None
    return p.eta_s


def eta_left(p: Progress, since_report_s: float) -> str:
    """The ETA counted down by the time since the record came; "finishing…" once it has run out."""
    eta = trustworthy_eta(p)
    if eta is None:
        return ""
    left = eta - since_report_s
    return eta_text(left) if left >= 1 else "finishing…"


def rate_text(p: Progress) -> str:
    if not p.rate:
        return ""
    unit = p.rate_unit or "units"
    return f"{p.rate:,.0f} {unit}/s" if p.rate >= 10 else f"{p.rate:.2f} {unit}/s"


def detail_text(p: Progress, since_report_s: float = 0.0) -> str:
    """The figures of one record: done/total, rate, perplexity, ETA, message."""
    parts = []
    if p.total:
        parts.append(f"{p.done:g}/{p.total:g} {p.unit}".strip())
    elif p.done:
        parts.append(f"{p.done:g} {p.unit}".strip())
    parts.append(rate_text(p))
    if "ppl" in p.extra:
        parts.append(f"PPL {p.extra['ppl']:.2f}")
    parts.append(eta_left(p, since_report_s))
    if p.message and (not p.total or p.done < p.total):
        parts.append(p.message)
    return " · ".join(x for x in parts if x)


def describe(title: str, p: Progress | None) -> str:
    """A job in one line for the status bar: its title, stage and the same figures as its stage row."""
    if p is None:
        return f"{title}…"
    detail = detail_text(p)
    return f"{title}: {p.stage}" + (f" · {detail}" if detail else "")


LONG_JOB_S = 60.0  # a job past this (run so far, or still to go) asks before a key press cancels it


def is_long_job(elapsed_s: float, p: Progress | None) -> bool:
    """Whether cancelling would throw away enough work to ask first: it ran, or is expected to run on, for
    more than `LONG_JOB_S`."""
    left = p.eta_s if p is not None and p.eta_s is not None else 0.0
    return max(elapsed_s, left) >= LONG_JOB_S


def duration_text(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
