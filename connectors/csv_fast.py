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
_AROUND = np.frombuffer(b'",\n\r', dtype=np.uint8)
"""A quote with none of these on either side is inside a value (`ab"c`): csv's lenient
reading decides those."""
_PLAIN_UTC = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$"
_ODD_ID = r"[^\x20-\x7e]"  # control or non-ASCII: the row-by-row reader has the words
_FORMULA = r"^[=+\-@]"


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
    total = changed = 0
    ids: list[pa.Array] = []
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
                    certain, at, at_ids = _may_be_new(
                        raw, batch.column(read.index(id_index)), older
                    )
                    changed += certain
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
    found = np.empty(0, dtype=bool)
    if at_watermark and older is not None:  # one lookup (a hash of the set) for the file
        stamped = pa.chunked_array(at_watermark, pa.string())
        read_there = older.already_read.array
        found = np.asarray(pc.is_in(stamped, read_there).to_numpy(zero_copy_only=False), bool)
        changed += int((~found).sum())
    if older is not None and stamp_index is not None and changed == 0:
        # nothing new: no second reading; the set of Ids (wanted for deletions) also tells
        # whether one is repeated
        if distinct_count(named) != len(named):
            return None  # an Id twice: the row-by-row reader names both lines
        older.ids.add(named)
        return iter(())
    if distinct_count(named) != len(named):
        return None  # an Id twice: the row-by-row reader names both lines
    read_before = np.zeros(total, dtype=bool)  # at the watermark, read there last run
    if len(found):
        at = pa.chunked_array(at_masks, pa.bool_()).to_numpy(zero_copy_only=False)
        read_before[np.flatnonzero(np.asarray(at, dtype=bool))[found]] = True
    return _pages(
        path, header, id_index, lookup_index, salesforce_ids, page_rows, older, read_before
    )


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
                bounded = np.isin(before, _AROUND) | np.isin(after, _AROUND)
                if not bounded.all():
                    return None  # a quote inside a value
            ends = np.flatnonzero(inner == _LF) + offset
            gap = data[ends - 1]
            if (gap == _LF).any() or ((gap == _CR) & (data[ends - 2] == _LF)).any():
                return None  # a blank line
            returns = np.flatnonzero(inner == _CR) + offset
            follows = data[np.minimum(returns + 1, len(data) - 1)]
            if len(returns) and ((follows != _LF) | (returns + 1 >= len(data))).any():
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
    """An Id the row-by-row reader would refuse or strip in ways beyond spaces."""
    stripped = pc.utf8_trim(values, " ")
    odd = pc.or_(
        pc.match_substring_regex(values, _ODD_ID), pc.match_substring_regex(stripped, _FORMULA)
    )
    return bool(pc.any(odd).as_py())


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
    older: Older | None,
    read_before: np.ndarray,
) -> Iterator[pd.DataFrame]:
    """The file's pages; with `older`, rows certainly older than its `since`, and rows
    at it that the last run read there (`read_before`, by row), are left out."""
    line = 2
    buffered: list[pa.RecordBatch] = []
    count = 0
    for batch in _batches(path, len(header), None):
        buffered.append(batch)
        count += batch.num_rows
        if count >= page_rows:
            skip = read_before[line - 2 : line - 2 + count]
            yield _page(buffered, header, id_index, lookup_index, salesforce_ids, line, older, skip)
            line += count
            buffered, count = [], 0
    if count:
        skip = read_before[line - 2 : line - 2 + count]
        yield _page(buffered, header, id_index, lookup_index, salesforce_ids, line, older, skip)


def _page(
    batches: list[pa.RecordBatch],
    header: list[str],
    id_index: int,
    lookup_index: int | None,
    salesforce_ids: bool,
    line: int,
    older: Older | None,
    read_before: np.ndarray,
) -> pd.DataFrame:
    table = pa.Table.from_batches(batches)
    columns: list[pa.Array] = []
    for index in range(len(header)):
        column = table.column(index).combine_chunks()
        if index in (id_index, lookup_index):
            cleaned = _clean(column, salesforce_ids)
            column = pc.if_else(pc.equal(cleaned, ""), column, cleaned)  # blank: as it was
        columns.append(column)
    lines = np.arange(line, line + table.num_rows)
    if older is not None and older.column in header:
        ids = columns[id_index]
        named = pc.filter(ids, pc.not_equal(ids, ""))
        older.ids.add(pc.utf8_trim(named, " "))
        keep = pc.invert(_certainly_before(columns[header.index(older.column)], older.since))
        if read_before.any():  # not new either: spare making them into the page
            keep = pc.and_(keep, pa.array(~read_before))
        columns = [pc.filter(column, keep) for column in columns]
        lines = lines[np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)]
    data: dict[str, pd.api.extensions.ExtensionArray] = {}
    for name, values in zip(header, columns, strict=True):  # Arrow strings, no Python objects
        nulled = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
        data[name] = pd.array(nulled.cast(pa.large_string()), dtype=TEXT)
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(lines)))
    frame[LINE_COLUMN] = lines
    return frame


def _may_be_new(
    stamps: pa.Array, raw_ids: pa.Array, older: Older
) -> tuple[int, pa.Array, pa.Array]:
    """Rows not certainly older than `older.since`: how many are new for sure (stamped
    after it, or not plainly), and which rows (a mask of the batch) and Ids are those
    stamped exactly at it (new unless the last run read them there: the caller looks
    them up once, in `already_read`)."""
    kept = pc.invert(_certainly_before(stamps, older.since))
    if not older.already_read or not pc.any(kept).as_py():
        certain_count = int(pc.sum(pc.cast(kept, pa.int64())).as_py() or 0)
        nowhere = pa.array(np.zeros(len(stamps), dtype=bool))
        return certain_count, nowhere, pa.array([], pa.string())
    at = pc.and_(kept, _exactly_at(stamps, older.since))
    certain = pc.and_(kept, pc.invert(at))
    at_ids = pc.utf8_trim(pc.filter(raw_ids, at), " ")
    return int(pc.sum(pc.cast(certain, pa.int64())).as_py() or 0), at, at_ids


def _exactly_at(stamps: pa.Array, since: datetime) -> pa.Array:
    """True where a stamp is an ISO UTC datetime (`2026-01-02T03:04:05.678Z`) equal to
    `since` to the nanosecond; False where it differs or is not that plain."""
    plain = pc.match_substring_regex(stamps, _PLAIN_UTC)
    text = pc.if_else(plain, stamps, "1970-01-01T00:00:00Z")
    parsed = pc.cast(pc.cast(text, pa.timestamp("ns", "UTC")), pa.int64())
    moment = pd.Timestamp(since).tz_convert("UTC").value
    return pc.fill_null(pc.and_(plain, pc.equal(parsed, moment)), False)


def _certainly_before(stamps: pa.Array, since: datetime) -> pa.Array:
    """True where a stamp is an ISO UTC datetime (`2026-01-02T03:04:05.678Z`) a whole
    second or more before `since`; False where it is later, or not that plain."""
    plain = pc.match_substring_regex(stamps, _PLAIN_UTC)
    seconds = pc.utf8_slice_codeunits(pc.if_else(plain, stamps, "1970-01-01T00:00:00Z"), 0, 19)
    parsed = pc.strptime(seconds, format="%Y-%m-%dT%H:%M:%S", unit="s", error_is_null=True)
    limit = pa.scalar(int(since.timestamp()) - 1, pa.int64())
    before = pc.less_equal(pc.cast(parsed, pa.int64()), limit)
    return pc.fill_null(pc.and_(plain, before), False)
