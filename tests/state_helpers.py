"""What tests do to a state that a run never does (moved out of `StateStore`)."""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from icp_engine.sync.state.postgres import STATE_URL_ENV
from icp_engine.sync.state.store import StateStore

__all__ = ["part_rows", "reset_records", "reset_watermarks", "state_backend"]


@pytest.fixture(name="backend", params=["sqlite", "postgres"])
def state_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on SQLite, then on PostgreSQL (a schema of its own, through the same
    `ICP_STATE_URL` a user sets; child processes inherit it)."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv(STATE_URL_ENV, f"{url}&schema=t_{uuid.uuid4().hex[:16]}")
    else:
        monkeypatch.delenv(STATE_URL_ENV, raising=False)
    return str(request.param)


def reset_watermarks(store: StateStore, crm: str) -> None:
    """Forget the watermarks of `crm`: its next run pulls everything."""
    with store._transaction() as db:
        db.execute("DELETE FROM watermarks WHERE crm = ?", (crm,))


def reset_records(store: StateStore, crm: str) -> None:
    """Drop every mirror row of `crm` (last-written values and failures stay)."""
    with store._transaction() as db:
        db.execute("DELETE FROM records WHERE crm = ?", (crm,))
        db.execute("DELETE FROM parts WHERE crm = ? AND name LIKE 'records.%'", (crm,))


def part_rows(db: Any, name: str, columns: list[str]) -> list[tuple[Any, ...]]:
    """The rows of one table kept in parts (`sync.state.parts`), read straight from the
    database (an sqlite3 or psycopg connection), with their CRM first: `(crm, *columns)`."""
    found: list[tuple[Any, ...]] = []
    sql = f"SELECT crm, keys, data FROM parts WHERE name = '{name}'"
    for crm, keys, data in db.execute(sql).fetchall():
        table = pq.read_table(pa.BufferReader(bytes(keys)))  # the key columns
        rest = pq.read_table(pa.BufferReader(bytes(data)))  # the others, same row order
        for column in rest.column_names:
            table = table.append_column(column, rest.column(column))
        table = table.select(columns)
        found += [
            (crm, *row) for row in zip(*(table.column(c).to_pylist() for c in columns), strict=True)
        ]
    return found
