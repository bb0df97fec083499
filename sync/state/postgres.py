"""The state on PostgreSQL (`ICP_STATE_URL=postgresql://...`), for runs without a disk.

SQLite in the state directory stays the default. With `ICP_STATE_URL` set, the state's
tables (runs, watermarks, last written values, failures, mirror, scores, pending, and
the operations tables) live in one PostgreSQL schema, `icp_state` unless the URL says
`?schema=NAME` (one schema per state, as one directory per state with SQLite).

`PgConnection` gives the store the few `sqlite3.Connection` calls it makes (`execute`,
`executemany` with `?` placeholders, `in_transaction`) on a psycopg 3 connection in
autocommit mode, so the store's SQL is written once: plain SQL both databases run, with
DDL spelt per database by `ddl`. `AdvisoryLock` is the PostgreSQL counterpart of the
directory lock: a session-level advisory lock, released by the server when the holding
process's connection ends, even by SIGKILL.

A URL is never shown with its password: `redact_url` replaces it with `***` in every
message (errors, `icp status`, logs).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from icp_engine.sync.state.lock import LockedError
from icp_engine.sync.state.records import StateError
from psycopg import pq

STATE_URL_ENV = "ICP_STATE_URL"
DEFAULT_SCHEMA = "icp_state"
_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_CONNECT_TIMEOUT_S = 15


def state_url() -> str | None:
    """`ICP_STATE_URL` if set (and not blank), else None (SQLite in the state directory)."""
    url = os.environ.get(STATE_URL_ENV, "").strip()
    return url or None


def redact_url(url: str) -> str:
    """`url` with its password (if any) replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unreadable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def redact_text(text: str, url: str) -> str:
    """`text` (a driver's message) with the password of `url` removed wherever it appears."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    text = text.replace(url, redact_url(url))
    return text.replace(password, "***") if password else text


@dataclass(frozen=True)
class PgTarget:
    """Where a PostgreSQL state lives."""

    conninfo: str = field(repr=False)
    """The URL psycopg connects with (no `schema` parameter, no SQLAlchemy driver name)."""
    schema: str
    shown: str
    """The URL as messages show it: password redacted."""
    url: str = field(repr=False)
    """The URL as given (to open the same state again)."""

    @property
    def lock_key(self) -> int:
        """The advisory lock key of this state: a stable signed 64-bit hash of its schema."""
        digest = hashlib.sha256(f"icp_state:{self.schema}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


def parse_url(url: str) -> PgTarget:
    """Read `ICP_STATE_URL`; raise `StateError` (without the password) if it is unusable."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise StateError(shown, f"{STATE_URL_ENV} is not a URL ({exc})", _ADVICE) from None
    if parts.scheme not in _SCHEMES:
        raise StateError(
            shown,
            f"{STATE_URL_ENV} must be a postgresql:// URL. Got scheme {parts.scheme!r}",
            _ADVICE,
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not _SCHEMA_NAME.fullmatch(schema):
        raise StateError(
            shown,
            f"?schema= must be a lower-case SQL name (letters, digits, _). Got {schema!r}",
            _ADVICE,
        )
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=rest))
    return PgTarget(conninfo, schema, shown, url)


_ADVICE = (
    f"Set {STATE_URL_ENV}=postgresql://USER:PASSWORD@HOST:5432/DATABASE[?schema=NAME], or "
    "unset it to keep the state in the --state directory"
)


@lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """The store's `?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A psycopg connection answering the `sqlite3.Connection` calls the store makes.

    Autocommit: transactions are the store's own `BEGIN` / `COMMIT`, as with SQLite.
    """

    def __init__(self, target: PgTarget, create_schema: bool = True) -> None:
        self.target = target
        try:
            self._conn = psycopg.connect(
                target.conninfo,
                autocommit=True,
                connect_timeout=_CONNECT_TIMEOUT_S,
                application_name="icp-engine",
            )
        except psycopg.Error as exc:
            raise pg_error(target, exc, connecting=True) from None
        try:
            if create_schema and not self.schema_exists():  # no CREATE right needed then
                self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"')
            self._conn.execute(f'SET search_path TO "{target.schema}"')
        except psycopg.Error as exc:
            self._conn.close()
            raise pg_error(target, exc) from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self._conn.execute(_placeholders(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor[Any]:
        cursor = self._conn.cursor()
        rows = [tuple(row) for row in rows]
        if rows:
            cursor.executemany(_placeholders(sql), rows)
        return cursor

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != pq.TransactionStatus.IDLE

    def schema_exists(self) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
            (self.target.schema,),
        ).fetchone()
        return row is not None

    def tables(self) -> set[str]:
        rows = self._conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (self.target.schema,),
        )
        return {str(row[0]) for row in rows}

    def columns(self, table: str) -> set[str]:
        rows = self._conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s",
            (self.target.schema, table),
        )
        return {str(row[0]) for row in rows}

    def close(self) -> None:
        self._conn.close()


def ddl(statement: str) -> str:
    """A CREATE statement of the SQLite schema as PostgreSQL spells it."""
    return (
        statement.replace(
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
        .replace(" WITHOUT ROWID", "")
        .replace(" REAL", " DOUBLE PRECISION")
        .replace(" BLOB", " BYTEA")
    )


def pg_error(target: PgTarget, exc: psycopg.Error, connecting: bool = False) -> StateError:
    """A driver error as the StateError a person can act on (exit 2), password removed."""
    text = redact_text(str(exc).strip() or type(exc).__name__, target.conninfo)
    text = " ".join(text.split())
    if connecting or isinstance(exc, psycopg.OperationalError):
        return StateError(
            target.shown,
            f"cannot reach the PostgreSQL state ({text})",
            f"Check that the server is up and that {STATE_URL_ENV} names it, its user and "
            "password; nothing was written",
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return StateError(
            target.shown,
            f"permission denied ({text})",
            f"Grant the user of {STATE_URL_ENV} CREATE on the database and use of schema "
            f"{target.schema}",
        )
    if isinstance(exc, psycopg.errors.DiskFull):
        return StateError(
            target.shown,
            f"could not be written: {text}",
            "Free disk space on the server and run again; nothing the state does not record "
            "was lost",
        )
    return StateError(target.shown, f"is damaged or not an ICP state ({text})")


class AdvisoryLock:
    """One run at a time per PostgreSQL state: `pg_try_advisory_lock` on the store's own
    connection. The holder's pid, host, command and start go into `lock_holder`, so a
    refused run can say who holds it (as the directory lock does)."""

    def __init__(self, db: PgConnection) -> None:
        self._db = db
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this lock object holds the lock."""
        return self._held

    def acquire(self) -> None:
        """Take the lock (a no-op if held already). Raises `LockedError` if another has it."""
        if self._held:
            return
        key = self._db.target.lock_key
        try:
            taken = self._db.execute("SELECT pg_try_advisory_lock(?)", (key,)).fetchone()
            if not (taken and taken[0]):
                row = self._db.execute(
                    "SELECT pid, command, since FROM lock_holder WHERE id = 1"
                ).fetchone()
                pid, command, since = row if row else (None, None, None)
                raise LockedError(
                    self._db.target.shown,
                    pid,
                    command,
                    since,
                    f"state {self._db.target.shown}",
                )
            self._held = True
            since = datetime.now(UTC).isoformat(timespec="microseconds")
            command = f"{socket.gethostname()}: {' '.join(sys.argv)}"
            self._db.execute(
                "INSERT INTO lock_holder (id, pid, command, since) VALUES (1, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET pid = excluded.pid,"
                " command = excluded.command, since = excluded.since",
                (os.getpid(), command, since),
            )
        except psycopg.Error as exc:
            raise pg_error(self._db.target, exc) from None

    def release(self) -> None:
        """Release the lock if held."""
        if not self._held:
            return
        self._held = False
        try:
            self._db.execute("DELETE FROM lock_holder WHERE id = 1")
            self._db.execute("SELECT pg_advisory_unlock(?)", (self._db.target.lock_key,))
        except psycopg.Error:
            pass  # the connection is gone: the server released the lock with it


LOCK_TABLE = """CREATE TABLE IF NOT EXISTS lock_holder (id INTEGER PRIMARY KEY,
    pid INTEGER, command TEXT, since TEXT)"""
"""Who holds the advisory lock (PostgreSQL only; SQLite's lock file holds the same)."""
