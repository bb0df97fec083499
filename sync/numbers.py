"""One way to write numbers for people: counts, shares, points, intervals, durations.

Every figure the CLI prints goes through these helpers so that `100000` never sits next
to `100,000`, a missing value reads "no data", and an interval with no width (the holdout
of a run with no signal) is not passed off as a measurement.
"""

from __future__ import annotations

import math
from typing import Any

NO_DATA = "no data"
MINUS = "\u2212"


def is_missing(value: Any) -> bool:
    """None, NaN or something that is not a number."""
    if value is None or isinstance(value, bool):
        return value is None
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def count(value: Any, noun: str | None = None, plural: str | None = None) -> str:
    """`12,345` or `12,345 accounts` (`1 account`)."""
    if is_missing(value):
        return NO_DATA
    number = round(float(value))
    text = f"{number:,}"
    if noun is None:
        return text
    return f"{text} {noun if number == 1 else (plural or noun + 's')}"


def share(value: Any, digits: int = 0) -> str:
    """A fraction as a percentage: 0.4567 -> `46%`."""
    return NO_DATA if is_missing(value) else f"{float(value):.{digits}%}"


def decimal(value: Any, digits: int = 2) -> str:
    return NO_DATA if is_missing(value) else f"{float(value):,.{digits}f}"


def points(value: Any, signed: bool = False) -> str:
    """Score points: `12 pts`, `29.6 pts`; `+12 pts` or `-29.6 pts` (a true minus) if `signed`."""
    if is_missing(value):
        return NO_DATA
    number = float(value)
    text = f"{abs(number):,.1f}".removesuffix(".0")
    sign = (MINUS if number < 0 else "+") if signed else (MINUS if number < 0 else "")
    return f"{sign}{text} {'pt' if text == '1' else 'pts'}"


def interval(low: Any, high: Any, digits: int = 2) -> str:
    """`0.57-0.73`; "no data" when an end is missing or the interval has no width."""
    if is_missing(low) or is_missing(high):
        return NO_DATA
    if math.isclose(float(low), float(high), abs_tol=10.0 ** -(digits + 2)):
        return NO_DATA
    return f"{float(low):.{digits}f}-{float(high):.{digits}f}"


def duration(seconds: Any) -> str:
    """`0.4 s`, `12 s`, `3 min 05 s`, `1 h 02 min`."""
    if is_missing(seconds):
        return NO_DATA
    value = max(float(seconds), 0.0)
    if value < 10:
        return f"{value:.1f} s"
    if value < 60:
        return f"{value:.0f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def listing(names: list[str], total: int | None = None, shown: int = 3) -> str:
    """`a; b; c` and `(and 2 more)` when `total` counts more than the names shown."""
    total = len(names) if total is None else total
    text = "; ".join(names[:shown])
    more = total - min(len(names), shown)
    return text + (f" (and {more:,} more)" if more > 0 else "")
