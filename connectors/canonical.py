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
import pyarrow as pa
import pyarrow.compute as pc
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
_PLAIN_STAMP = r"^(?:19|20)\d\d-\d\d-\d\d(?:T\d\d:\d\d:\d\d(?:\.\d{1,9})?Z)?$"
TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
"""The dtype of canonical text columns: pandas' `str` (Arrow strings, NaN for missing).
A million names hold about 30 MB instead of about 80 MB as Python objects."""
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""Every character `str.strip()` strips (`str.isspace()`), for pyarrow's `utf8_trim`."""


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
        Columns are compact: text as pandas' `str` (`TEXT`), numbers float64, booleans
        `boolean`, stamps UTC datetimes.

    Text columns (Arrow strings as the CSV reader gives them, or Python strings) are
    stripped and parsed in pyarrow, each distinct value converted once; only columns
    holding other Python values (numbers, booleans from an API's JSON) take the
    object path.
    """
    object_map = getattr(mapping.objects, kind)
    types = mapping.field_types(kind)
    lines = raw[LINE_COLUMN] if LINE_COLUMN in raw else pd.Series(None, index=raw.index)
    out: dict[str, pd.Series] = {}
    issues: list[RowIssue] = []
    id_field = ID_FIELDS[kind]
    id_source = object_map.fields[id_field].field
    for name, spec in object_map.fields.items():
        field_type = types[name]
        if spec.field not in raw:
            empty = pd.Series(None, index=raw.index, dtype=object)
            out[name] = _compact(parse_column(empty, field_type, {}), field_type)
            continue
        label = f"{object_map.object}.{spec.field}"
        parsed, lost, shown = _parse_raw(
            raw[spec.field], field_type, spec.lookup(), label, spec.date_format
        )
        for index in np.flatnonzero(lost):
            row = raw.index[int(index)]
            issues.append(
                RowIssue(
                    kind,
                    _int_or_none(lines.loc[row]),
                    _str_or_none(raw[id_source].loc[row]) if id_source in raw else None,
                    spec.field,
                    str(shown(int(index))),
                    f"is not a valid {field_type}; read as empty",
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
            if output.type == "number":
                out[CURRENT_PREFIX + key] = _parse_raw(column, "number", {}, "", None)[0]
            elif (text := _arrow_text(column)) is not None:
                out[CURRENT_PREFIX + key] = _text_series(_arrow_blank_to_null(text), raw.index)
            else:  # as the CRM holds it (stripped, blank as None)
                out[CURRENT_PREFIX + key] = _blank_to_null(column)
    frame = pd.DataFrame(out, index=raw.index)
    missing_id = frame[id_field].isna().to_numpy()
    for row in raw.index[missing_id]:
        issues.append(
            RowIssue(kind, _int_or_none(lines.loc[row]), None, None, None, "has no id; skipped")
        )
    if missing_id.any():
        frame = frame.loc[~missing_id]
    frame[id_field] = frame[id_field].astype(TEXT)
    return frame.reset_index(drop=True), issues


def _parse_raw(
    column: pd.Series,
    kind: FieldType,
    lookup: dict[str, str],
    label: str,
    date_format: str | None,
) -> tuple[pd.Series, np.ndarray, Callable[[int], Any]]:
    """One raw column parsed as `kind`: the values, where a present value was lost (could
    not be parsed) and the (stripped) value at a position, for the issue that says so."""
    text = _arrow_text(column)
    if text is None:  # other Python values (an API's numbers and booleans): per value
        source = _blank_to_null(column)
        parsed = _parse_present(source, kind, lookup, label, date_format)
        lost = (source.notna() & parsed.isna()).to_numpy()
        return _compact(parsed, kind), lost, lambda i: source.iloc[i]
    present = _arrow_blank_to_null(text)
    if kind == "text" and not lookup:
        return _text_series(present, column.index), np.zeros(len(column), dtype=bool), str
    if kind in ("date", "datetime"):
        plain, stamps = _plain_stamps(present)
        if plain.all():
            typed = pd.Series(stamps, index=column.index).dt.tz_localize("UTC")
            return typed, np.zeros(len(column), dtype=bool), str
        if plain.any():  # the rest (other layouts, epochs, damage) the pandas way
            rest = pc.if_else(pa.array(plain), pa.scalar(None, present.type), present)
            parsed, lost, shown = _parse_raw(
                _text_series(rest, column.index), kind, lookup, label, date_format
            )
            values = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").copy()
            values[plain] = stamps[plain]
            typed = pd.Series(values, index=column.index).dt.tz_localize("UTC")
            return typed, lost, shown
    encoded = pc.dictionary_encode(present)
    distinct = pd.Series(encoded.dictionary.to_pylist(), dtype=object)
    converted = _parse_present(distinct, kind, lookup, label, date_format)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    lost_distinct = converted.isna().to_numpy()
    lost = (codes >= 0) & np.append(lost_distinct, False)[codes]
    if kind in ("text", "multi", "domain"):
        values = pd.array(converted.to_numpy(dtype=object), dtype=TEXT)
    else:
        values = converted.array
    taken = pd.api.extensions.take(values, codes, allow_fill=True)
    return pd.Series(taken, index=column.index), lost, lambda i: distinct.iloc[codes[i]]


def _plain_stamps(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Where values are plain ISO dates or UTC datetimes (`2024-05-01`,
    `2024-05-01T12:00:00.000Z`, years 1900 to 2099, a real calendar day and time), and their
    instants (naive UTC, ns), read from the digits in numpy; pandas reads those the same,
    so only the rest goes to `parse_datetime`."""
    plain = pc.fill_null(pc.match_substring_regex(values, _PLAIN_STAMP), False)
    ok = np.asarray(plain.to_numpy(zero_copy_only=False), dtype=bool)
    if not ok.any():
        return ok, np.full(len(values), np.datetime64("NaT", "ns"))
    text = values.cast(pa.large_string())
    buffers = text.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[text.offset : text.offset + len(text) + 1]
    data = np.concatenate([np.frombuffer(buffers[2], dtype=np.uint8), np.zeros(32, np.uint8)])
    start = np.where(ok, offsets[:-1], 0)
    length = np.where(ok, offsets[1:] - offsets[:-1], 10)

    def number(first: int, width: int) -> np.ndarray:
        total = np.zeros(len(start), dtype=np.int64)
        for k in range(first, first + width):
            total = total * 10 + (data[start + k].astype(np.int64) - 48)
        return total

    timed = length > 10
    year, month, day = number(0, 4), number(5, 2), number(8, 2)
    hour, minute, second = (np.where(timed, number(k, 2), 0) for k in (11, 14, 17))
    nanos = np.zeros(len(start), dtype=np.int64)
    for j in range(9):  # `.5Z` -> 500000000; the digits stop before the final Z
        here = 20 + j < length - 1
        nanos = nanos * 10 + np.where(here, data[start + 20 + j].astype(np.int64) - 48, 0)
    months = np.clip((year - 1970) * 12 + month - 1, -1000 * 12, 1000 * 12)
    first_day = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    next_first = (months + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= next_first - first_day)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    seconds = (first_day + day - 1) * 86_400 + hour * 3_600 + minute * 60 + second
    instants = np.where(ok, seconds * 1_000_000_000 + nanos, np.iinfo(np.int64).min)
    return ok, instants.view("datetime64[ns]")


def _arrow_text(column: pd.Series) -> pa.Array | None:
    """The column as a pyarrow string array when it holds only text (and missing values);
    None when it holds other values."""
    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype) or (
        isinstance(dtype, pd.ArrowDtype) and pa.types.is_string(dtype.pyarrow_dtype)
    ):
        values = pa.array(column.array)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        return values.cast(pa.large_string())
    if not pd.api.types.is_object_dtype(dtype):
        return None
    objects = column.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(objects, skipna=True) not in ("string", "empty"):
        return None
    return pa.array(objects, pa.large_string(), from_pandas=True)


def _arrow_blank_to_null(values: pa.Array) -> pa.Array:
    """`_blank_to_null` in pyarrow: stripped as `str.strip()` strips; blank becomes null."""
    stripped = pc.utf8_trim(values, WHITESPACE)
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, stripped.type), stripped)


def _text_series(values: pa.Array, index: pd.Index) -> pd.Series:
    return pd.Series(pd.array(values, dtype=TEXT), index=index)


def _compact(parsed: pd.Series, kind: FieldType) -> pd.Series:
    """Text parsed the object way, as `TEXT` when it is all strings (other types stay)."""
    if kind not in ("text", "multi", "domain") or parsed.dtype != object:
        return parsed
    objects = parsed.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(objects, skipna=True) not in ("string", "empty"):
        return parsed
    return pd.Series(pd.array(objects, dtype=TEXT), index=parsed.index)


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(str(value))


def _str_or_none(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _as_text(column: pd.Series) -> pd.Series:
    """A column of text (or missing) values as `TEXT`."""
    values = column.to_numpy(dtype=object)
    missing = np.asarray(pd.isna(values), dtype=bool)
    try:
        text = pa.array(values, pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # a number kept in a text field
        texts = [None if gone else str(value) for value, gone in zip(values, missing, strict=True)]
        text = pa.array(texts, pa.string())
    return pd.Series(pd.array(text, dtype=TEXT), index=column.index, name=column.name)


def restore_types(frame: pd.DataFrame, mapping: CrmMapping, kind: str) -> pd.DataFrame:
    """Re-type a canonical frame whose values went through JSON (the state mirror)."""
    out = frame.copy()
    for name, field_type in mapping.field_types(kind).items():
        if name not in out:
            out[name] = pd.Series(None, index=out.index, dtype=object)
        if field_type in ("number", "boolean", "date", "datetime"):
            out[name] = parse_column(out[name], field_type, {})
        else:  # text as a pull gives it (Arrow strings, not a Python object per value)
            out[name] = _as_text(out[name])
    if kind == "account":
        for key, output in mapping.outputs.items():
            column = CURRENT_PREFIX + key
            values = out[column] if column in out else pd.Series(None, index=out.index)
            out[column] = parse_number(values) if output.type == "number" else values.astype(object)
    return out
