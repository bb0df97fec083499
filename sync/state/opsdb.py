"""The operations tables in the state file: run details, alert conditions, audience exports.

They live in the state beside `sync.state`'s tables (the state directory's SQLite file, or
the PostgreSQL schema of `ICP_STATE_URL`), created on
first use (`CREATE TABLE IF NOT EXISTS`), through a connection of their own so the run
bookkeeping of `sync.state` stays untouched; its errors map through `sync.state` (one
StateError, exit 2, for a damaged file). An older engine ignores them.

- `run_details`: per run, what `icp runs show N` tells beyond the run row (failures
  grouped by error, the criteria version, the accounts that changed tier).
- `alert_conditions`: per condition (`run_failed:csv`...), whether it is active, whether
  its one alert was delivered, and the last delivery error: one alert per condition until
  it clears, however often the run is repeated.
- `audience_rows`: per audience file, the rows of the last export (to flag what changed).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from icp_engine.sync.state.postgres import PgConnection, PgTarget, ddl, pg_error
from icp_engine.sync.state.records import FILE_NAME
from icp_engine.sync.state.sql import Connection
from icp_engine.sync.state.store import _mark_clean, _pg_target, _state_error, _vouched

_TABLES = (
    """CREATE TABLE IF NOT EXISTS run_details (run_id INTEGER PRIMARY KEY, crm TEXT NOT NULL,
        detail TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS alert_conditions (key TEXT PRIMARY KEY,
        active INTEGER NOT NULL, delivered INTEGER NOT NULL, since TEXT NOT NULL,
        title TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
        updated_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audience_rows (audience TEXT NOT NULL,
        account_id TEXT NOT NULL, row TEXT NOT NULL, PRIMARY KEY (audience, account_id))""",
)


@dataclass(frozen=True)
class ConditionRow:
    """One alert condition as stored."""

    key: str
    active: bool
    delivered: bool
    since: str
    title: str
    attempts: int
    last_error: str | None
    updated_at: str


class OpsDB:
    """The operations tables of one state directory; use it as a context manager."""

    def __init__(self, state_dir: Path, url: str | None = None) -> None:
        self._pg: PgTarget | None = _pg_target(url)
        self._failed = False
        self._vouched = False
        self.path: Path | str
        self._db: Connection
        if self._pg is not None:
            self.path = self._pg.shown
            self._db = PgConnection(self._pg)
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            self.path = state_dir / FILE_NAME
            self._vouched = _vouched(self.path)  # its pages are known good (no check here)
            with self._mapped():
                self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            with self._transaction() as db:
                for statement in _TABLES:
                    db.execute(statement if self._pg is None else ddl(statement))
        except BaseException:
            self._db.close()
            raise

    def __enter__(self) -> OpsDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()
        if isinstance(self.path, Path) and self._vouched and not self._failed:
            _mark_clean(self.path)  # the last connection to close records a clean close

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """A damaged, read-only or full state file raises the state's own StateError (exit 2,
        the same message `StateStore` gives), never a bare sqlite3 traceback."""
        try:
            yield
        except sqlite3.Error as exc:
            assert isinstance(self.path, Path)
            self._failed = True
            raise _state_error(self.path, exc) from exc
        except psycopg.Error as exc:
            assert self._pg is not None
            raise pg_error(self._pg, exc) from None

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self._mapped():
            self._db.execute("BEGIN IMMEDIATE" if self._pg is None else "BEGIN")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    # run details

    def put_detail(self, run_id: int, crm: str, detail: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO run_details (run_id, crm, detail) VALUES (?, ?, ?)"
                " ON CONFLICT (run_id) DO UPDATE SET crm = excluded.crm,"
                " detail = excluded.detail",
                (run_id, crm, json.dumps(detail, default=str)),
            )

    def detail(self, run_id: int) -> dict[str, Any] | None:
        with self._mapped():
            row = self._db.execute(
                "SELECT detail FROM run_details WHERE run_id = ?", (run_id,)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    # alert conditions

    def condition(self, key: str) -> ConditionRow | None:
        with self._mapped():
            row = self._db.execute(
                "SELECT key, active, delivered, since, title, attempts, last_error, updated_at"
                " FROM alert_conditions WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        k, a, d, s, t, n, e, u = row
        return ConditionRow(k, bool(a), bool(d), s, t, n, e, u)

    def conditions(self) -> list[ConditionRow]:
        with self._mapped():
            keys = [r[0] for r in self._db.execute("SELECT key FROM alert_conditions ORDER BY key")]
        return [c for k in keys if (c := self.condition(k)) is not None]

    def put_condition(self, row: ConditionRow) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO alert_conditions (key, active, delivered, since, title,"
                " attempts, last_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET active = excluded.active,"
                " delivered = excluded.delivered, since = excluded.since,"
                " title = excluded.title, attempts = excluded.attempts,"
                " last_error = excluded.last_error, updated_at = excluded.updated_at",
                (
                    row.key,
                    int(row.active),
                    int(row.delivered),
                    row.since,
                    row.title,
                    row.attempts,
                    row.last_error,
                    row.updated_at,
                ),
            )

    # audience exports

    def audience_rows(self, audience: str) -> dict[str, str]:
        with self._mapped():
            rows = self._db.execute(
                "SELECT account_id, row FROM audience_rows WHERE audience = ?", (audience,)
            )
            return dict(rows)

    def replace_audience(self, audience: str, rows: dict[str, str]) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM audience_rows WHERE audience = ?", (audience,))
            db.executemany(
                "INSERT INTO audience_rows (audience, account_id, row) VALUES (?, ?, ?)",
                [(audience, a, r) for a, r in rows.items()],
            )

    def audiences(self) -> list[str]:
        with self._mapped():
            return [r[0] for r in self._db.execute("SELECT DISTINCT audience FROM audience_rows")]
