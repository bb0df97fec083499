"""Typed values of the fake Salesforce org: ids, datetimes, their wire forms, coercion.

Values are stored typed: str, int, float (rounded to the field's scale), bool, None,
`datetime` (UTC, ms) for datetime fields and "YYYY-MM-DD" strings for date fields.
"""

from __future__ import annotations

import re
import string
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from tests.fakes.salesforce.wire import ApiError, RecordError

# ---------------------------------------------------------------- ids and datetimes

_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase  # sorts like its values
_SUFFIX = string.ascii_uppercase + "012345"
_ID_RE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


def _id_suffix(id15: str) -> str:
    out = ""
    for i in range(3):
        chunk = id15[i * 5 : i * 5 + 5]
        out += _SUFFIX[sum(1 << j for j, c in enumerate(chunk) if "A" <= c <= "Z")]
    return out


def make_id(prefix: str, n: int) -> str:
    """An 18-character id: key prefix, pod 'dM', fixed-width base62 counter, case checksum."""
    digits = ""
    while n:
        n, r = divmod(n, 62)
        digits = _B62[r] + digits
    body = prefix + "dM" + digits.rjust(10, "0")
    return body + _id_suffix(body)


def normalize_id(raw: Any) -> str | None:
    """The 18-character form of a 15/18-character id, None when malformed."""
    if not isinstance(raw, str) or not _ID_RE.fullmatch(raw):
        return None
    suffix = _id_suffix(raw[:15])
    if len(raw) == 18 and raw[15:].upper() != suffix:
        return None
    return raw[:15] + suffix


_DT_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?"
)


def to_ms(moment: datetime) -> datetime:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def parse_datetime(text: str) -> datetime:
    m = _DT_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a datetime: {text!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    moment = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=UTC)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        moment -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[-2:]))
    return to_ms(moment)


def format_datetime(moment: datetime, csv: bool = False) -> str:
    """REST: 2026-05-01T07:25:37.000+0000; Bulk CSV: 2026-05-01T07:25:37.000Z."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return text + ("Z" if csv else "+0000")


def json_value(value: Any) -> Any:
    return format_datetime(value) if isinstance(value, datetime) else value


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_datetime(value, csv=True)
    return str(value)


# ---------------------------------------------------------------- writing values

STRING_TYPES = {
    "string",
    "textarea",
    "url",
    "phone",
    "email",
    "picklist",
    "multipicklist",
    "combobox",
}
NUMBER_TYPES = {"int", "double", "currency", "percent"}
_JSON_TYPE_NAMES = {
    "int": "int",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
}


def coerce_value(f: dict[str, Any], raw: Any, source: str) -> Any:
    """The stored form of `raw` written to field `f`.

    source: "json" (REST body; a value of the wrong JSON type is a request-level
    JSON_PARSER_ERROR), "csv" (Bulk cell; per-record INVALID_TYPE_ON_FIELD_IN_RECORD) or
    "python" (the test's own data). Per-record rule violations raise RecordError.
    """
    name, type_, label = f["name"], f["type"], f["label"]

    def bad() -> Exception:
        if source == "json":
            kind = _JSON_TYPE_NAMES.get(type_, "string")
            return ApiError(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of {kind} from VALUE_STRING value "
                f"{raw} or request may be missing a required field",
            )
        return RecordError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{label}: value not of required type: {raw}", [name]
        )

    if raw is None or raw == "":
        value: Any = None
    elif type_ in NUMBER_TYPES:
        if isinstance(raw, bool):
            raise bad()
        try:
            number = Decimal(str(raw).strip())
        except InvalidOperation:
            raise bad() from None
        if not number.is_finite():
            raise bad()
        scale = 0 if type_ == "int" else int(f["scale"] or 0)
        number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
        digits = int(f["digits"]) if type_ == "int" else int(f["precision"] or 18) - scale
        if digits and abs(number) >= Decimal(10) ** digits:
            raise RecordError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{label}: value outside of valid range on numeric field: {raw}",
                [name],
            )
        value = int(number) if type_ == "int" else float(number)
    elif type_ == "boolean":
        text = str(raw).strip().lower()
        if isinstance(raw, bool):
            value = raw
        elif text in ("true", "false") or (source != "json" and text in ("1", "0")):
            value = text in ("true", "1")
        else:
            raise bad()
    elif type_ == "datetime":
        if isinstance(raw, datetime):
            value = to_ms(raw)
        else:
            try:
                value = parse_datetime(str(raw))
            except ValueError:
                raise bad() from None
    elif type_ == "date":
        try:
            value = raw if isinstance(raw, date) else date.fromisoformat(str(raw)[:10])
        except ValueError:
            raise bad() from None
        value = value.date().isoformat() if isinstance(value, datetime) else value.isoformat()
    else:
        value = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        if type_ in ("id", "reference"):
            norm = normalize_id(value)
            if norm is None:
                raise RecordError(
                    "MALFORMED_ID", f"{label}: id value of incorrect type: {value}", [name]
                )
            value = norm
        elif len(value) > int(f["length"] or 0) > 0:
            raise RecordError(
                "STRING_TOO_LONG",
                f"{label}: data value too large: {value} (max length={f['length']})",
                [name],
            )
        if (
            f["restrictedPicklist"]
            and type_ in ("picklist", "multipicklist")
            and (source != "python")
        ):  # a test may seed values from before the restriction
            allowed = {p["value"] for p in f["picklistValues"] if p["active"]}
            for item in value.split(";") if type_ == "multipicklist" else [value]:
                if item not in allowed:
                    raise RecordError(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"{label}: bad value for restricted picklist field: {item}",
                        [name],
                    )
    if value is None and not f["nillable"] and source != "python":
        raise RecordError(
            "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", [name]
        )
    return value
