"""The per-record tables of the state, kept compact: sorted, compressed Parquet parts.

The records mirror, the last-written values and the remembered scores grow with the org
(a row per account, per opportunity, per account and output field). Kept as SQL rows they
cost about 2.4 KB per account (a million accounts: 2.4 GB, most of it repeated column
names, timestamps and index pages). Here each table is a sequence of parts: Parquet
files (zstd) of at most `PART_ROWS` rows, sorted by their key, stored as BLOBs in the
state database itself (table `parts`, one row per part with its first and last key). The
state stays one SQLite file or one PostgreSQL schema, and replacing a part is part of the
same transaction as everything else a run records, so a crash leaves the old parts or the
new ones, never half of each.

A merge touches only the parts whose key range holds a changed or deleted key; a read by
key reads only the parts whose range may hold one of them. Columns are stored as Parquet
dictionary pages: values that repeat (a tier, a run's timestamp, a field name) cost a few
bits a row.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from icp_engine.sync.state.sql import Connection

PART_ROWS = 250_000
"""Rows per part when a table is (re)written; a merge splits a part past twice this."""
_ZSTD_LEVEL = 3
PARTS_TABLE = """CREATE TABLE parts (crm TEXT NOT NULL, name TEXT NOT NULL,
    part INTEGER NOT NULL, first_key TEXT NOT NULL, last_key TEXT NOT NULL,
    row_count INTEGER NOT NULL, keys BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (crm, name, part))"""
"""A part is two Parquet files: `keys` (the layout's index columns) and `data` (the rest,
in the same row order). `keys` comes first in the row, so reading it (the ids of a
million records, which rows a lookup wants) leaves `data`'s pages unread."""


@dataclass(frozen=True)
class Layout:
    """One table kept in parts: its columns, its key and which row wins on a clash."""

    name: str
    schema: pa.Schema
    unique: tuple[str, ...]
    """The columns that identify a row; the first is the key parts are ranged by."""
    keep: Literal["new", "old"] = "new"
    """On a clash, the merged row replaces the stored one (`new`), or is dropped (`old`)."""
    index: tuple[str, ...] = ()
    """Columns kept with the unique ones in the part's `keys` file (read without the rest)."""
    unrepeated: tuple[str, ...] = ()
    """Columns whose values seldom repeat (a record's JSON text), stored without the
    dictionary page Parquet would fill and then abandon (the same size; writing a 250,000
    row mirror part took 0.34 to 0.36 s against 0.36 to 0.38 s with it)."""

    @property
    def key(self) -> str:
        return self.unique[0]

    @property
    def key_schema(self) -> pa.Schema:
        names = [*self.unique, *self.index]
        return pa.schema([self.schema.field(name) for name in names])

    @property
    def data_schema(self) -> pa.Schema:
        keys = set(self.key_schema.names)
        return pa.schema([field for field in self.schema if field.name not in keys])


def records_layout(obj: str) -> Layout:
    """The records mirror of one object: the JSON row text of `sync.state.mirror`."""
    schema = pa.schema(
        [("record_id", pa.string()), ("account_id", pa.string()), ("data", pa.string())]
    )
    return Layout(
        f"records.{obj}", schema, ("record_id",), index=("account_id",), unrepeated=("data",)
    )


def boundary_layout(obj: str) -> Layout:
    """The Ids a run read at the watermark's own stamp, of one object (`Watermark`): after
    a bulk load gave every record one stamp, all of the org's Ids."""
    return Layout(f"boundary.{obj}", pa.schema([("record_id", pa.string())]), ("record_id",))


LAST_WRITTEN = Layout(
    "last_written",
    pa.schema(
        [
            ("record_id", pa.string()),
            ("field", pa.string()),
            ("value", pa.string()),
            ("run_id", pa.int64()),
            ("written_at", pa.string()),
        ]
    ),
    ("record_id", "field"),
)
TEXTS = pa.dictionary(pa.int32(), pa.string())
"""Text that repeats (a tier, a run's timestamp), held as a dictionary in memory too."""
PENDING = Layout(
    "pending",
    pa.schema(
        [
            ("record_id", pa.string()),
            ("field", pa.string()),
            ("value", TEXTS),
            ("run_id", pa.int64()),
            ("since", TEXTS),
        ]
    ),
    ("record_id", "field"),
)
"""Changes handed over (an update file) and not yet seen in the CRM: after a backfill,
one row per account and output field (five million at a million accounts: the values and
timestamps as dictionaries, not five million texts each)."""
SCORES = Layout(
    "scores",
    pa.schema(
        [
            ("account_id", pa.string()),
            ("fingerprint", pa.string()),
            ("version", pa.string()),
            ("score", pa.float64()),
            ("tier", pa.string()),
            ("run_id", pa.int64()),
            ("written_at", pa.string()),
        ]
    ),
    ("account_id", "fingerprint"),
    keep="old",  # the first score under a criteria version is the prediction judged
)


@dataclass(frozen=True)
class _Part:
    number: int
    first: str
    last: str
    rows: int


@dataclass(frozen=True)
class KeyRange:
    """Keys greater than `after` and at most `upto` (None: unbounded on that side)."""

    after: str | None = None
    upto: str | None = None

    def overlaps(self, first: str, last: str) -> bool:
        """Some key from `first` to `last` is in the range."""
        above = self.after is None or last > self.after
        return above and (self.upto is None or first <= self.upto)

    def holds(self, first: str, last: str) -> bool:
        """Every key from `first` to `last` is in the range."""
        above = self.after is None or first > self.after
        return above and (self.upto is None or last <= self.upto)

    def mask(self, keys: pa.Array | pa.ChunkedArray) -> pa.Array:
        inside = pc.is_valid(keys)
        if self.after is not None:
            inside = pc.and_(inside, pc.greater(keys, pa.scalar(self.after, keys.type)))
        if self.upto is not None:
            inside = pc.and_(inside, pc.less_equal(keys, pa.scalar(self.upto, keys.type)))
        return inside


class Parts:
    """The parts of every table of one state, in the store's transactions."""

    def __init__(self, transaction: Callable[..., AbstractContextManager[Connection]]) -> None:
        self._transaction = transaction

    def _catalog(self, db: Connection, crm: str, layout: Layout) -> list[_Part]:
        rows = db.execute(
            "SELECT part, first_key, last_key, row_count FROM parts WHERE crm = ? AND name = ?",
            (crm, layout.name),
        ).fetchall()
        parts = [_Part(int(n), str(first), str(last), int(count)) for n, first, last, count in rows]
        return sorted(parts, key=lambda part: part.first)  # code-point order, as Arrow sorts

    def _load(
        self,
        db: Connection,
        crm: str,
        layout: Layout,
        part: _Part,
        columns: list[str] | None = None,
        keys: pa.Array | None = None,
        match: tuple[str, pa.Array] | None = None,
        between: KeyRange | None = None,
    ) -> pa.Table:
        """A part's rows (only those whose key is in `keys`, whose index column
        `match[0]` is in `match[1]`, and whose key is `between`, when given), with
        `columns` (None: all). The `data` file is read only when a column of it is wanted
        and a row is left."""
        where = (crm, layout.name, part.number)
        sql = "SELECT {} FROM parts WHERE crm = ? AND name = ? AND part = ?"
        (blob,) = db.execute(sql.format("keys"), where).fetchone()
        table = _keys_file(bytes(blob), layout)
        mask = pc.is_in(table.column(layout.key), value_set=keys) if keys is not None else None
        if match is not None:
            found = pc.fill_null(pc.is_in(table.column(match[0]), value_set=match[1]), False)
            mask = found if mask is None else pc.and_(mask, found)
        if between is not None and not between.holds(part.first, part.last):
            inside = between.mask(table.column(layout.key))
            mask = inside if mask is None else pc.and_(mask, inside)
        if mask is not None:
            table = table.filter(mask)
        names = columns if columns is not None else layout.schema.names
        if not table.num_rows:
            return layout.schema.empty_table().select(names)
        if set(names) <= set(layout.key_schema.names):
            return table.select(names)
        (blob,) = db.execute(sql.format("data"), where).fetchone()
        return _with_data_file(table, bytes(blob), layout, mask).select(names)

    def crms_of(self, name: str) -> list[str]:
        """The CRMs that have rows in table `name`."""
        with self._transaction(write=False) as db:
            found = db.execute("SELECT DISTINCT crm FROM parts WHERE name = ?", (name,))
            return sorted(str(crm) for (crm,) in found.fetchall())

    def row_count_of(self, prefix: str, crm: str | None = None) -> int:
        """Rows of the tables whose name starts with `prefix` (of `crm`, or of every CRM)."""
        with self._transaction(write=False) as db:
            (count,) = db.execute(
                "SELECT COALESCE(SUM(row_count), 0) FROM parts WHERE name LIKE ?"
                " AND (CAST(? AS TEXT) IS NULL OR crm = ?)",
                (prefix + "%", crm, crm),
            ).fetchone()
        return int(count)

    def read(
        self,
        crm: str,
        layout: Layout,
        keys: Collection[str] | None = None,
        columns: list[str] | None = None,
        match: tuple[str, Collection[str]] | None = None,
        between: KeyRange | None = None,
    ) -> pa.Table:
        """The rows whose key is in `keys` (None: every row), whose index column
        `match[0]` holds one of `match[1]` (None: any) and whose key is in the range
        `between` (None: any), sorted by their unique columns, with `columns` (None: all)."""
        names = columns if columns is not None else layout.schema.names
        tables = list(self.read_each(crm, layout, keys, columns, match, between))
        if not tables:
            return layout.schema.empty_table().select(names)
        return pa.concat_tables(tables)

    def read_each(
        self,
        crm: str,
        layout: Layout,
        keys: Collection[str] | None = None,
        columns: list[str] | None = None,
        match: tuple[str, Collection[str]] | None = None,
        between: KeyRange | None = None,
    ) -> Iterator[pa.Table]:
        """`read`, a part's rows at a time (parts with none left out), in key order."""
        names = columns if columns is not None else layout.schema.names
        matching = None if match is None else (match[0], pa.array(list(match[1]), pa.string()))
        with self._transaction(write=False) as db:
            yield from self._tables(db, crm, layout, keys, names, matching, between)

    def _tables(
        self,
        db: Connection,
        crm: str,
        layout: Layout,
        keys: Collection[str] | None,
        columns: list[str],
        match: tuple[str, pa.Array] | None,
        between: KeyRange | None = None,
    ) -> Iterator[pa.Table]:
        catalog = self._catalog(db, crm, layout)
        wanted = None if keys is None else sorted({str(key) for key in keys})
        if wanted is not None and not wanted:
            return
        for part in catalog:
            if between is not None and not between.overlaps(part.first, part.last):
                continue
            value_set = None
            if wanted is not None:
                start = bisect.bisect_left(wanted, part.first)
                stop = bisect.bisect_right(wanted, part.last, lo=start)
                if start == stop:
                    continue  # no wanted key in this part's range
                # only the part's own keys: a lookup hashes its set on every call
                value_set = pa.array(wanted[start:stop], pa.string())
            table = self._load(db, crm, layout, part, columns, value_set, match, between)
            if table.num_rows:
                yield table

    def merge(
        self,
        crm: str,
        layout: Layout,
        rows: pa.Table | None = None,
        drop: Collection[str] | pa.Table = (),
    ) -> None:
        """Add `rows` (a clash decided by `layout.keep`) and remove every row whose key is
        in `drop` (removed before `rows` are added), rewriting only the parts touched.
        `drop` as a table of the layout's unique columns (text) removes the rows with
        exactly those values (a record's one field, not all of them).

        The rows are never copied whole: they are ordered by sort indices, and each part
        takes its own rows (peak memory: the rows given, plus one part)."""
        incoming = None
        if rows is not None and rows.num_rows:  # one chunk per column: `take` is much faster
            incoming = rows.cast(layout.schema).combine_chunks()
        order = _order(incoming, layout) if incoming is not None else None
        pairs = _Drop(drop, layout) if isinstance(drop, pa.Table) and drop.num_rows else None
        dropped = [] if isinstance(drop, pa.Table) else sorted({str(key) for key in drop})
        if order is None and not dropped and pairs is None:
            return
        with self._transaction() as db:
            catalog = self._catalog(db, crm, layout)
            if incoming is not None and order is not None and _appended(incoming, layout, catalog):
                # rows after every stored key (a streamed run's next slice): parts of their
                # own; the stored parts are rewritten only for what `drop` removes
                self._write(db, crm, layout, incoming, order, split_above=0)
                incoming = order = None
            if not catalog:
                return
            touched: dict[int, pa.Array | None] = {}
            if incoming is not None and order is not None:
                keys = incoming.column(layout.key).take(order)
                slot = _slots(keys, catalog)
                bounds = np.flatnonzero(np.diff(slot)) + 1
                for begin, stop in zip(
                    [0, *bounds.tolist()], [*bounds.tolist(), len(keys)], strict=True
                ):
                    touched[int(slot[begin])] = order.slice(begin, stop - begin)
            for index, part in enumerate(catalog):
                begin = bisect.bisect_left(dropped, part.first)
                if (begin < len(dropped) and dropped[begin] <= part.last) or (
                    pairs is not None and pairs.touches(part)
                ):
                    touched.setdefault(index, None)
            gone = pa.array(dropped, pa.string())

            def kept(old: pa.Table, part: _Part) -> pa.Table:  # (in a rebuilding thread)
                if pairs is not None:
                    return pairs.remove(old, part)
                if dropped:
                    return old.filter(pc.invert(pc.is_in(old.column(layout.key), gone)))
                return old

            with _Rewrites(lambda part: self._blobs(db, crm, layout, part), layout) as rewrites:
                for index in sorted(touched):
                    taken = touched[index]
                    given = None if taken is None or incoming is None else incoming.take(taken)
                    rewrites.submit(catalog[index], given, kept)
                    for part, built in rewrites.done():
                        self._replace(db, crm, layout, part, built)
                for part, built in rewrites.done(everything=True):
                    self._replace(db, crm, layout, part, built)

    def merge_sorted(self, crm: str, layout: Layout, pieces: Iterable[pa.Table]) -> None:
        """`merge` for rows given piece by piece, sorted by key across the pieces and
        unique (a given row replaces a stored one with its key).

        Only one piece, and the rows of one part, are held at a time: a million rows
        encoded on the way in never exist whole. Into an empty table the parts are
        written as the pieces come (`built_parts`); otherwise each part is rewritten
        once, with the rows that fall in its range.

        Raises:
            ValueError: the pieces are not in strictly ascending key order.
        """
        _check_sorted_layout(layout)
        with self._transaction() as db:
            catalog = self._catalog(db, crm, layout)
            if not catalog:
                self._insert(db, crm, layout, built_parts(layout, pieces))
                return
            rewrites = _Rewrites(lambda part: self._blobs(db, crm, layout, part), layout)
            held: list[pa.Table] = []
            slot = -1
            previous: str | None = None
            with rewrites:
                for given in pieces:
                    if not given.num_rows:
                        continue
                    piece = given.cast(layout.schema)
                    keys = piece.column(layout.key).combine_chunks()
                    previous = _check_ascending(keys, previous, layout)
                    slots = _slots(keys, catalog)
                    bounds = (np.flatnonzero(np.diff(slots)) + 1).tolist()
                    for begin, stop in zip([0, *bounds], [*bounds, len(keys)], strict=True):
                        if int(slots[begin]) != slot:
                            if slot >= 0:
                                rewrites.submit(catalog[slot], pa.concat_tables(held))
                            held, slot = [], int(slots[begin])
                        held.append(piece.slice(begin, stop - begin))
                        for part, built in rewrites.done():
                            self._replace(db, crm, layout, part, built)
                if slot >= 0:
                    rewrites.submit(catalog[slot], pa.concat_tables(held))
                for part, built in rewrites.done(everything=True):
                    self._replace(db, crm, layout, part, built)

    def is_empty(self, crm: str, layout: Layout) -> bool:
        """Whether `crm` has no parts of `layout` (no rows)."""
        with self._transaction() as db:
            return not self._catalog(db, crm, layout)

    def add_built(self, crm: str, layout: Layout, parts: Iterable[BuiltPart]) -> None:
        """Store `parts` made by `built_parts` (elsewhere: another process) as the table.

        Raises:
            ValueError: `crm` has rows of `layout` already (built parts make a new table).
        """
        _check_sorted_layout(layout)
        with self._transaction() as db:
            if self._catalog(db, crm, layout):
                raise ValueError(f"{layout.name}: built parts make a new table; {crm} has rows")
            self._insert(db, crm, layout, parts)

    def _blobs(self, db: Connection, crm: str, layout: Layout, part: _Part) -> tuple[bytes, bytes]:
        """A part's two stored Parquet files (`keys`, `data`)."""
        keys, data = db.execute(
            "SELECT keys, data FROM parts WHERE crm = ? AND name = ? AND part = ?",
            (crm, layout.name, part.number),
        ).fetchone()
        return bytes(keys), bytes(data)

    def _replace(
        self, db: Connection, crm: str, layout: Layout, part: _Part, built: list[BuiltPart]
    ) -> None:
        """Put `built` in the place of stored `part`."""
        db.execute(
            "DELETE FROM parts WHERE crm = ? AND name = ? AND part = ?",
            (crm, layout.name, part.number),
        )
        self._insert(db, crm, layout, built)

    def delete_all(self, crm: str, layout: Layout) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM parts WHERE crm = ? AND name = ?", (crm, layout.name))

    def _write(
        self,
        db: Connection,
        crm: str,
        layout: Layout,
        table: pa.Table,
        order: pa.Array | None,
        split_above: int,
    ) -> None:
        """Store `table` in the order of `order` (None: the table is sorted already), as one
        part, or as parts of `PART_ROWS` if it is longer than `split_above` (0: always)."""
        self._insert(db, crm, layout, _cut(table, order, layout, split_above))

    def _insert(self, db: Connection, crm: str, layout: Layout, parts: Iterable[BuiltPart]) -> None:
        """Store `parts`, numbered after the table's highest part."""
        (highest,) = db.execute(
            "SELECT COALESCE(MAX(part), 0) FROM parts WHERE crm = ? AND name = ?",
            (crm, layout.name),
        ).fetchone()
        number = int(highest)
        for part in parts:
            number += 1
            db.execute(
                "INSERT INTO parts (crm, name, part, first_key, last_key, row_count, keys, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    crm,
                    layout.name,
                    number,
                    part.first_key,
                    part.last_key,
                    part.row_count,
                    part.keys,
                    part.data,
                ),
            )


@dataclass(frozen=True)
class BuiltPart:
    """One part as stored: its key range, its row count and its two Parquet files."""

    first_key: str
    last_key: str
    row_count: int
    keys: bytes
    data: bytes


def built_parts(layout: Layout, pieces: Iterable[pa.Table]) -> Iterator[BuiltPart]:
    """The parts of a new table of `pieces` (sorted by key across them and unique), made
    as the pieces come, with no database: what `merge_sorted` stores into an empty table,
    and what another process can make for `Parts.add_built`. Holds one part's rows.

    Raises:
        ValueError: the pieces are not in strictly ascending key order.
    """
    _check_sorted_layout(layout)
    held: list[pa.Table] = []
    held_rows = 0
    previous: str | None = None
    for given in pieces:
        if not given.num_rows:
            continue
        piece = given.cast(layout.schema)
        previous = _check_ascending(piece.column(layout.key).combine_chunks(), previous, layout)
        held.append(piece)
        held_rows += piece.num_rows
        if held_rows >= PART_ROWS:
            table = pa.concat_tables(held).combine_chunks()
            whole = held_rows - held_rows % PART_ROWS
            yield from _cut(table.slice(0, whole), None, layout, split_above=0)
            held, held_rows = [table.slice(whole)], held_rows - whole
    if held_rows:
        yield from _cut(pa.concat_tables(held).combine_chunks(), None, layout, split_above=0)


def _cut(
    table: pa.Table, order: pa.Array | None, layout: Layout, split_above: int
) -> Iterator[BuiltPart]:
    """`table` in the order of `order` as one part, or as parts of `PART_ROWS` if it is
    longer than `split_above` (0: always); one key's rows stay in one part."""
    count = len(order) if order is not None else table.num_rows
    if count == 0:
        return
    size = PART_ROWS if count > (split_above or PART_ROWS) else count
    column = table.column(layout.key)

    def key_at(index: int) -> object:  # (no sorted copy of the key column)
        return column[index if order is None else order[index].as_py()].as_py()

    begin = 0
    while begin < count:
        stop = min(begin + size, count)
        last_key = key_at(stop - 1)
        while stop < count and key_at(stop) == last_key:
            stop += 1  # one key's rows stay in one part
        piece = (
            table.take(order.slice(begin, stop - begin))
            if order is not None
            else table.slice(begin, stop - begin)
        )
        yield BuiltPart(
            str(key_at(begin)),
            str(last_key),
            piece.num_rows,
            _parquet(piece.select(layout.key_schema.names), layout),
            _parquet(piece.select(layout.data_schema.names), layout),
        )
        begin = stop


def _check_sorted_layout(layout: Layout) -> None:
    if layout.keep != "new" or len(layout.unique) != 1:
        raise ValueError(f"{layout.name}: sorted merges take one unique column, new rows win")


_REWRITERS = 2
"""Parts a merge rebuilds at once, in threads (Parquet decoding and encoding,
zstd and Arrow's kernels let go of the GIL). A 1% change of a million accounts touches
every part of the mirror: saving that sync's state took 4.5 to 4.8 s with two, 5.3 to
7.0 s with one, for about 0.23 GiB more at the peak."""


class _Rewrites:
    """Stored parts rebuilt (rows dropped, rows sorted in), `_REWRITERS` at a time in threads;
    the database is only touched by the caller's thread (reading a part's files as it is
    submitted, storing the rebuilt parts in submission order)."""

    def __init__(self, blobs: Callable[[_Part], tuple[bytes, bytes]], layout: Layout) -> None:
        self._blobs = blobs
        self._layout = layout
        self._pool = ThreadPoolExecutor(_REWRITERS, thread_name_prefix="icp-parts")
        self._running: deque[tuple[_Part, Future[list[BuiltPart]]]] = deque()

    def __enter__(self) -> _Rewrites:
        return self

    def __exit__(self, *exc: object) -> None:
        for _, future in self._running:
            future.cancel()
        self._pool.shutdown(wait=True)

    def submit(
        self,
        part: _Part,
        rows: pa.Table | None,
        kept: Callable[[pa.Table, _Part], pa.Table] | None = None,
    ) -> None:
        """Rebuild `part` with `rows` (sorted, unique, in its key range; None: none), after
        `kept` (when given) took the stored rows that stay."""
        keys, data = self._blobs(part)
        job = self._pool.submit(_rebuilt, keys, data, rows, self._layout, part, kept)
        self._running.append((part, job))

    def done(self, everything: bool = False) -> Iterator[tuple[_Part, list[BuiltPart]]]:
        """Rebuilt parts in submission order: every one (`everything`), or as many as it
        takes to have fewer than `_REWRITERS` left running (each holds a part's rows)."""
        while self._running and (everything or len(self._running) >= _REWRITERS):
            part, job = self._running.popleft()
            yield part, job.result()


def _rebuilt(
    keys: bytes,
    data: bytes,
    rows: pa.Table | None,
    layout: Layout,
    part: _Part,
    kept: Callable[[pa.Table, _Part], pa.Table] | None,
) -> list[BuiltPart]:
    """A stored part (its two Parquet files), less what `kept` drops, with `rows` combined
    into it, as parts (none when nothing is left)."""
    old = _decoded(keys, data, layout)
    if kept is not None:
        old = kept(old, part)
    combined = _combine(old, rows, layout) if rows is not None else old
    return list(_cut(combined, None, layout, split_above=2 * PART_ROWS))


def _decoded(keys: bytes, data: bytes, layout: Layout) -> pa.Table:
    """A stored part's rows, every column."""
    return _with_data_file(_keys_file(keys, layout), data, layout).select(layout.schema.names)


def _keys_file(blob: bytes, layout: Layout) -> pa.Table:
    return pq.read_table(pa.BufferReader(blob), schema=layout.key_schema)


def _with_data_file(
    table: pa.Table, blob: bytes, layout: Layout, mask: pa.Array | None = None
) -> pa.Table:
    """`table` (a part's keys file, filtered by `mask` when given) with the part's data
    file's columns, filtered alike."""
    data = pq.read_table(pa.BufferReader(blob), schema=layout.data_schema)
    if mask is not None:
        data = data.filter(mask)
    for field in data.schema:
        table = table.append_column(field, data.column(field.name))
    return table


def _appended(incoming: pa.Table, layout: Layout, catalog: list[_Part]) -> bool:
    """Whether `incoming` makes parts of its own: into no parts, or enough rows (a fifth
    of a part at least: a few new records a run do not leave a trail of small parts)
    whose keys all come after every stored one."""
    if not catalog:
        return True
    if incoming.num_rows < max(1, PART_ROWS // 5):
        return False
    lowest = pc.min(incoming.column(layout.key)).as_py()
    return lowest is not None and lowest > max(part.last for part in catalog)


def _slots(keys: pa.Array | pa.ChunkedArray, catalog: list[_Part]) -> np.ndarray:
    """For each key, the part of `catalog` (sorted by first key) its range falls in: the
    last part starting at or before it, the first part for a key before them all.
    Compared in Arrow, a part at a time: no Python string per key."""
    slots = np.zeros(len(keys), dtype=np.int64)
    for part in catalog[1:]:
        after = pc.greater_equal(keys, pa.scalar(part.first, pa.string()))
        slots += np.asarray(after.to_numpy(zero_copy_only=False), dtype=np.int64)
    return slots


def _check_ascending(keys: pa.Array, previous: str | None, layout: Layout) -> str:
    """The last of `keys`, after checking they ascend strictly, from after `previous`."""
    if previous is not None:
        keys_and_previous = pa.concat_arrays([pa.array([previous], pa.string()), keys])
    else:
        keys_and_previous = keys
    count = len(keys_and_previous)
    if count > 1:
        after = pc.greater(keys_and_previous.slice(1), keys_and_previous.slice(0, count - 1))
        if not pc.all(pc.fill_null(after, False)).as_py():
            raise ValueError(f"{layout.name}: rows given to merge_sorted are not sorted and unique")
    return str(keys[len(keys) - 1].as_py())


class _Drop:
    """Rows to remove by all their unique values. A part hashes only the ones in its own
    key range, picked by comparing in Arrow (no Python string per row)."""

    def __init__(self, table: pa.Table, layout: Layout) -> None:
        unique = pa.schema([layout.schema.field(name) for name in layout.unique])
        self._table = table.select(list(layout.unique)).cast(unique).combine_chunks()
        self._keys = self._table.column(layout.key)
        self._layout = layout

    def _in(self, part: _Part) -> pa.ChunkedArray:
        low = pc.greater_equal(self._keys, pa.scalar(part.first, pa.string()))
        return pc.and_(low, pc.less_equal(self._keys, pa.scalar(part.last, pa.string())))

    def touches(self, part: _Part) -> bool:
        return bool(pc.any(self._in(part)).as_py())

    def remove(self, rows: pa.Table, part: _Part) -> pa.Table:
        mine = self._table.filter(self._in(part))
        if not mine.num_rows:
            return rows
        gone = _joined(mine, self._layout)
        return rows.filter(pc.invert(pc.is_in(_joined(rows, self._layout), value_set=gone)))


def _joined(table: pa.Table, layout: Layout) -> pa.Array:
    """The unique columns of each row as one text (a unit separator between them)."""
    columns = [table.column(name) for name in layout.unique]
    joined = columns[0] if len(columns) == 1 else pc.binary_join_element_wise(*columns, "\x1f")
    return joined.combine_chunks()


def _parquet(table: pa.Table, layout: Layout) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=_ZSTD_LEVEL,
        use_dictionary=[name for name in table.column_names if name not in layout.unrepeated],
        write_statistics=False,
    )
    return bytes(sink.getvalue().to_pybytes())


def _order(table: pa.Table, layout: Layout) -> pa.Array:
    """Indices of `table`'s rows sorted by the unique columns, one per unique value: the
    last given of several when `layout.keep` is `new`, the first otherwise.

    Each unique column is sorted as integer ranks of its distinct values (a million
    records' five fields: 5,000,000 rows), so no sorted copy of a text column is made."""
    count = table.num_rows
    ranks = [_ranks(table.column(name)) for name in layout.unique]
    order = np.lexsort((np.arange(count), *reversed(ranks)))  # the last key is the first
    if count < 2:
        return pa.array(order, pa.int64())
    same = np.ones(count - 1, dtype=bool)
    for rank in ranks:
        ordered = rank[order]
        same &= ordered[1:] == ordered[:-1]
    keep = np.ones(count, dtype=bool)
    if layout.keep == "new":
        keep[:-1] = ~same  # the last row of each unique value
    else:
        keep[1:] = ~same  # the first
    return pa.array(order[keep], pa.int64())


def _ranks(column: pa.ChunkedArray) -> np.ndarray:
    """Per row, the rank of its value among the column's distinct values in Arrow's sort
    order (code points for text; nulls last)."""
    encoded = pc.dictionary_encode(column).unify_dictionaries()
    if not encoded.num_chunks:
        return np.empty(0, dtype=np.int64)
    distinct = encoded.chunk(0).dictionary
    rank = np.empty(len(distinct) + 1, dtype=np.int64)
    rank[np.asarray(pc.sort_indices(distinct).to_numpy())] = np.arange(len(distinct))
    rank[-1] = len(distinct)  # null
    indices = [
        np.asarray(chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
        for chunk in encoded.chunks
    ]
    return rank[np.concatenate(indices)]


def _combine(old: pa.Table, new: pa.Table, layout: Layout) -> pa.Table:
    """`old` (a stored part) and `new` rows as one table sorted by the unique columns, one
    row per unique value: the new row when `layout.keep` is `new`, the old one otherwise."""
    if (
        len(layout.unique) == 1
        and new.num_rows * _FEW_NEW <= old.num_rows
        and old.column(layout.key).null_count == new.column(layout.key).null_count == 0
    ):
        return _interleaved(old, new, layout)
    combined = pa.concat_tables([old, new]).combine_chunks()  # `take` on chunks: 7x slower
    return combined.take(_order(combined, layout))


_FEW_NEW = 16
"""`_combine` slices the stored rows around the new ones, instead of sorting all of them,
when there are at least this many times as many stored rows (an incremental run's few
changed records in a part of 250,000: 0.1 s instead of 0.6 s). Keys without nulls."""


def _interleaved(old: pa.Table, new: pa.Table, layout: Layout) -> pa.Table:
    """`_combine` for one unique column, `old` and `new` each sorted by it and unique (a
    stored part; rows `merge` and `merge_sorted` give): runs of `old` between the new rows,
    found by binary search, and no sort. (Python's str order is code points, as Arrow's.)"""
    stored = np.asarray(old.column(layout.key).to_numpy(), dtype=object)
    given = np.asarray(new.column(layout.key).to_numpy(), dtype=object)
    at = np.searchsorted(stored, given)
    clash = (at < len(stored)) & (stored[np.minimum(at, len(stored) - 1)] == given)
    runs: list[pa.Table] = []
    start = 0
    for index, (position, same) in enumerate(zip(at.tolist(), clash.tolist(), strict=True)):
        if same and layout.keep == "old":
            continue  # the stored row stays
        if position > start:
            runs.append(old.slice(start, position - start))
        runs.append(new.slice(index, 1))
        start = position + 1 if same else position  # a stored row replaced, or none
    runs.append(old.slice(start))
    return pa.concat_tables(runs).combine_chunks()
