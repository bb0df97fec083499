"""Raw CRM rows -> canonical frames, tolerantly and column at a time.

Every connector ends its pull here, so the rules are the same whatever the CRM:
empty strings are null, booleans accept `true/false/1/0/yes/no`, dates and datetimes
are ISO 8601 (Salesforce's `+0000` and HubSpot's millisecond epochs included) and come
out as UTC timestamps, numbers drop currency symbols and thousands separators, and
value maps normalise picklists and spellings. A value that cannot be parsed becomes
null and is reported as a `RowIssue`; it never stops the run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.connectors.dates import parse_layout
from icp_engine.connectors.mapping import (
    CURRENT_PREFIX,
    ID_FIELDS,
    CrmMapping,
    FieldType,
    normalise_key,
)

LINE_COLUMN = "__line__"
"""Optional raw-frame column with each row's line number in its source file."""

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}
_NUMBER_JUNK = re.compile(r"[\s,$€£¥%]")
_UTC = pd.DatetimeTZDtype(unit="ns", tz="UTC")
_DOMAIN = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:www\d?\.)?([^/?#:\s]+)", re.IGNORECASE)


@dataclass(frozen=True)
class RowIssue:
    """A row, or one value in it, that could not be read as it stands."""

    object: str
    line: int | None
    record_id: str | None
    column: str | None
    value: str | None
    problem: str

    def describe(self, source: str) -> str:
        where = f"{source}, line {self.line}" if self.line is not None else source
        what = f" {self.column}={self.value!r}" if self.column else ""
        rec = f" (record {self.record_id})" if self.record_id else ""
        return f"{where}{rec}:{what} {self.problem}"


def _per_unique(series: pd.Series, convert: Callable[[Any], Any]) -> pd.Series:
    """Apply `convert` once per distinct non-null value (CRM columns repeat a lot)."""
    values = series.astype(object)
    present = values.notna()
    out = pd.Series(None, index=series.index, dtype=object)
    if present.any():
        distinct = pd.unique(values[present])
        table = {value: convert(value) for value in distinct}
        out[present] = values[present].map(table)
    return out


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")


def _blank_to_null(series: pd.Series) -> pd.Series:
    """Strip strings; empty or blank strings become None."""
    values = series.astype(object)
    if _is_text(values):
        stripped = values.str.strip()
    else:
        stripped = _per_unique(values, lambda v: v.strip() if isinstance(v, str) else v)
    return stripped.where(stripped.notna() & (stripped != ""), None).astype(object)


def parse_number(series: pd.Series) -> pd.Series:
    """Numbers, tolerating `$1,200.50`, ` 12 ` and `45%`; anything else becomes NaN."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    values = series.astype(object)
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    retry = numbers.isna() & values.notna()
    if retry.any():  # currency symbols, thousands separators, percent signs
        cleaned = _per_unique(
            values[retry], lambda v: _NUMBER_JUNK.sub("", v) if isinstance(v, str) else v
        )
        numbers[retry] = pd.to_numeric(cleaned, errors="coerce").astype("float64")
    return numbers


def parse_boolean(series: pd.Series) -> pd.Series:
    """`true/false/1/0/yes/no` in any case; anything else becomes <NA>."""

    def one(value: object) -> object:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        key = str(value).strip().casefold()
        return True if key in _TRUE else False if key in _FALSE else pd.NA

    return _per_unique(series, one).astype("boolean")


def parse_datetime(series: pd.Series, label: str = "", date_format: str | None = None) -> pd.Series:
    """ISO dates and datetimes (any offset, `Z` or `+0000`) or epoch milliseconds, as UTC.

    Other layouts (`03/04/2025 10:00`) are read with one layout for the whole column
    (`connectors.dates`), or with `date_format` when the mapping sets it.
    """
    values = series.astype(object)
    out = pd.Series(pd.NaT, index=series.index, dtype=_UTC)
    present = values.notna()
    if not present.any():
        return out
    if _is_text(values):
        epoch = values.str.fullmatch(r"\d{10,13}").fillna(False).astype(bool)
    else:
        epoch = _per_unique(values, _looks_like_epoch).fillna(False).astype(bool)
    if epoch.any():
        millis = pd.to_numeric(values[epoch], errors="coerce")
        stamps = pd.to_datetime(millis, unit="ms", utc=True, errors="coerce")
        out[epoch] = _nanosecond_range(stamps)
    text = present & ~epoch
    if text.any():
        parsed = pd.to_datetime(values[text], format="ISO8601", utc=True, errors="coerce")
        parsed = _nanosecond_range(parsed)
        bad = parsed.isna()
        if bad.any():  # other layouts (`03-04-2025 10:00`): one layout for the column
            parsed[bad] = parse_layout(values[text][bad], label, date_format)
        out[text] = parsed
    return out


def _nanosecond_range(stamps: pd.Series) -> pd.Series:
    """UTC nanosecond stamps; a year they cannot hold (`-13-01-01`, `0024-04-13`) is NaT."""
    if stamps.dtype == _UTC:
        return stamps
    low, high = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
    return stamps.where((stamps >= low) & (stamps <= high)).astype(_UTC)


def _looks_like_epoch(value: object) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    return isinstance(value, int | float | np.number) or (
        isinstance(value, str) and value.isdigit() and 10 <= len(value) <= 13
    )


def parse_domain(series: pd.Series) -> pd.Series:
    """`https://www.Acme.com/about` -> `acme.com`."""

    def one(value: object) -> object:
        match = _DOMAIN.match(str(value).strip())
        return match.group(1).lower().rstrip(".") if match else None

    return _per_unique(series, one)


def parse_text(series: pd.Series, lookup: dict[str, str], multi: bool = False) -> pd.Series:
    """Strings, mapped through a value map; multi-select values split on `;` and re-joined."""

    def one(value: object) -> str:
        text = str(value).strip()
        return lookup.get(normalise_key(text), text) if lookup else text

    def many(value: object) -> object:
        parts = [one(p) for p in str(value).split(";") if str(p).strip()]
        return ";".join(dict.fromkeys(parts)) or None

    if not multi and not lookup and _is_text(series.astype(object)):
        return series.astype(object)  # already stripped strings: nothing to do
    return _per_unique(series, many if multi else one)


def parse_column(series: pd.Series, kind: FieldType, lookup: dict[str, str]) -> pd.Series:
    """Parse one raw column into the canonical type `kind` (blank strings read as null)."""
    return _parse_present(_blank_to_null(series), kind, lookup)


def _parse_present(
    series: pd.Series,
    kind: FieldType,
    lookup: dict[str, str],
    label: str = "",
    date_format: str | None = None,
) -> pd.Series:
    if kind == "number":
        return parse_number(series)
    if kind == "boolean":
        return parse_boolean(series)
    if kind in ("date", "datetime"):
        return parse_datetime(series, label, date_format)
    if kind == "domain":
        return parse_domain(series)
    return parse_text(series, lookup, multi=kind == "multi")


def to_canonical(
    raw: pd.DataFrame, mapping: CrmMapping, kind: str
) -> tuple[pd.DataFrame, list[RowIssue]]:
    """Map a frame of raw CRM rows (CRM field names as columns) to canonical columns.

    Args:
        raw: one page of rows; may carry `__line__` with source line numbers.
        mapping: the CRM mapping; `kind` picks its account or opportunity map.
        kind: "account" or "opportunity".

    Returns:
        The canonical frame (one row per readable record; rows without an id are dropped)
        and the issues found: dropped rows and values that could not be parsed. Account
        frames also carry `current_<output>` columns with the output values now in the CRM.
    """
    object_map = getattr(mapping.objects, kind)
    types = mapping.field_types(kind)
    lines = raw[LINE_COLUMN] if LINE_COLUMN in raw else pd.Series(None, index=raw.index)
    out = pd.DataFrame(index=raw.index)
    issues: list[RowIssue] = []
    id_field = ID_FIELDS[kind]
    for name, spec in object_map.fields.items():
        if spec.field not in raw:
            out[name] = parse_column(
                pd.Series(None, index=raw.index, dtype=object), types[name], {}
            )
            continue
        source = _blank_to_null(raw[spec.field])
        label = f"{object_map.object}.{spec.field}"
        parsed = _parse_present(source, types[name], spec.lookup(), label, spec.date_format)
        lost = source.notna() & parsed.isna()
        for index in np.flatnonzero(lost.to_numpy()):
            label = raw.index[int(index)]
            issues.append(
                RowIssue(
                    kind,
                    _int_or_none(lines.loc[label]),
                    _str_or_none(raw[object_map.fields[id_field].field].loc[label])
                    if object_map.fields[id_field].field in raw
                    else None,
                    spec.field,
                    str(source.loc[label]),
                    f"is not a valid {types[name]}; read as empty",
                )
            )
        out[name] = parsed
    if kind == "account":
        for key, output in mapping.outputs.items():
            column = (
                raw[output.field]
                if output.field in raw
                else pd.Series(None, index=raw.index, dtype=object)
            )
            values = _blank_to_null(column)
            out[CURRENT_PREFIX + key] = parse_number(values) if output.type == "number" else values
    missing_id = out[id_field].isna()
    for label in out.index[missing_id]:
        issues.append(
            RowIssue(kind, _int_or_none(lines.loc[label]), None, None, None, "has no id; skipped")
        )
    out = out.loc[~missing_id]
    out[id_field] = out[id_field].astype(str)
    return out.reset_index(drop=True), issues


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(str(value))


def _str_or_none(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def restore_types(frame: pd.DataFrame, mapping: CrmMapping, kind: str) -> pd.DataFrame:
    """Re-type a canonical frame whose values went through JSON (the state mirror)."""
    out = frame.copy()
    for name, field_type in mapping.field_types(kind).items():
        if name not in out:
            out[name] = pd.Series(None, index=out.index, dtype=object)
        if field_type in ("number", "boolean", "date", "datetime"):
            out[name] = parse_column(out[name], field_type, {})
        else:
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    if kind == "account":
        for key, output in mapping.outputs.items():
            column = CURRENT_PREFIX + key
            values = out[column] if column in out else pd.Series(None, index=out.index)
            out[column] = parse_number(values) if output.type == "number" else values.astype(object)
    return out
