"""Property values in the fake HubSpot portal: datetimes, numbers, validation of writes.

HubSpot stores every value as a string. Datetimes print as Java's `Instant.toString()`
does (`2026-02-25T16:26:25.880Z`, or `2026-12-31T00:00:00Z` when the milliseconds are
zero); numbers are normalised (`"87.0"` -> `"87"`) and exponent forms refused; written
values are checked against the property's type and options as the CRM APIs check them.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

# --- datetimes -------------------------------------------------------------------------


_EPOCH_DT = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds (truncated) of an aware, or UTC-naive, datetime."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH_DT) // _MS


def iso(ms: int) -> str:
    """HubSpot's datetime text: milliseconds when non-zero, none when zero (Instant style)."""
    moment = _EPOCH_DT + ms * _MS
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"


def iso_now() -> str:
    return iso(to_ms(datetime.now(UTC)))


_DIGITS = re.compile(r"-?\d+")


def parse_when(value: Any) -> int | None:
    """Epoch ms from an epoch-ms number/string, an ISO-8601 datetime or a date; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if _DIGITS.fullmatch(text):
        return int(text)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return to_ms(datetime(day.year, day.month, day.day, tzinfo=UTC))
        return to_ms(datetime.fromisoformat(text))
    except ValueError:
        return None


# --- values --------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")


def normalize_number(text: str) -> str | None:
    """The stored form of a number ("87.0" -> "87"); None when HubSpot would reject it."""
    if not _NUMBER.fullmatch(text):
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def as_text(raw: Any) -> str:
    """A JSON value as HubSpot reads it into a property (numbers via Python's str)."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer() and abs(raw) < 1e15:
        return str(int(raw))
    return str(raw)


def seed_value(prop: dict[str, Any] | None, raw: Any) -> str | None:
    """How a test's seed value is stored: strings, ints without `.0`, None/"" as null."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        return iso(to_ms(raw))
    text = as_text(raw)
    kind = prop["type"] if prop else "string"
    if kind == "number":
        return normalize_number(text) or text
    if kind == "datetime":
        ms = parse_when(text)
        return iso(ms) if ms is not None else text
    if kind == "bool":
        return text.lower() if text.lower() in ("true", "false") else text
    return text


class Invalid(Exception):
    """A property value HubSpot rejects: `code` is its error code (INVALID_OPTION, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_value(prop: dict[str, Any], raw: Any, allowed: set[str] | None = None) -> str | None:
    """The stored form of a written value; "" / None clear it. Raises Invalid.

    `allowed` replaces the options for properties with external options (pipeline, stage).
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, dict | list):
        raise Invalid("INVALID_PROPERTY_VALUE", f"{raw!r} is not a valid property value.")
    text = as_text(raw)
    kind = prop["type"]
    if kind == "number":
        number = normalize_number(text)
        if number is None:
            raise Invalid("INVALID_INTEGER", f"{text} was not a valid number.")
        return number
    if kind in ("datetime", "date"):
        ms = parse_when(text)
        if ms is None:
            raise Invalid(
                "INVALID_DATE",
                f"{text} was not a valid long or ISO8601 formatted date. "
                "Dates must be formatted as epoch milliseconds or ISO8601.",
            )
        return iso(ms) if kind == "datetime" else iso(ms - ms % 86_400_000)[:10]
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise Invalid("INVALID_BOOLEAN", f"{text} was not a valid boolean.")
        return text.lower()
    if kind == "enumeration":
        values = allowed if allowed is not None else {o["value"] for o in prop["options"]}
        parts = [p for p in text.split(";") if p] if prop["fieldType"] == "checkbox" else [text]
        for part in parts:
            if part not in values:
                listed = (
                    ", ".join(sorted(values))
                    if allowed is not None
                    else ", ".join(o["value"] for o in prop["options"])
                )
                raise Invalid(
                    "INVALID_OPTION", f"{part} was not one of the allowed options: [{listed}]"
                )
        return ";".join(parts) if parts else None
    return text
