"""A fast path for clean CSV exports: read by pyarrow, page by page, the same rows as
`connectors.csv_rows` would give.

`connectors.csvfiles` reads a row at a time in Python so that damage costs only the damaged
row. Almost every real export has no damage at all, and reading a million rows that way
takes most of a run. `fast_pages` first proves the file clean, then streams it with
`pyarrow.csv` (C++, multi-threaded, bounded memory): the pages hold exactly what the
row-by-row reader would yield (Arrow strings, missing for empty, Ids cleaned and in 18-character
form, every row's line number). Whenever it cannot prove that, it returns None and the
caller reads the file row by row, so every message about damage stays the same.

Clean means: UTF-8 throughout (the encoding plan has no exceptions; checked by the caller),
the header on line 1, one record per physical line (no line breaks inside quoted values,
no blank lines, no bare carriage returns), no quote in the middle of a value, every row of
the header's width, and Ids (and the account lookup) printable ASCII, not formula-like,
each Id once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from icp_engine.connectors.canonical import LINE_COLUMN, TEXT
from icp_engine.connectors.id_set import Ids, IdSet, distinct_count
from icp_engine.connectors.salesforce.ids import to_18
from pyarrow import csv as pacsv

_SCAN = 1 << 18  # bytes per block of the structure scan (small: its arrays stay in cache,
# and no fresh pages are faulted in per block; 16 MB blocks cost 2.5x the time)
_BLOCK = 1 << 20  # bytes pyarrow parses at a time (its default: each block buffer is reused;
# 16 MB blocks were fresh memory every time, zeroed by the kernel: 2 s of system time a
# million accounts)
_QUOTE, _LF, _CR = ord('"'), ord("\n"), ord("\r")
_BOUNDS_A_VALUE = np.zeros(256, dtype=bool)
_BOUNDS_A_VALUE[list(b'",\n\r')] = True
"""A quote with none of these bytes on either side is inside a value (`ab"c`): csv's
lenient reading decides those. (A table looked up by byte: `np.isin` took 4x as long.)"""
_PLAIN_UTC = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$"
_FORMULA = r"^[=+\-@]"
_FORMULA_STARTS = ("=", "+", "-", "@")
_EPOCH = "1970-01-01T00:00:00Z"
_SPARSE = 4
"""A second reading picks out the new rows' lines when at most one row in this many is
new; otherwise pyarrow parses every row and the old ones are dropped."""


@dataclass
class Older:
    """Rows to leave out of the pages: stamped in `column` certainly before `since`."""

    column: str
    since: datetime
    ids: IdSet = field(default_factory=IdSet)
    """The (stripped) Ids of every row read, left out or not."""
    already_read: Ids = field(default_factory=Ids)
    """Ids the last run read stamped exactly at `since`: such a row is not new either."""


def fast_pages(
    path: Path,
    header: list[str],
    id_index: int,
    lookup_index: int | None,
    salesforce_ids: bool,
    page_rows: int,
    older: Older | None = None,
) -> Iterator[pd.DataFrame] | None:
    """Pages of a clean file as `csvfiles._read_pages` yields them, or None (not proven clean).

    The caller has read the header (line 1) and checked the encoding plan. With `older`,
    rows whose stamp is certainly before `older.since` are left out of the pages (their
    Ids go to `older.ids`): an incremental run converts only what may have changed.
    """
    if len(header) < 2:
        return None
    rows = _structure(path)
    if rows is None:
        return None
    id_columns = [id_index] if lookup_index is None else [id_index, lookup_index]
    stamp_index = header.index(older.column) if older and older.column in header else None
    read = sorted({*id_columns, *([] if stamp_index is None else [stamp_index])})
    total = 0
    ids: list[pa.Array] = []
    kept_masks: list[pa.Array] = []  # per batch: rows not certainly older
    at_watermark: list[pa.Array] = []
    at_masks: list[pa.Array] = []  # per batch: which rows those Ids are
    try:
        for batch in _batches(path, len(header), read):
            total += batch.num_rows
            for position, index in enumerate(read):
                raw = batch.column(position)
                if index in id_columns and _odd(raw):
                    return None
                if index == id_index:
                    ids.append(_clean(raw, salesforce_ids))
                if index == stamp_index and older is not None:
                    kept, at, at_ids = _may_be_new(raw, batch.column(read.index(id_index)), older)
                    kept_masks.append(kept)
                    at_masks.append(at)
                    if len(at_ids):
                        at_watermark.append(at_ids)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError):
        return None
    if total != rows:
        return None
    every = pa.chunked_array(ids, pa.string()) if ids else pa.chunked_array([], pa.string())
    ids.clear()
    named = pc.filter(every, pc.not_equal(every, ""))
    del every  # (15 million Ids are 400 MB a copy)
    if distinct_count(named) != len(named):
        return None  # an Id twice: the row-by-row reader names both lines
    if older is None or stamp_index is None:
        return _pages(path, header, id_index, lookup_index, salesforce_ids, page_rows, None)
    older.ids.add(named)  # every Id, left out or not (deletions)
    del named
    wanted = _as_numpy(kept_masks, total)
    if at_watermark:  # one lookup (a hash of the set) for the file
        stamped = pa.chunked_array(at_watermark, pa.string())
        found = np.asarray(
            pc.is_in(stamped, older.already_read.array).to_numpy(zero_copy_only=False), bool
        )
        at = np.flatnonzero(_as_numpy(at_masks, total))
        wanted[at[found]] = False  # read there by the last run: not new either
    if not wanted.any():
        return iter(())  # nothing new: no second reading
    return _pages(path, header, id_index, lookup_index, salesforce_ids, page_rows, wanted)


def _as_numpy(masks: list[pa.Array], total: int) -> np.ndarray:
    """Per-batch boolean masks as one writable numpy array of `total` rows."""
    if not masks:
        return np.zeros(total, dtype=bool)
    whole = pa.chunked_array(masks, pa.bool_()).to_numpy(zero_copy_only=False)
    return np.array(whole, dtype=bool)


def _structure(path: Path) -> int | None:
    """Data rows when the file is one record per line with no blank line and no bare CR or
    mid-value quote; None otherwise."""
    newlines = 0
    previous = b"\n\n"  # the two bytes before the block (the header line is not blank)
    with path.open("rb") as handle:
        while block := handle.read(_SCAN):
            offset = len(previous)
            data = np.frombuffer(previous + block + handle.peek(1)[:1], dtype=np.uint8)
            inner = data[offset:-1] if len(data) > len(block) + offset else data[offset:]
            quotes = np.flatnonzero(inner == _QUOTE) + offset
            if len(quotes):
                before, after = data[quotes - 1], data[np.minimum(quotes + 1, len(data) - 1)]
                if not (_BOUNDS_A_VALUE[before] | _BOUNDS_A_VALUE[after]).all():
                    return None  # a quote inside a value
            ends = np.flatnonzero(inner == _LF) + offset
            gap = data[ends - 1]
            if (gap == _LF).any() or ((gap == _CR) & (data[ends - 2] == _LF)).any():
                return None  # a blank line
            if b"\r" in block:
                returns = np.flatnonzero(inner == _CR) + offset
                follows = data[np.minimum(returns + 1, len(data) - 1)]
                if ((follows != _LF) | (returns + 1 >= len(data))).any():
                    return None  # a bare carriage return
            newlines += len(ends)
            previous = (previous + block)[-2:]
    return newlines - 1 if previous.endswith(b"\n") else newlines


def _batches(path: Path, width: int, columns: list[int] | None) -> Iterator[pa.RecordBatch]:
    names = [f"c{i}" for i in range(width)]
    include = [names[i] for i in columns] if columns is not None else []
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=_BLOCK),
        parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            include_columns=include,
        ),
    )
    with reader:
        yield from reader


def _odd(values: pa.Array) -> bool:
    """An Id the row-by-row reader would refuse or strip in ways beyond spaces: a control
    or non-ASCII character (it has the words for those), or formula-like once stripped."""
    if not pc.all(pc.ascii_is_printable(values)).as_py():
        return True
    if any(pc.any(pc.starts_with(values, start)).as_py() for start in _FORMULA_STARTS):
        return True
    if not pc.any(pc.starts_with(values, " ")).as_py():
        return False
    return bool(pc.any(pc.match_substring_regex(pc.utf8_ltrim(values, " "), _FORMULA)).as_py())


def _clean(values: pa.Array, salesforce_ids: bool) -> pa.Array:
    """`csv_rows.clean_id` for Ids already known printable ASCII: stripped, 18 characters;
    blank ones become ''."""
    stripped = pc.utf8_trim(values, " ")
    if not salesforce_ids:
        return stripped
    short = pc.equal(pc.utf8_length(stripped), 15)
    if not pc.any(short).as_py():
        return stripped
    text = np.asarray(stripped.to_numpy(zero_copy_only=False), dtype=object)
    where = np.flatnonzero(np.asarray(short.to_numpy(zero_copy_only=False), dtype=bool))
    text[where] = [to_18(value) for value in text[where]]
    return pa.array(text, pa.string())


def _pages(
    path: Path,
    header: list[str],
    id_index: int,
    lookup_index: int | None,
    salesforce_ids: bool,
    page_rows: int,
    wanted: np.ndarray | None,
) -> Iterator[pd.DataFrame]:
    """The file's pages: every row, or only the rows `wanted` (by data row)."""
    if wanted is not None and wanted.sum() * _SPARSE <= len(wanted):
        for text, lines in _picked_lines(path, np.flatnonzero(wanted) + 2, page_rows):
            table = _parse(text, len(header))
            yield _page(table, header, id_index, lookup_index, salesforce_ids, lines)
        return
    line = 2
    buffered: list[pa.RecordBatch] = []
    count = 0
    for batch in chain(_batches(path, len(header), None), [None]):
        if batch is not None:
            buffered.append(batch)
            count += batch.num_rows
        if count and (count >= page_rows or batch is None):
            table = pa.Table.from_batches(buffered)
            lines = np.arange(line, line + count)
            if wanted is not None:
                keep = wanted[line - 2 : line - 2 + count]
                table, lines = table.filter(pa.array(keep)), lines[keep]
            yield _page(table, header, id_index, lookup_index, salesforce_ids, lines)
            line += count
            buffered, count = [], 0


def _picked_lines(
    path: Path, numbers: np.ndarray, page_rows: int
) -> Iterator[tuple[bytes, np.ndarray]]:
    """The text of the physical lines `numbers` (ascending; 1 is the header), each with a
    line end, `page_rows` lines at a time with their numbers, in one reading of the file
    (one record per line: `_structure` proved it)."""
    pieces: list[bytes] = []
    line = 1  # the number of the line `carry` begins
    carry = b""
    at = given = 0  # the next of `numbers` to find, and to give
    with path.open("rb") as handle:
        while at < len(numbers) and (block := handle.read(_SCAN)):
            data = carry + block
            ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _LF)
            complete = line + len(ends)  # the lines before this number end in `data`
            upto = int(np.searchsorted(numbers, complete, side="left"))
            for number in numbers[at:upto].tolist():
                index = number - line
                begin = 0 if index == 0 else int(ends[index - 1]) + 1
                pieces.append(data[begin : int(ends[index]) + 1])
                if len(pieces) == page_rows:
                    yield b"".join(pieces), numbers[given : given + page_rows]
                    pieces, given = [], given + page_rows
            at = upto
            carry = data[int(ends[-1]) + 1 :] if len(ends) else data
            line = complete
    if at < len(numbers) and carry:  # the last line, without a line end
        pieces.append(carry + b"\n")
    if pieces:
        yield b"".join(pieces), numbers[given:]


def _parse(text: bytes, width: int) -> pa.Table:
    """Header-less CSV lines, every column as text, as `_batches` reads them."""
    names = [f"c{i}" for i in range(width)]
    return pacsv.read_csv(
        pa.py_buffer(text),
        read_options=pacsv.ReadOptions(column_names=names, block_size=_BLOCK),
        parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _page(
    table: pa.Table,
    header: list[str],
    id_index: int,
    lookup_index: int | None,
    salesforce_ids: bool,
    lines: np.ndarray,
) -> pd.DataFrame:
    data: dict[str, pd.api.extensions.ExtensionArray] = {}
    for index, name in enumerate(header):  # Arrow strings, no Python objects
        column = table.column(index).combine_chunks()
        if index in (id_index, lookup_index):
            cleaned = _clean(column, salesforce_ids)
            column = pc.if_else(pc.equal(cleaned, ""), column, cleaned)  # blank: as it was
        nulled = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
        data[name] = pd.array(nulled.cast(pa.large_string()), dtype=TEXT)
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(lines)))
    frame[LINE_COLUMN] = lines
    return frame


def _may_be_new(
    stamps: pa.Array, raw_ids: pa.Array, older: Older
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Rows not certainly older than `older.since` (a mask of the batch), and of those the
    ones stamped exactly at it (a mask) with their Ids: new unless the last run read them
    there (the caller looks them up once, in `already_read`)."""
    moments = _moments(stamps)
    kept = pc.invert(_certainly_before(stamps, older.since, moments))
    if not older.already_read or not pc.any(kept).as_py():
        nowhere = pa.array(np.zeros(len(stamps), dtype=bool))
        return kept, nowhere, pa.array([], pa.string())
    at = pc.and_(kept, _exactly_at(older.since, moments))
    return kept, at, pc.utf8_trim(pc.filter(raw_ids, at), " ")


def _moments(stamps: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """Which stamps are plain ISO UTC datetimes (`2026-01-02T03:04:05.678Z`), and their
    moments in nanoseconds since the epoch (the epoch for the others). The moments are
    None when a plain stamp is no real moment in that range (hour 24, a leap second, a
    year before 1678 or after 2261): a cast is 4x faster than `strptime` but all or none."""
    plain = pc.match_substring_regex(stamps, _PLAIN_UTC)
    text = pc.if_else(plain, stamps, _EPOCH)
    try:
        return plain, pc.cast(pc.cast(text, pa.timestamp("ns", "UTC")), pa.int64())
    except pa.ArrowInvalid:
        return plain, None


def _exactly_at(since: datetime, moments: tuple[pa.Array, pa.Array | None]) -> pa.Array:
    """True where a stamp (`_moments`) is plain and equal to `since` to the nanosecond.

    Raises:
        pa.ArrowInvalid: a plain stamp is no moment a nanosecond count holds (the caller
            leaves the file to the row-by-row reader).
    """
    plain, nanos = moments
    if nanos is None:
        raise pa.ArrowInvalid("a plain stamp out of the nanosecond range")
    moment = pd.Timestamp(since).tz_convert("UTC").value
    return pc.and_(plain, pc.equal(nanos, moment))


def _certainly_before(
    stamps: pa.Array, since: datetime, moments: tuple[pa.Array, pa.Array | None] | None = None
) -> pa.Array:
    """True where a stamp is an ISO UTC datetime (`2026-01-02T03:04:05.678Z`) a whole
    second or more before `since`; False where it is later, or not that plain."""
    plain, nanos = moments or _moments(stamps)
    limit = int(since.timestamp())  # whole seconds up to `limit - 1` are certainly before
    if nanos is not None:
        return pc.and_(plain, pc.less(nanos, limit * 1_000_000_000))
    seconds = pc.utf8_slice_codeunits(pc.if_else(plain, stamps, _EPOCH), 0, 19)
    parsed = pc.strptime(seconds, format="%Y-%m-%dT%H:%M:%S", unit="s", error_is_null=True)
    before = pc.less_equal(pc.cast(parsed, pa.int64()), pa.scalar(limit - 1, pa.int64()))
    return pc.fill_null(pc.and_(plain, before), False)
