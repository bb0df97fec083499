"""Pulled records kept on disk, sorted there, and read back a range of keys at a time.

A whole-org run of a large org (`sync.streamed`) cannot hold every account and
opportunity at once: at 10,000,000 accounts the pulled frames alone are over 10 GB. Pages
are written here as they are pulled (Parquet, one file per page), then DuckDB sorts them
by a key on disk within a fixed memory limit (dropping all but the last row of a repeated
record id, as a pull does) and the run reads them back one range of account ids at a
time.

Everything lives in one temporary directory next to the state (removed on `close`), so a
killed run leaves at most a folder the next run of the same state directory clears.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from icp_engine.sync.state.parts import KeyRange

ROW = "__row"
"""The pull order of a spilled row (the last of a repeated id wins)."""
SPILL_PREFIX = ".icp-spill-"
SORT_MEMORY = "600MB"
"""DuckDB's memory while sorting or counting (it spills to disk past it)."""
ROW_GROUP = 65_536
"""Rows per Parquet row group of a sorted file: the unit a range read skips or reads."""


@dataclass
class SortedFile:
    """A kind's rows sorted by `key`, unique by `unique`, as one Parquet file."""

    path: Path
    key: str
    schema: pa.Schema
    """The pulled frames' schema (with pandas' metadata): what rows are read back as."""
    rows: int
    _groups: list[tuple[str, str] | None] | None = None
    """Per row group, its first and last key (None: not recorded)."""

    def batches(self, rows: int) -> Iterator[pa.Table]:
        """Every row, in key order, `rows` at a time."""
        file = pq.ParquetFile(self.path)
        for batch in file.iter_batches(batch_size=rows):
            yield self._typed(pa.Table.from_batches([batch]))

    def between(self, bounds: KeyRange) -> pa.Table:
        """The rows whose key is in `bounds`; a row without a key is in no range. Only
        the row groups whose keys may be in it are read."""
        file = pq.ParquetFile(self.path)
        if self._groups is None:
            position = file.schema_arrow.get_field_index(self.key)
            self._groups = []
            for group in range(file.num_row_groups):
                stats = file.metadata.row_group(group).column(position).statistics
                known = stats is not None and stats.has_min_max
                self._groups.append((stats.min, stats.max) if known else None)
        groups = [
            index
            for index, span in enumerate(self._groups)
            if span is None or bounds.overlaps(*span)
        ]
        if not groups:
            return self.schema.empty_table()
        table = file.read_row_groups(groups)
        return self._typed(table.filter(bounds.mask(table.column(self.key))))

    def _typed(self, table: pa.Table) -> pa.Table:
        return table.select(self.schema.names).cast(self.schema)


def to_frame(table: pa.Table) -> pd.DataFrame:
    """Spilled rows as the frame a pull gave (the dtypes of pandas' metadata)."""
    return table.to_pandas(self_destruct=True, split_blocks=True)


class Spill:
    """Pages of pulled records on disk, per kind, and their sorted copies."""

    def __init__(self, beside: Path) -> None:
        for old in beside.glob(SPILL_PREFIX + "*"):  # what a killed run left
            shutil.rmtree(old, ignore_errors=True)
        self._beside = beside
        self._directory: Path | None = None
        self._schemas: dict[str, pa.Schema] = {}
        self._pages: dict[str, int] = {}
        self._rows: dict[str, int] = {}

    @property
    def directory(self) -> Path:
        """The folder, made when the first page is kept (most runs keep none)."""
        if self._directory is None:
            self._beside.mkdir(parents=True, exist_ok=True)
            self._directory = Path(tempfile.mkdtemp(prefix=SPILL_PREFIX, dir=self._beside))
        return self._directory

    def add(self, kind: str, page: pd.DataFrame) -> None:
        """Keep one page of `kind` (every page of a kind has the first one's columns)."""
        table = pa.Table.from_pandas(page, schema=self._schemas.get(kind), preserve_index=False)
        if kind not in self._schemas:
            self._schemas[kind] = table.schema
        start = self._rows.get(kind, 0)
        table = table.append_column(ROW, pa.array(range(start, start + len(page)), pa.int64()))
        number = self._pages.get(kind, 0)
        (self.directory / kind).mkdir(exist_ok=True)
        pq.write_table(table, self.directory / kind / f"{number:06d}.parquet", compression="lz4")
        self._pages[kind] = number + 1
        self._rows[kind] = start + len(page)

    def distinct(self, kind: str, name: str) -> int:
        """How many different values column `name` of `kind` holds (DuckDB counts them
        on disk: 15 million opportunity ids hashed in memory took over a GB)."""
        with self._duckdb() as db:
            query = f"SELECT count(DISTINCT {_quoted(name)}) FROM {self._pages_of(kind)}"
            found = db.execute(query).fetchone()
        return int(found[0]) if found else 0

    def missing(self, kind: str, name: str, ids: pa.Array) -> set[str]:
        """The `ids` that column `name` of `kind` does not hold (records deleted, when
        `ids` are the ones the state knows)."""
        if not len(ids):
            return set()
        with self._duckdb() as db:
            db.register("known_ids", pa.table({"id": ids.cast(pa.string())}))
            query = (
                f"SELECT id FROM known_ids ANTI JOIN {self._pages_of(kind)} AS pulled "
                f"ON known_ids.id = pulled.{_quoted(name)}"
            )
            return {str(row[0]) for row in db.execute(query).fetchall()}

    def has(self, kind: str) -> bool:
        return self._pages.get(kind, 0) > 0

    def rows(self, kind: str) -> int:
        """Rows of `kind` added (a repeated record counted each time)."""
        return self._rows.get(kind, 0)

    def sort(
        self,
        kind: str,
        key: str,
        unique: str,
        name: str | None = None,
        repeats: bool = True,
        memory: str = SORT_MEMORY,
        threads: int = 2,
    ) -> SortedFile:
        """`kind`'s rows sorted by `key`, keeping the last row of each `unique` value
        (`repeats=False`: the caller knows each is there once, which saves DuckDB a pass),
        by DuckDB with `threads` and `memory` (it spills to disk past it).

        Raises:
            KeyError: nothing of `kind` was added.
        """
        schema = self._schemas[kind]
        out = self.directory / f"{name or kind}.parquet"
        columns = ", ".join(_quoted(name) for name in schema.names)
        last = (
            f"QUALIFY row_number() OVER (PARTITION BY {_quoted(unique)} ORDER BY {ROW} DESC) = 1 "
            if repeats
            else ""
        )
        query = (
            f"SELECT {columns} FROM {self._pages_of(kind)} {last}"
            f"ORDER BY {_quoted(key)} NULLS LAST, {_quoted(unique)}"
        )
        with self._duckdb(memory, threads) as db:
            target = str(out).replace("'", "''")
            db.execute(
                f"COPY ({query}) TO '{target}' "
                f"(FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE {ROW_GROUP})"
            )
        rows = pq.ParquetFile(out).metadata.num_rows
        return SortedFile(out, key, schema, rows)

    def _pages_of(self, kind: str) -> str:
        pages = str(self.directory / kind / "*.parquet").replace("'", "''")
        return f"read_parquet('{pages}')"

    @contextmanager
    def _duckdb(self, memory: str = SORT_MEMORY, threads: int = 2) -> Iterator[Any]:
        """A DuckDB session that spills to this folder past `memory`."""
        import duckdb

        with duckdb.connect() as db:
            db.execute(f"SET memory_limit = '{memory}'")
            db.execute(f"SET threads = {int(threads)}")
            temporary = str(self.directory / "duckdb").replace("'", "''")
            db.execute(f"SET temp_directory = '{temporary}'")
            db.execute("SET preserve_insertion_order = false")
            yield db

    def close(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
