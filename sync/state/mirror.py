"""Canonical frames <-> JSON rows, for the records mirror and stored values of `sync.state`.

One row becomes one JSON array: a layout key, then the values in the layout's column
order. The layout (the column names, as a JSON list) is kept once in `meta` under
`records.layout.<key>`, the key being a hash of the names, so a million rows do not repeat
their column names (about half of each row's size) and a frame encodes and decodes a
column at a time. Rows stored as JSON objects keyed by column name (before issue 14) are
still read. NaN, infinities, NaT, `pd.NA` and
None become null; timestamps become ISO 8601 UTC strings with an offset, at microsecond
precision (`2024-05-01T12:00:00.000000+00:00`; naive ones are taken as UTC); dates become
`2024-05-01`; numpy scalars become Python numbers and booleans. A value of any other type
(timedelta, complex, an arbitrary object) raises `TypeError` instead of being stored as
something it is not. Columns are converted a column at a time, vectorised where the dtype
allows: 100,000 rows of 15 columns encode in about a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from icp_engine.connectors.id_set import Ids
from icp_engine.sync.state.parts import BuiltPart, Parts, records_layout
from icp_engine.sync.state.sql import Connection

_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))  # ASCII: faster
_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit
_ENCODE_ROWS = 25_000
"""Rows encoded at a time: their Python values (a row's twenty, a JSON text) exist
meanwhile; 100,000 at a time lifted a million-account run's peak by about 350 MB."""
LAYOUT_KEY = "records.layout."
"""`meta` key prefix of a stored row layout (its column names, a JSON list)."""


class RecordMirror:
    """The records mirror of a `sync.state.StateStore`, which owns one and shares its
    transactions with it (a mirror write inside `StateStore.atomic()` is part of it).

    Canonical rows kept between runs, so an incremental run can rescore an account whose
    opportunities changed without pulling the account again. Each object's rows are a
    table of `sync.state.parts` (record id, account id, the row's JSON text), sorted by
    record id.
    """

    def __init__(self, transaction: Callable[..., AbstractContextManager[Connection]]) -> None:
        self._transaction = transaction
        self.parts = Parts(transaction)

    def upsert_records(
        self,
        crm: str,
        obj: str,
        frame: pd.DataFrame | Iterable[pd.DataFrame],
        id_column: str,
        account_column: str | None = None,
    ) -> None:
        """Store each row of `frame` as JSON (see the module docstring), in one transaction.

        A stored row with the same id is replaced, not merged. `account_column`'s value is
        also kept in its own column, for `load_records(account_ids=...)`. `frame` may be
        frames one after another, in ascending id order across them (a whole org read
        back from disk a slice at a time): only one of them is encoded at a time.

        Raises:
            KeyError: `id_column` or `account_column` is not a column of `frame`.
            ValueError: duplicate column names, rows without an id, or frames whose ids
                are not in ascending order across them.
            TypeError: a value has no faithful JSON form.
        """
        frames = [frame] if isinstance(frame, pd.DataFrame) else frame
        layouts: dict[str, list[str]] = {}  # (filled as the pieces are taken)
        pieces = encoded_pieces(frames, id_column, account_column, layouts)
        self.merge_encoded(crm, obj, pieces, layouts)

    def is_empty(self, crm: str, obj: str) -> bool:
        """Whether the mirror holds no rows of `obj` for `crm`."""
        return self.parts.is_empty(crm, records_layout(obj))

    def add_built(
        self, crm: str, obj: str, parts: Iterable[BuiltPart], layouts: Mapping[str, list[str]]
    ) -> None:
        """Store `obj`'s rows as parts built elsewhere (`built_parts` of `encoded_pieces`,
        with the `layouts` those recorded), in one transaction.

        Raises:
            ValueError: the mirror holds rows of `obj` for `crm` already.
        """
        with self._transaction() as db:
            _store_layouts(db, layouts)
            self.parts.add_built(crm, records_layout(obj), parts)

    def merge_encoded(
        self, crm: str, obj: str, pieces: Iterable[pa.Table], layouts: Mapping[str, list[str]]
    ) -> None:
        """`upsert_records` of encoded rows (`encoded_pieces`, here or elsewhere), in one
        transaction; `layouts` (those it recorded) are stored once the pieces are taken."""
        with self._transaction() as db:
            self.parts.merge_sorted(crm, records_layout(obj), pieces)
            _store_layouts(db, layouts)

    def delete_records(self, crm: str, obj: str, ids: Iterable[str]) -> None:
        """Drop the mirror rows of `ids` (records deleted in the CRM)."""
        self.parts.merge(crm, records_layout(obj), drop=unique_ids(ids))

    def load_records(
        self,
        crm: str,
        obj: str,
        ids: Iterable[str] | None = None,
        account_ids: Iterable[str] | None = None,
        convert: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    ) -> pd.DataFrame:
        """Stored rows ordered by record id, as a frame of JSON-decoded values.

        Columns are dtype object with None for missing values; the caller re-types them,
        best with `convert`, which is given the rows of one stored part at a time (a
        million opportunities' Python values never exist at once). Rows are filtered by
        record `ids` and/or `account_ids` (both given: rows matching both); None is no
        filter. No rows: an empty frame without columns.
        """
        keys = None if ids is None else unique_ids(ids)
        match = None if account_ids is None else ("account_id", unique_ids(account_ids))
        frames = []
        for table in self.parts.read_each(crm, records_layout(obj), keys, ["data"], match):
            frame = decode_rows(table.column("data").to_pylist(), self._layouts)
            frames.append(convert(frame) if convert is not None else frame)
        if not frames:
            return pd.DataFrame()
        if len(frames) == 1:
            return frames[0]
        return pd.concat(frames, ignore_index=True)

    def _layouts(self, key: str) -> list[str]:
        with self._transaction(write=False) as db:
            found = db.execute(
                "SELECT value FROM meta WHERE key = ?", (LAYOUT_KEY + key,)
            ).fetchone()
        if found is None:
            raise ValueError(f"stored records use layout {key!r}, which the state does not hold")
        return [str(name) for name in json.loads(found[0])]

    def known_ids(self, crm: str, obj: str) -> Ids:
        """`record_ids` as Arrow text (in id order), without a Python string per id."""
        table = self.parts.read(crm, records_layout(obj), columns=["record_id"])
        return Ids(table.column("record_id"), distinct=True)  # (one row per id)

    def record_ids(self, crm: str, obj: str) -> set[str]:
        """The ids of the stored rows of `obj` in `crm`."""
        table = self.parts.read(crm, records_layout(obj), columns=["record_id"])
        return set(table.column("record_id").to_pylist())

    def row_count(self, crm: str | None = None) -> int:
        """Stored rows of every object (of `crm`, or of every CRM)."""
        return self.parts.row_count_of("records.", crm)

    def fold_rows(self) -> None:
        """Move rows kept as SQL rows (a state from before the parts) into the parts."""
        with self._transaction() as db:
            found = db.execute("SELECT DISTINCT crm, object FROM records").fetchall()
            for crm, obj in found:
                rows = db.execute(
                    "SELECT record_id, account_id, data FROM records WHERE crm = ? AND object = ?",
                    (crm, obj),
                ).fetchall()
                table = pa.table(
                    {
                        "record_id": [str(row[0]) for row in rows],
                        "account_id": [None if row[1] is None else str(row[1]) for row in rows],
                        "data": [str(row[2]) for row in rows],
                    }
                )
                self.parts.merge(str(crm), records_layout(str(obj)), table)
            db.execute("DELETE FROM records")


def encoded_pieces(
    frames: Iterable[pd.DataFrame],
    id_column: str,
    account_column: str | None,
    layouts: dict[str, list[str]],
) -> Iterator[pa.Table]:
    """The rows of `frames` (ascending ids across them) as tables of `encode_sorted`, one
    frame encoded at a time; each frame's layout is recorded in `layouts` by its key."""
    for each in frames:
        layout, encoded = encode_sorted(each, id_column, account_column)
        layouts.setdefault(layout_key(layout), layout)
        yield from encoded


def _store_layouts(db: Connection, layouts: Mapping[str, list[str]]) -> None:
    for key, layout in layouts.items():
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (LAYOUT_KEY + key, json.dumps(layout)),
        )


def unique_ids(ids: Iterable[str]) -> list[str]:
    """`ids` as strings, duplicates dropped, order kept; a lone string is refused."""
    if isinstance(ids, str):
        raise TypeError(f"expected an iterable of ids, got the string {ids!r}")
    return list(dict.fromkeys(str(record_id) for record_id in ids))


def select_in(
    db: Connection,
    sql: str,
    params: tuple[Any, ...],
    column: str,
    values: Iterable[str] | None,
) -> list[Any]:
    """Rows of `sql` (ending in a WHERE clause) `AND column IN values`; None: all its rows.

    The values go in chunks, so 100,000 of them stay under SQLite's parameter limit.
    """
    if values is None:
        return db.execute(sql, params).fetchall()
    keys = unique_ids(values)
    rows: list[Any] = []
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows += db.execute(f"{sql} AND {column} IN ({marks})", (*params, *chunk)).fetchall()
    return rows


def to_jsonable(value: Any) -> Any:
    """`value` as plain JSON types (str, int, float, bool, None, lists and dicts of them).

    Use it to compare a value about to be written with `StateStore.last_written`, which
    returns values in this form.

    Raises:
        TypeError: `value` has no faithful JSON form.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):  # numpy float64 included
        return float(value) if math.isfinite(value) else None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.datetime64):
        return to_jsonable(pd.Timestamp(value))
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, datetime):
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime(warn=False)
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return to_jsonable(float(value))
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [to_jsonable(item) for item in value]
    raise TypeError(f"cannot store a {type(value).__name__} ({value!r}) as JSON")


def dumps(value: Any) -> str:
    """`value` as compact, strict JSON text, after `to_jsonable`."""
    return _ENCODER.encode(to_jsonable(value))


def _iso_texts(series: pd.Series) -> pa.Array:
    """A column of moments as ISO 8601 UTC texts at microseconds (naive taken as UTC)."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    stamps = pa.array(series.to_numpy(dtype="datetime64[us]"), pa.timestamp("us"))
    text = pc.replace_substring(pc.cast(stamps, pa.string()), " ", "T", max_replacements=1)
    return pc.binary_join_element_wise(text, "+00:00", "")


def column_values(series: pd.Series) -> list[Any]:
    """The values of one column as `to_jsonable` would give them, vectorised by dtype."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "M"):
        return list(_iso_texts(series).to_pylist())  # 6x numpy's
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        numbers = series.to_numpy()
        values = numbers.astype(object)
        values[~np.isfinite(numbers)] = None
        return list(values.tolist())
    if isinstance(dtype, np.dtype) and dtype.kind in "biu":
        return list(series.to_numpy().tolist())
    objects = series.to_numpy(dtype=object)
    missing = pd.isna(objects)
    if pd.api.types.infer_dtype(objects, skipna=True) in ("string", "empty"):
        # text (and missing) only: nothing to convert
        return list(np.where(missing, np.array(None, dtype=object), objects).tolist())
    return [None if gone else to_jsonable(v) for v, gone in zip(objects, missing, strict=True)]


def layout_key(names: Sequence[str]) -> str:
    """The short key of a row layout (its column names, in order)."""
    return hashlib.sha256(json.dumps(list(names)).encode()).hexdigest()[:12]


def encode_sorted(
    frame: pd.DataFrame, id_column: str, account_column: str | None = None
) -> tuple[list[str], Iterator[pa.Table]]:
    """Encode each row of `frame`: the layout (column names), and tables of `record_id`,
    `account_id` (or null) and `data` (the row's JSON array text), made one slice of
    rows at a time as they are taken, in record id order, one row per id (the last).

    Raises:
        KeyError: `id_column` or `account_column` is not a column of `frame`.
        ValueError: the frame has duplicate column names or rows without an id.
        TypeError (while the tables are taken): a value has no faithful JSON form.
    """
    columns = list(frame.columns)
    if frame.columns.has_duplicates:
        raise ValueError(f"duplicate column names in {columns}")
    for needed in (id_column, account_column):
        if needed is not None and needed not in columns:
            raise KeyError(f"no column {needed!r} in {columns}")
    names = [str(column) for column in columns]
    key = layout_key(names)
    id_at = columns.index(id_column)
    account_at = columns.index(account_column) if account_column else None
    ids = _id_texts(frame.iloc[:, id_at])
    if ids.null_count:
        raise ValueError(f"column {id_column!r} has rows without an id")
    order = _last_of_each(ids)

    def pieces() -> Iterator[pa.Table]:
        for start in range(0, len(order), _ENCODE_ROWS):
            yield _encode_rows(
                _rows_at(frame, order[start : start + _ENCODE_ROWS]), key, id_at, account_at
            )

    return names, pieces()


def _id_texts(column: pd.Series) -> pa.Array:
    """A column of ids as Arrow text, as `_encode_rows` stores them (null for none);
    an Arrow text column is taken as it is, without a Python string per row."""
    if isinstance(column.dtype, pd.StringDtype | pd.ArrowDtype):
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            values = pa.array(column.array)
            if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
                return values.cast(pa.string())
    ids = column_values(column)
    return pa.array([None if value is None else str(value) for value in ids], pa.string())


def _rows_at(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """The rows of `frame` at `positions`, in that order. Taken in ascending position
    first, then put in order: Arrow text columns read in blocks are chunked, and a take
    in random order resolves each row's chunk anew (about 4x slower)."""
    if len(positions) and np.all(np.diff(positions) == 1):  # an export sorted by id already
        return frame.iloc[int(positions[0]) : int(positions[-1]) + 1]
    ascending = np.argsort(positions, kind="stable")
    return frame.iloc[positions[ascending]].iloc[np.argsort(ascending, kind="stable")]


def _last_of_each(ids: pa.Array) -> np.ndarray:
    """Row positions ordered by id (code point order, as the parts sort), only the last
    row of an id given more than once."""
    positions = pa.array(np.arange(len(ids), dtype=np.int64))
    keyed = pa.table({"id": ids, "at": positions})
    order = pc.sort_indices(keyed, [("id", "ascending"), ("at", "ascending")])
    ordered = ids.take(order)
    last = np.ones(len(ids), dtype=bool)
    if len(ids) > 1:
        same = pc.equal(ordered.slice(1), ordered.slice(0, len(ids) - 1))
        last[:-1] = ~same.to_numpy(zero_copy_only=False)
    return np.asarray(order.to_numpy())[last]


def _encode_rows(frame: pd.DataFrame, key: str, id_at: int, account_at: int | None) -> pa.Table:
    """`encode_sorted` for a slice of rows: each column becomes its JSON literals in Arrow
    (`json_literals`), and a row's text is they joined, `[key, v1, v2, ...]`."""
    ids = _id_texts(frame.iloc[:, id_at])
    accounts = (
        _id_texts(frame.iloc[:, account_at])
        if account_at is not None
        else pa.nulls(len(frame), pa.string())
    )
    literals = [json_literals(frame.iloc[:, index]) for index in range(frame.shape[1])]
    head = pa.scalar(orjson.dumps([key]).decode()[:-1], pa.string())  # '["<key>"'
    data = pc.binary_join_element_wise(head, *literals, ",") if literals else pa.repeat(head, 0)
    data = pc.binary_join_element_wise(data, pa.scalar("]"), "")
    return pa.table({"record_id": ids, "account_id": accounts, "data": data})


_INTEGRAL = "^-?[0-9]+$"


def json_literals(series: pd.Series) -> pa.Array:
    """Each value of a column as its JSON text, exactly as `orjson.dumps` writes the value
    `column_values` gives (null for a missing one). Text, numbers, booleans and moments
    are converted in Arrow; a column of anything else, or text with control characters,
    value by value."""
    dtype = series.dtype
    arrow: pa.Array | None = None
    if isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "M"):
        arrow = _iso_texts(series)
    elif isinstance(dtype, np.dtype) and dtype.kind in "fiub":
        arrow = pa.array(series.to_numpy(), from_pandas=True)
    elif isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "fiubOU":
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            arrow = pa.array(series.array, from_pandas=True)
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    literals = _arrow_literals(arrow) if arrow is not None else None
    if literals is None:
        values = column_values(series)
        return pa.array([orjson.dumps(value).decode() for value in values], pa.string())
    return literals


def _arrow_literals(arrow: pa.Array) -> pa.Array | None:
    """`json_literals` of an Arrow column, or None for a type (or text) it leaves to orjson."""
    kind = arrow.type
    if pa.types.is_float64(kind):  # (a float32's text is its own, not orjson's)
        finite = pc.is_finite(arrow)
        text = pc.cast(arrow, pa.string())
        text = pc.if_else(  # orjson writes 1.0, Arrow 1
            pc.match_substring_regex(text, _INTEGRAL),
            pc.binary_join_element_wise(text, pa.scalar(".0"), ""),
            text,
        )
        return pc.fill_null(pc.if_else(finite, text, pa.scalar(None, pa.string())), "null")
    if pa.types.is_integer(kind):
        return pc.fill_null(pc.cast(arrow, pa.string()), "null")
    if pa.types.is_boolean(kind):
        return pc.fill_null(pc.if_else(arrow, pa.scalar("true"), pa.scalar("false")), "null")
    if pa.types.is_null(kind):
        return pa.array(["null"] * len(arrow), pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        arrow = arrow.cast(pa.string())
        data = _text_bytes(arrow)
        if (data < 0x20).any():  # a control character: orjson's escapes, value by value
            return None
        escaped = arrow
        if (data == ord("\\")).any():
            escaped = pc.replace_substring(escaped, "\\", "\\\\")
        if (data == ord('"')).any():
            escaped = pc.replace_substring(escaped, '"', '\\"')
        quoted = pc.binary_join_element_wise(pa.scalar('"'), escaped, pa.scalar('"'), "")
        return pc.fill_null(quoted, "null")
    return None


def _text_bytes(text: pa.Array) -> np.ndarray:
    """The UTF-8 bytes of a text array's values, as one array (scanned without a Python
    string or a regular expression per value)."""
    if not len(text):
        return np.empty(0, dtype=np.uint8)
    _, offsets, data = text.buffers()
    if data is None:
        return np.empty(0, dtype=np.uint8)
    bounds = np.frombuffer(offsets, dtype=np.int32)[text.offset : text.offset + len(text) + 1]
    return np.frombuffer(data, dtype=np.uint8)[int(bounds[0]) : int(bounds[-1])]


def decode_rows(texts: Sequence[str], layouts: Callable[[str], list[str]]) -> pd.DataFrame:
    """A frame of stored row texts: dtype object, columns in first-seen order.

    `layouts` gives the column names of a layout key. A column missing from some rows
    (stored before the column existed) reads as None.
    """
    if not texts:
        return pd.DataFrame()
    rows: list[Any] = orjson.loads("[" + ",".join(texts) + "]")  # one call: faster
    if all(isinstance(row, list) for row in rows):
        keys = [row[0] for row in rows]
        if len(set(keys)) == 1:  # the usual case: one layout
            return pd.DataFrame([row[1:] for row in rows], columns=layouts(keys[0]), dtype=object)
    known: dict[str, list[str]] = {}

    def names_of(key: str) -> list[str]:
        if key not in known:
            known[key] = layouts(key)
        return known[key]

    dicts = [
        row if isinstance(row, dict) else dict(zip(names_of(row[0]), row[1:], strict=True))
        for row in rows
    ]
    names = dict.fromkeys(key for row in dicts for key in row)
    return pd.DataFrame({name: [row.get(name) for row in dicts] for name in names}, dtype=object)
