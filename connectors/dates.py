"""Dates that are not ISO 8601: one reading per column, chosen from all its values.

`03-11-2017` is 3 November in most of the world and 11 March in the United States; a
file never mixes the two in one column, so the column's values decide together: a
first part above 12 (`15-02-2018`) means day-first, a second part above 12 means
month-first. When no value settles it, the column is read month-first (as Salesforce's
US-locale exports write it) and a warning says so. A mapping may set the layout itself
with `date_format:` (a `strftime` pattern such as `%d-%m-%Y`), which then wins.
"""

from __future__ import annotations

import logging
import re

import pandas as pd

log = logging.getLogger(__name__)
_UTC = pd.DatetimeTZDtype(unit="ns", tz="UTC")
_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})(?:[ T]|$)")


def date_order(values: pd.Series, label: str) -> bool:
    """True when the column's numeric dates are day-first (decided from all of them)."""
    parts = values.astype(str).str.extract(_NUMERIC_DATE).dropna()
    if parts.empty:
        return False
    first, second = parts[0].astype(int), parts[1].astype(int)
    day_first, month_first = bool((first > 12).any()), bool((second > 12).any())
    if day_first and month_first:
        log.warning(
            "%s mixes day-first (%s) and month-first (%s) dates; read day-first. "
            "Set date_format: in the mapping to say which",
            label or "a date column",
            values[(first > 12).reindex(values.index, fill_value=False)].iloc[0],
            values[(second > 12).reindex(values.index, fill_value=False)].iloc[0],
        )
        return True
    if not day_first and not month_first:
        log.warning(
            "%s: dates such as %r could be day-first or month-first and no value "
            "settles it; read month-first. Set date_format: in the mapping to say which",
            label or "a date column",
            values.loc[parts.index[0]],
        )
    return day_first


def parse_layout(values: pd.Series, label: str, date_format: str | None) -> pd.Series:
    """Parse non-ISO dates of one column with one layout; unparseable ones become NaT."""
    if date_format:
        parsed = pd.to_datetime(values.astype(str), format=date_format, errors="coerce")
    else:
        day_first = date_order(values, label)
        table = {v: _one(str(v), day_first) for v in pd.unique(values)}  # once per value
        parsed = pd.Series([table[v] for v in values], index=values.index, dtype=object)
        parsed = pd.to_datetime(parsed, errors="coerce", utc=True)
    if parsed.dt.tz is None:
        parsed = parsed.dt.tz_localize("UTC")
    return parsed.dt.tz_convert("UTC").astype(_UTC)


def _one(text: str, day_first: bool) -> object:
    try:  # a year nanoseconds cannot hold (24, from `024-04-13`) is unreadable
        stamp = pd.Timestamp(pd.to_datetime(text, dayfirst=day_first))
        if stamp is pd.NaT:
            return pd.NaT
        stamp = stamp.as_unit("ns")  # raises for years nanoseconds cannot hold
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
