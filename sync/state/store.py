"""What a scheduled run remembers between runs: one SQLite file per state directory.

`directory/state.sqlite` holds the runs, a watermark per (crm, object), the value last
written to each (crm, record, field), the records whose write failed (retried next run),
a mirror of canonical records (`sync.mirror` encodes them), the scores written under each
criteria version (so `icp train` can judge them against later outcomes), the changes
handed over in an update file and not yet seen in the CRM (`pending`) and a small
key/value table. The tables that grow with the org (the mirror, last-written values,
scores) are kept as compressed Parquet parts in table `parts` (`sync.state.parts`); values
written batch by batch are rows of `last_written` and `scores` until the run holding the
lock closes and folds them in.
`directory/lock` (`sync.lock`) lets one run at a time work on the directory.

With `ICP_STATE_URL` (or `url=`) the same tables live in a PostgreSQL schema instead
(`sync.state.postgres`): the SQL below runs on both (`?` placeholders, ON CONFLICT upserts,
RETURNING), the lock is an advisory lock, and the checks below that concern a file are
replaced by the tables and columns check.

The file is checked when opened (SQLite header, schema version, tables and columns,
watermarks). Anything wrong, or a file that cannot be written, raises `StateError` naming the
path and what to do: state is never re-created silently. SQLite's page check (`PRAGMA
quick_check`, which reads the whole file: seconds for a large org) runs when the file is not
exactly as a clean close left it: a clean close records the file's identity (inode, size,
modification and change times) in `state.sqlite.clean`; the marker is removed while the state
is open, and a leftover WAL, a missing marker or any difference (a crash, a copy, a write by
anything else) means the check runs. Damage the marker cannot see (the disk's own) surfaces
as an SQLite error on the read that meets it, which is refused the same way. A new
state file is built under a temporary name and linked into place, so a `state.sqlite`
that exists is always a finished one and a 0-byte file is damage, never "new".

Timestamps are stored as fixed-width ISO 8601 UTC strings (microsecond precision) and
returned as tz-aware UTC datetimes; naive datetimes raise `ValueError`. Every mutating
method is one transaction: it commits at the end and rolls back on error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from icp_engine.connectors.id_set import Ids
from icp_engine.sync.state.lock import DirectoryLock
from icp_engine.sync.state.mirror import RecordMirror, dumps, select_in, unique_ids
from icp_engine.sync.state.parts import (
    LAST_WRITTEN,
    PARTS_TABLE,
    PENDING,
    SCORES,
    KeyRange,
    boundary_layout,
    records_layout,
)
from icp_engine.sync.state.postgres import (
    LOCK_TABLE,
    STATE_URL_ENV,
    AdvisoryLock,
    PgConnection,
    PgTarget,
    ddl,
    parse_url,
    pg_error,
    state_url,
)
from icp_engine.sync.state.records import (
    FILE_NAME,
    SCORE_RECORD_COLUMNS,
    Failure,
    FailureRecord,
    Pending,
    PendingChanges,
    RunRecord,
    ScoreRecord,
    StateError,
    StateVersionError,
    Watermark,
    Written,
)
from icp_engine.sync.state.sql import Connection

logger = logging.getLogger(__name__)

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 0 -> 1
        """CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, crm TEXT NOT NULL,
            kind TEXT NOT NULL, dry_run INTEGER NOT NULL, started_at TEXT NOT NULL,
            finished_at TEXT, outcome TEXT, exit_code INTEGER, counts TEXT NOT NULL DEFAULT '{}',
            api_calls INTEGER NOT NULL DEFAULT 0, message TEXT)""",
        "CREATE INDEX runs_by_crm ON runs (crm, id)",
        """CREATE TABLE watermarks (crm TEXT NOT NULL, object TEXT NOT NULL,
            value TEXT NOT NULL, boundary_ids TEXT NOT NULL, PRIMARY KEY (crm, object))""",
        """CREATE TABLE last_written (crm TEXT NOT NULL, record_id TEXT NOT NULL,
            field TEXT NOT NULL, value TEXT NOT NULL, run_id INTEGER NOT NULL,
            written_at TEXT NOT NULL, PRIMARY KEY (crm, record_id, field)) WITHOUT ROWID""",
        """CREATE TABLE failures (crm TEXT NOT NULL, record_id TEXT NOT NULL,
            run_id INTEGER NOT NULL, code TEXT, message TEXT, transient INTEGER NOT NULL,
            field_values TEXT NOT NULL, attempts INTEGER NOT NULL, first_failed_at TEXT NOT NULL,
            last_failed_at TEXT NOT NULL, PRIMARY KEY (crm, record_id))""",
        """CREATE TABLE records (crm TEXT NOT NULL, object TEXT NOT NULL,
            record_id TEXT NOT NULL, account_id TEXT, data TEXT NOT NULL,
            PRIMARY KEY (crm, object, record_id))""",
        "CREATE INDEX records_by_account ON records (crm, object, account_id)",
    ),
    (  # 1 -> 2: changes handed over (an update file) and not yet seen in the CRM
        """CREATE TABLE pending (crm TEXT NOT NULL, record_id TEXT NOT NULL,
            field TEXT NOT NULL, value TEXT NOT NULL, run_id INTEGER NOT NULL,
            since TEXT NOT NULL, PRIMARY KEY (crm, record_id, field)) WITHOUT ROWID""",
    ),
    (  # 2 -> 3: the records mirror, last-written values and scores in compressed parts
        PARTS_TABLE,
    ),
    (),  # 3 -> 4: the pending queue in the parts too (rows left in `pending` are folded)
)
SCHEMA_VERSION = len(_MIGRATIONS)
_ADDITIVE = (  # tables an older engine can ignore: created at open, no schema version bump
    """CREATE TABLE IF NOT EXISTS scores (crm TEXT NOT NULL, account_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL, version TEXT NOT NULL, score REAL, tier TEXT,
        run_id INTEGER NOT NULL, written_at TEXT NOT NULL,
        PRIMARY KEY (crm, account_id, fingerprint)) WITHOUT ROWID""",
)
_TABLES = {  # the columns every table must have (a newer engine may add more)
    "meta": {"key", "value"},
    "runs": {"id", "crm", "kind", "dry_run", "started_at", "finished_at", "outcome", "counts"},
    "watermarks": {"crm", "object", "value", "boundary_ids"},
    "last_written": {"crm", "record_id", "field", "value", "run_id", "written_at"},
    "failures": {"crm", "record_id", "code", "message", "field_values", "attempts"},
    "records": {"crm", "object", "record_id", "account_id", "data"},
    "pending": {"crm", "record_id", "field", "value", "run_id", "since"},
    "parts": {"crm", "name", "part", "first_key", "last_key", "row_count", "keys", "data"},
}
_SQLITE_HEADER = b"SQLite format 3\x00"
_SCHEMA_KEY = "schema_version"
_BUSY_TIMEOUT_S = 30.0
_ACCOUNT = "account"
_RUN_COLUMNS = "id, crm, kind, dry_run, started_at, finished_at, outcome, exit_code, counts, "
_RUN_COLUMNS += "api_calls, message"
_FOLD_SHARE = 20
"""Rows recorded one batch at a time are folded into the parts once they are 1/20th of them."""
_STRAIGHT_TO_PARTS = 10_000
"""Values or scores recorded in one call from this many on go straight into the parts;
fewer (a written batch) are rows until `compact()`."""
_SCORE_COLUMNS = ["account_id", "fingerprint", "version", "score", "tier", "run_id", "written_at"]
_ANY_CRM = "(CAST(? AS TEXT) IS NULL OR crm = ?)"
"""`crm` given, or None for all (the cast: PostgreSQL must know the parameter's type)."""


class StateStore:
    """The state of one directory (see the module docstring); use it as a context manager.

    Args:
        directory: the state directory; it and the state file are created if missing.
        url: a `postgresql://` URL: the state lives there instead (`sync.state.postgres`).
            Default: `ICP_STATE_URL` if set, else SQLite in `directory`.

    Raises:
        StateVersionError: the state comes from a newer engine.
    """

    FILE_NAME = FILE_NAME
    LOCK_NAME = "lock"

    def __init__(
        self, directory: Path | str, *, create: bool = True, url: str | None = None
    ) -> None:
        self.directory = Path(directory)
        self._depth = 0
        self._failed = False  # an SQLite error was met: the next open checks every page
        self._pg = _pg_target(url)
        self.mirror = RecordMirror(self._transaction)
        """The canonical records kept between runs (`sync.state.mirror`)."""
        self.path: Path | str
        if self._pg is not None:
            self._open_postgres(self._pg, create)
        else:
            self._open_sqlite(create)

    @classmethod
    def exists(cls, directory: Path, url: str | None = None) -> bool:
        """Whether a state was started there (a run, a reset) without creating one."""
        target = _pg_target(url)
        if target is None:
            path = directory / cls.FILE_NAME
            return path.exists() or path.is_symlink()
        db = PgConnection(target, create_schema=False)
        try:
            return "meta" in db.tables()
        except psycopg.Error as exc:
            raise pg_error(target, exc) from None
        finally:
            db.close()

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        return "sqlite" if self._pg is None else "postgresql"

    def _open_postgres(self, target: PgTarget, create: bool) -> None:
        self.path = target.shown
        db = PgConnection(target, create_schema=create)
        self._db: Connection = db
        try:
            if not create and "meta" not in db.tables():
                raise StateError(
                    self.path, "no state here: nothing has run yet", f"Check {STATE_URL_ENV}"
                )
            self._migrate()
            self._check_tables()
            self._fold_rows()
            self._lock: DirectoryLock | AdvisoryLock = AdvisoryLock(db)
        except psycopg.Error as exc:
            db.close()
            raise pg_error(target, exc) from None
        except BaseException:
            db.close()
            raise

    def _open_sqlite(self, create: bool) -> None:
        self.path = path = self.directory / self.FILE_NAME
        if self.directory.exists() and not self.directory.is_dir():
            raise StateError(
                self.directory, "is a file, not a state directory", "Give --state a directory"
            )
        if not path.exists() and not path.is_symlink():
            if not create:
                raise StateError(path, "no state here: nothing has run yet", "Check --state")
            self._create(path)
        _check_file(path)
        unchanged = _closed_cleanly(path)
        self._lock = DirectoryLock(self.directory, self.LOCK_NAME)
        try:
            self._db = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise StateError(path, f"cannot be opened ({exc})") from exc
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._check(pages=not unchanged)
            self._migrate()
            self._check_tables()
            self._fold_rows()
        except sqlite3.Error as exc:
            self._db.close()
            raise _state_error(path, exc) from exc
        except BaseException:
            self._db.close()
            raise
        _clean_marker(path).unlink(missing_ok=True)  # open: a crash from here leaves none
        _CHECKED_OPEN.add(path)

    def _create(self, path: Path) -> None:
        """Build a new state file under a temporary name, then link it into place."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / f".{self.FILE_NAME}.{os.getpid()}.new"
            temporary.unlink(missing_ok=True)
            db = sqlite3.connect(temporary, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode = DELETE")
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # replaced parts give space back
                self._db = db
                self._migrate()
            finally:
                db.close()
            with temporary.open("rb") as handle:
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)  # fails if another process made one meanwhile
            except FileExistsError:
                pass
            finally:
                temporary.unlink(missing_ok=True)
            _fsync_directory(self.directory)
        except sqlite3.Error as exc:
            raise _state_error(self.directory, exc) from exc
        except OSError as exc:
            raise StateError(
                self.directory,
                f"cannot create the state there ({exc.strerror or exc})",
                "Check the path, its permissions and the free disk space",
            ) from exc

    def _check(self, pages: bool = True) -> None:
        """Integrity: SQLite's own page check (`pages`), and that the file is an ICP state."""
        if pages:
            problems = [row[0] for row in self._db.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                raise StateError(self.path, "is damaged: " + "; ".join(map(str, problems)))
        names = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
        if not names:
            raise StateError(self.path, "holds no tables (damaged, or not an ICP state)")
        if "meta" not in names:
            raise StateError(
                self.path, "has no 'meta' table: not an ICP state file (foreign or damaged)"
            )

    def _tables(self) -> set[str]:
        if isinstance(self._db, PgConnection):
            return self._db.tables()
        return {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}

    def _columns(self, table: str) -> set[str]:
        if isinstance(self._db, PgConnection):
            return self._db.columns(table)
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    def _check_tables(self) -> None:
        for table, columns in _TABLES.items():
            found = self._columns(table)
            if not found:
                raise StateError(self.path, f"has no {table!r} table (damaged)")
            if missing := columns - found:
                raise StateError(
                    self.path, f"table {table!r} lacks {', '.join(sorted(missing))} (damaged)"
                )
        for crm, obj, value, boundary in self._db.execute(
            "SELECT crm, object, value, boundary_ids FROM watermarks"
        ):
            try:
                _parse(value)
                if not isinstance(json.loads(boundary), list):
                    raise ValueError(boundary)
            except (TypeError, ValueError) as exc:
                raise StateError(
                    self.path, f"watermark of {crm} {obj} is unreadable ({value!r}) (damaged)"
                ) from exc

    def _fold_rows(self) -> None:
        """Mirror rows and pending changes a state from before the parts kept as SQL rows
        go into the parts."""
        if self._db.execute("SELECT 1 FROM records LIMIT 1").fetchone() is not None:
            self.mirror.fold_rows()
        if self._db.execute("SELECT 1 FROM pending LIMIT 1").fetchone() is not None:
            with self._transaction() as db:
                found = db.execute("SELECT DISTINCT crm FROM pending").fetchall()
                for (crm,) in found:
                    rows = db.execute(
                        "SELECT record_id, field, value, run_id, since FROM pending WHERE crm = ?",
                        (crm,),
                    ).fetchall()
                    names = PENDING.schema.names
                    columns = list(zip(*rows, strict=True))
                    table = pa.table(dict(zip(names, columns, strict=True)), schema=PENDING.schema)
                    self.mirror.parts.merge(str(crm), PENDING, table)
                db.execute("DELETE FROM pending")

    def close(self) -> None:
        """Release the lock if held and close the database; closing twice is harmless."""
        if self._lock.held and not self._failed:  # the run that holds the lock tidies up
            with contextlib.suppress(StateError):  # left as rows, folded next time
                self.compact()
        self.release_lock()
        if isinstance(self._db, sqlite3.Connection) and not self._failed:
            # give back the pages replaced parts freed (auto_vacuum = incremental; a script
            # runs the pragma to the end, where execute() frees one page); closing must not
            # fail on it: the space is reused anyway
            with contextlib.suppress(sqlite3.Error):
                self._db.executescript("PRAGMA incremental_vacuum;")
        self._db.close()
        if self._pg is None:
            _CHECKED_OPEN.discard(Path(self.path))
            if not self._failed:
                _mark_clean(Path(self.path))

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Connection]:
        if self._depth:  # inside `atomic()`: part of its transaction
            yield self._db
            return
        begin = "BEGIN IMMEDIATE" if write and self._pg is None else "BEGIN"
        try:
            self._db.execute(begin)
            try:
                self._depth += 1  # a store call made inside joins this transaction
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._failed = True
            raise _state_error(Path(self.path), exc) from exc
        except psycopg.Error as exc:
            assert self._pg is not None
            raise pg_error(self._pg, exc) from None

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Make every change made inside one transaction: all of them land, or none."""
        if self._depth:
            yield
            return
        with self._transaction():
            yield

    def _schema_version(self) -> int:
        if "meta" not in self._tables():
            return 0
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (_SCHEMA_KEY,)).fetchone()
        if row is None:
            return 0
        try:
            version = int(row[0])
        except (TypeError, ValueError):
            version = -1
        if version < 1:
            raise StateError(self.path, f"has an unreadable schema version {row[0]!r} (damaged)")
        return version

    def _migrate(self) -> None:
        if self._schema_version() == SCHEMA_VERSION:  # the usual case: no write needed
            self._add_tables()
            return
        with self._transaction() as db:  # re-read: another process may have migrated meanwhile
            version = self._schema_version()
            if version > SCHEMA_VERSION:
                raise StateVersionError(
                    self.path,
                    f"has schema version {version}; this engine knows up to {SCHEMA_VERSION}",
                    "Upgrade the engine (or use another state directory; `icp state reset` "
                    "starts afresh, losing what it holds)",
                )
            db.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(self._ddl(statement))
            _put_meta(db, _SCHEMA_KEY, str(SCHEMA_VERSION))
        self._add_tables()

    def _add_tables(self) -> None:
        additive = _ADDITIVE if self._pg is None else (*_ADDITIVE, LOCK_TABLE)
        if {"scores", "lock_holder"} <= self._tables() or (
            self._pg is None and "scores" in self._tables()
        ):
            return
        with self._transaction() as db:
            for statement in additive:
                db.execute(self._ddl(statement))

    def _ddl(self, statement: str) -> str:
        return statement if self._pg is None else ddl(statement)

    # lock

    def acquire_lock(self) -> None:
        """Take the directory's lock (a no-op if this store holds it already).

        Raises:
            LockedError: another process (or another store in this one) holds it.
        """
        self._lock.acquire()

    def release_lock(self) -> None:
        """Release the lock if this store holds it."""
        self._lock.release()

    # records mirror (kept by `self.mirror`, in this store's transactions)

    def upsert_records(
        self,
        crm: str,
        obj: str,
        frame: pd.DataFrame | Iterable[pd.DataFrame],
        id_column: str,
        account_column: str | None = None,
    ) -> None:
        """See `RecordMirror.upsert_records`."""
        self.mirror.upsert_records(crm, obj, frame, id_column, account_column)

    def delete_records(self, crm: str, obj: str, ids: Iterable[str]) -> None:
        """See `RecordMirror.delete_records`."""
        self.mirror.delete_records(crm, obj, ids)

    def load_records(
        self,
        crm: str,
        obj: str,
        ids: Iterable[str] | None = None,
        account_ids: Iterable[str] | None = None,
        convert: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    ) -> pd.DataFrame:
        """See `RecordMirror.load_records`."""
        return self.mirror.load_records(crm, obj, ids, account_ids, convert)

    def record_ids(self, crm: str, obj: str) -> set[str]:
        """See `RecordMirror.record_ids`."""
        return self.mirror.record_ids(crm, obj)

    def known_ids(self, crm: str, obj: str) -> Ids:
        """See `RecordMirror.known_ids`."""
        return self.mirror.known_ids(crm, obj)

    # runs

    def start_run(
        self, crm: str, kind: str, dry_run: bool = False, *, started_at: datetime | None = None
    ) -> int:
        """Record a run as started (now, unless `started_at` is given) and return its id."""
        with self._transaction() as db:
            row = db.execute(
                "INSERT INTO runs (crm, kind, dry_run, started_at) VALUES (?, ?, ?, ?)"
                " RETURNING id",
                (crm, kind, int(dry_run), _text(started_at or _now())),
            ).fetchone()
        return int(row[0])

    def finish_run(
        self,
        run_id: int,
        outcome: str,
        exit_code: int,
        counts: Mapping[str, int],
        api_calls: int,
        message: str | None = None,
        *,
        finished_at: datetime | None = None,
    ) -> None:
        """Record how run `run_id` ended. Raises `KeyError` for an unknown run."""
        counts_text = json.dumps({str(key): int(value) for key, value in counts.items()})
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET finished_at = ?, outcome = ?, exit_code = ?, counts = ?,"
                " api_calls = ?, message = ? WHERE id = ?",
                (
                    _text(finished_at or _now()),
                    outcome,
                    exit_code,
                    counts_text,
                    api_calls,
                    message,
                    run_id,
                ),
            )
            if cursor.rowcount == 0:
                raise KeyError(f"no run {run_id} in {self.path}")

    def runs(self, crm: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The last `limit` runs (of `crm`, or of all CRMs), newest first."""
        rows = self._db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE {_ANY_CRM} ORDER BY id DESC LIMIT ?",
            (crm, crm, limit),
        ).fetchall()
        return [
            RunRecord(
                i, c, k, bool(d), _parse(s), _parse(f) if f else None, o, e, json.loads(n), a, m
            )
            for i, c, k, d, s, f, o, e, n, a, m in rows
        ]

    # watermarks

    def watermark(self, crm: str, obj: str) -> Watermark | None:
        """The watermark of `obj` ("account", "opportunity") in `crm`, or None before any."""
        with self._transaction(write=False) as db:
            return self._watermarks(db, crm, obj).get((crm, obj))

    def set_watermark(
        self,
        crm: str,
        obj: str,
        value: datetime,
        boundary_ids: Ids | Iterable[str],
        run_started_at: datetime,
    ) -> Watermark:
        """Move the watermark to `value`, the newest modified time this run saw; return it.

        `value` is capped at `run_started_at` (a record stamped in the future must not make
        the next run skip what changes meanwhile; the boundary ids are then dropped). The
        watermark never moves back: an earlier value keeps the stored one (with a warning).
        At an equal value the boundary ids are added to the stored ones. The ids are kept
        as a part table (`boundary_layout`), not in the watermark's row: after a bulk load
        they are every Id of the org.
        """
        ids = boundary_ids if isinstance(boundary_ids, Ids) else Ids(boundary_ids)
        value, start = _utc(value), _utc(run_started_at)
        if value > start:
            logger.warning(
                "%s %s: newest modified time %s is after the run's start %s (clock skew?);"
                " watermark capped at the start",
                crm,
                obj,
                value.isoformat(),
                start.isoformat(),
            )
            value, ids = start, Ids()
        with self._transaction() as db:
            stored = self._values(db, crm, obj).get((crm, obj))
            if stored is not None:
                if stored > value:
                    logger.warning(
                        "%s %s: watermark would move back from %s to %s; kept",
                        crm,
                        obj,
                        stored.isoformat(),
                        value.isoformat(),
                    )
                    return self._watermarks(db, crm, obj)[(crm, obj)]
                if stored == value:
                    ids |= self._watermarks(db, crm, obj)[(crm, obj)].boundary_ids
            db.execute(
                "INSERT INTO watermarks (crm, object, value, boundary_ids) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (crm, object) DO UPDATE SET value = excluded.value,"
                " boundary_ids = excluded.boundary_ids",
                (crm, obj, _text(value), "[]"),
            )
            layout = boundary_layout(obj)
            self.mirror.parts.delete_all(crm, layout)
            self.mirror.parts.merge_sorted(crm, layout, [pa.table({"record_id": ids.sorted()})])
        return Watermark(value, ids)

    def watermarks(self, crm: str | None = None) -> dict[tuple[str, str], Watermark]:
        """All watermarks (of `crm`, or of all CRMs) by (crm, object)."""
        with self._transaction(write=False) as db:
            return self._watermarks(db, crm, None)

    def watermark_values(self, crm: str | None = None) -> dict[tuple[str, str], datetime]:
        """Where each watermark stands (of `crm`, or of all CRMs), by (crm, object); its
        boundary ids (after a bulk load, every Id of the org) are not read."""
        with self._transaction(write=False) as db:
            return self._values(db, crm, None)

    def _values(
        self, db: Connection, crm: str | None, obj: str | None
    ) -> dict[tuple[str, str], datetime]:
        return {key: value for key, (value, _) in self._rows(db, crm, obj).items()}

    def _rows(
        self, db: Connection, crm: str | None, obj: str | None
    ) -> dict[tuple[str, str], tuple[datetime, str]]:
        """The watermark rows: (value, boundary ids an earlier engine kept in the row)."""
        rows = db.execute(
            "SELECT crm, object, value, boundary_ids FROM watermarks"
            f" WHERE {_ANY_CRM} AND (CAST(? AS TEXT) IS NULL OR object = ?)",
            (crm, crm, obj, obj),
        ).fetchall()
        return {(str(c), str(o)): (_parse(str(value)), str(inline)) for c, o, value, inline in rows}

    def _watermarks(
        self, db: Connection, crm: str | None, obj: str | None
    ) -> dict[tuple[str, str], Watermark]:
        found = {}
        for (c, o), (value, inline) in self._rows(db, crm, obj).items():
            kept = self.mirror.parts.read(c, boundary_layout(o))
            ids = Ids(kept.column("record_id"), distinct=True)
            if inline != "[]":  # a state from before the part table: its ids in the row
                ids |= Ids(json.loads(inline))
            found[(c, o)] = Watermark(value, ids)
        return found

    # last written values

    def last_written(
        self, crm: str, record_ids: Iterable[str] | None = None
    ) -> dict[tuple[str, str], Written]:
        """What was last written, by (record id, CRM field), for `record_ids` (None: all).

        Values come back in `sync.mirror.to_jsonable` form.
        """
        keys = None if record_ids is None else unique_ids(record_ids)
        stored = self.mirror.parts.read(crm, LAST_WRITTEN, keys)
        sql = "SELECT record_id, field, value, written_at FROM last_written WHERE crm = ?"
        with self._transaction(write=False) as db:
            # (rows not yet folded into the parts: mostly none; 100,000 ids asked of an
            # empty table are a hundred queries)
            any_row = db.execute("SELECT 1 FROM last_written WHERE crm = ? LIMIT 1", (crm,))
            rows = select_in(db, sql, (crm,), "record_id", keys) if any_row.fetchone() else []
        stamps: dict[str, datetime] = {}
        values: dict[str, Any] = {}  # tiers, segments, routes repeat: decode each once

        def written(text: str, at: str) -> Written:
            if text not in values:
                values[text] = json.loads(text)
            return Written(values[text], stamps.get(at) or stamps.setdefault(at, _parse(at)))

        found = {
            (record_id, field): written(value, at)
            for record_id, field, value, at in zip(
                *(stored.column(name).to_pylist() for name in ("record_id", "field", "value")),
                stored.column("written_at").to_pylist(),
                strict=True,
            )
        }
        found.update(
            ((record_id, field), written(value, at)) for record_id, field, value, at in rows
        )  # written this run, not yet folded into the parts
        return found

    def compact(self) -> None:
        """Fold the last-written values and scores recorded row by row (per written batch)
        into the compressed parts, in one transaction, once they are worth it: 5% or more of
        what the parts hold (a fold rewrites every part a row falls in, which for rows spread
        over the org is every part). Reads see both meanwhile. `close()` does it."""
        with self._transaction() as db:
            for table, layout in (("last_written", LAST_WRITTEN), ("scores", SCORES)):
                counted = db.execute(f"SELECT crm, COUNT(*) FROM {table} GROUP BY crm")
                for crm, count in counted.fetchall():
                    stored = self.mirror.parts.row_count_of(layout.name, str(crm))
                    if count * _FOLD_SHARE >= stored:
                        self._fold(db, str(crm), table)

    def _fold(self, db: Connection, crm: str, only: str | None = None) -> None:
        """Move `crm`'s rows of `last_written` and `scores` (or of `only`) into the parts."""
        if only in (None, "last_written"):
            rows = db.execute(
                "SELECT record_id, field, value, run_id, written_at FROM last_written"
                " WHERE crm = ?",
                (crm,),
            ).fetchall()
            if rows:
                names = [field.name for field in LAST_WRITTEN.schema]
                columns = list(zip(*rows, strict=True))
                table = pa.table(dict(zip(names, columns, strict=True)), schema=LAST_WRITTEN.schema)
                self.mirror.parts.merge(crm, LAST_WRITTEN, table)
                db.execute("DELETE FROM last_written WHERE crm = ?", (crm,))
        if only in (None, "scores"):
            rows = db.execute(
                f"SELECT {', '.join(_SCORE_COLUMNS)} FROM scores WHERE crm = ?", (crm,)
            ).fetchall()
            if rows:
                columns = list(zip(*rows, strict=True))
                named = dict(zip(_SCORE_COLUMNS, columns, strict=True))
                self.mirror.parts.merge(crm, SCORES, pa.table(named, schema=SCORES.schema))
                db.execute("DELETE FROM scores WHERE crm = ?", (crm,))

    def record_written(
        self,
        crm: str,
        run_id: int,
        items: Iterable[tuple[str, str, Any]] | pd.DataFrame,
        written_at: datetime,
    ) -> None:
        """Remember `(record id, CRM field, value)` items as written by run `run_id`, or a
        frame of `record_id`, `field` and `value` (a confirmed backfill's five million:
        no tuple per field)."""
        if not isinstance(items, pd.DataFrame):
            listed = list(items)
            if len(listed) < _STRAIGHT_TO_PARTS:
                with self._transaction() as db:
                    _put_written(db, crm, run_id, listed, written_at)
                return
            items = pd.DataFrame(listed, columns=["record_id", "field", "value"], dtype=object)
        if len(items) >= _STRAIGHT_TO_PARTS:
            self._written_to_parts(crm, run_id, items, written_at)
            return
        rows = zip(*(items[name].tolist() for name in ("record_id", "field", "value")), strict=True)
        with self._transaction() as db:
            _put_written(db, crm, run_id, rows, written_at)

    def _written_to_parts(
        self, crm: str, run_id: int, items: pd.DataFrame, written_at: datetime
    ) -> None:
        fields = _texts_of(items["field"])
        table = pa.table(
            {
                "record_id": _texts_of(items["record_id"]),
                "field": fields,
                "value": _value_texts(items["value"].to_numpy(dtype=object), fields),
                "run_id": pa.array(np.full(len(items), run_id, dtype=np.int64)),
                "written_at": pa.repeat(pa.scalar(_text(written_at), pa.string()), len(items)),
            }
        ).cast(LAST_WRITTEN.schema)
        with self._transaction() as db:
            self._fold(db, crm)  # rows recorded earlier are older than these
            self.mirror.parts.merge(crm, LAST_WRITTEN, table)

    def record_batch(
        self,
        crm: str,
        run_id: int,
        written: Iterable[tuple[str, str, Any]],
        failures: Iterable[Failure],
        succeeded: Iterable[str],
        at: datetime,
        scores: Iterable[ScoreRecord] = (),
    ) -> None:
        """One written batch, in one transaction: values written, failures, the records
        that succeeded (their earlier failures cleared) and the scores now in the CRM."""
        with self._transaction() as db:
            _put_written(db, crm, run_id, written, at)
            _put_failures(db, crm, run_id, failures, at)
            _delete_failures(db, crm, succeeded)
            _put_scores(db, crm, run_id, scores, at)

    # score tracking

    def record_scores(
        self, crm: str, run_id: int, scores: Iterable[ScoreRecord] | pd.DataFrame, at: datetime
    ) -> None:
        """Remember scores now in the CRM under their criteria version: `ScoreRecord`s, or
        a frame of their columns (a million accounts: no object per account).

        One row per account per criteria fingerprint: the first score given under a
        version is kept (later rescores under the same version do not replace it), so a
        prediction is judged by what was known when it was made, and the table stays
        bounded by accounts x versions.
        """
        if not isinstance(scores, pd.DataFrame):
            listed = list(scores)
            if len(listed) < _STRAIGHT_TO_PARTS:
                with self._transaction() as db:
                    _put_scores(db, crm, run_id, listed, at)
                return
            scores = pd.DataFrame(
                [[getattr(s, name) for name in SCORE_RECORD_COLUMNS] for s in listed],
                columns=list(SCORE_RECORD_COLUMNS),
                dtype=object,
            )
        if len(scores) >= _STRAIGHT_TO_PARTS:
            self._scores_to_parts(crm, run_id, scores, at)
            return
        rows = scores[list(SCORE_RECORD_COLUMNS)].astype(object)
        rows = rows.where(rows.notna(), None)
        records = [
            ScoreRecord(str(account), score, tier, str(version), str(fingerprint))
            for account, score, tier, version, fingerprint in rows.itertuples(index=False)
        ]
        with self._transaction() as db:
            _put_scores(db, crm, run_id, records, at)

    def _scores_to_parts(self, crm: str, run_id: int, scores: pd.DataFrame, at: datetime) -> None:
        stamp = pa.scalar(_text(at), pa.string())
        numbers = pd.to_numeric(scores["score"], errors="coerce").to_numpy(dtype=float)
        table = pa.table(
            {
                "account_id": _texts_of(scores["account_id"]),
                "fingerprint": _texts_of(scores["fingerprint"]),
                "version": _texts_of(scores["version"]),
                "score": pa.array(numbers, pa.float64(), mask=np.isnan(numbers)),
                "tier": pa.array(scores["tier"].to_numpy(dtype=object), pa.string()),
                "run_id": pa.array(np.full(len(scores), run_id, dtype=np.int64)),
                "written_at": pa.repeat(stamp, len(scores)),
            },
            schema=SCORES.schema,
        )
        with self._transaction() as db:
            self._fold(db, crm)  # rows recorded earlier are older than these
            self.mirror.parts.merge(crm, SCORES, table)

    def scores(self, crm: str) -> pd.DataFrame:
        """Every remembered score of `crm`: account_id, fingerprint, version, score, tier,
        run_id and written_at (tz-aware UTC)."""
        with self._transaction(write=False) as db:
            stored = self.mirror.parts.read(crm, SCORES)
            rows = db.execute(
                f"SELECT {', '.join(_SCORE_COLUMNS)} FROM scores WHERE crm = ?", (crm,)
            ).fetchall()
        frame = stored.to_pandas() if stored.num_rows else pd.DataFrame(columns=_SCORE_COLUMNS)
        if rows:  # recorded this run, not yet folded: a score kept in the parts comes first
            recent = pd.DataFrame(rows, columns=_SCORE_COLUMNS)
            frame = pd.concat([frame, recent], ignore_index=True) if len(frame) else recent
            frame = frame.drop_duplicates(["account_id", "fingerprint"], keep="first")
        frame = frame[_SCORE_COLUMNS].reset_index(drop=True)
        frame["score"] = frame["score"].astype(float)
        frame["run_id"] = frame["run_id"].astype("int64")
        frame["written_at"] = pd.to_datetime(frame["written_at"], utc=True, format="ISO8601")
        return frame

    # failed records

    def record_failures(
        self, crm: str, run_id: int, failures: Iterable[Failure], at: datetime
    ) -> None:
        """Keep failed records, with the CRM's answer, to retry them next run.

        A new one starts at 1 attempt; a known one gets one more and keeps its
        `first_failed_at`. A record listed twice in one call counts once (its last entry wins).
        """
        with self._transaction() as db:
            _put_failures(db, crm, run_id, failures, at)

    def clear_failures(self, crm: str, record_ids: Iterable[str]) -> None:
        """Forget the failures of `record_ids` (written since, or no longer to be written)."""
        with self._transaction() as db:
            _delete_failures(db, crm, record_ids)

    def failures(self, crm: str | None = None) -> list[FailureRecord]:
        """Failed records (of `crm`, or of all CRMs), ordered by record id."""
        rows = self._db.execute(
            "SELECT record_id, code, message, transient, field_values, attempts, first_failed_at,"
            f" last_failed_at FROM failures WHERE {_ANY_CRM} ORDER BY record_id, crm",
            (crm, crm),
        )
        return [
            FailureRecord(r, c, m, bool(t), json.loads(v), a, _parse(first), _parse(last))
            for r, c, m, t, v, a, first, last in rows
        ]

    def forget_accounts(self, crm: str, record_ids: Iterable[str]) -> None:
        """Drop every trace of deleted accounts: last-written values, failures, mirror rows,
        remembered scores."""
        ids = unique_ids(record_ids)
        keys = [(crm, record_id) for record_id in ids]
        with self._transaction() as db:
            db.executemany("DELETE FROM last_written WHERE crm = ? AND record_id = ?", keys)
            db.executemany("DELETE FROM scores WHERE crm = ? AND account_id = ?", keys)
            db.executemany("DELETE FROM failures WHERE crm = ? AND record_id = ?", keys)
            for layout in (LAST_WRITTEN, SCORES, PENDING, records_layout(_ACCOUNT)):
                self.mirror.parts.merge(crm, layout, drop=ids)

    # handed-over changes

    def pending(self, crm: str, between: KeyRange | None = None) -> PendingChanges:
        """Changes handed over and not yet seen in the CRM, by (record id, CRM field);
        its `frame` holds them as columns, ordered by (record id, field). `between`: only
        the records whose id is in that range."""
        table = self.mirror.parts.read(crm, PENDING, between=between)
        if not table.num_rows:
            return PendingChanges()
        frame = pd.DataFrame(
            {
                "record_id": _decoded(table.column("record_id"), str),  # a str per id,
                "field": _decoded(table.column("field"), str),  # not one per row
                "value": _decoded(table.column("value"), json.loads),
                "since": _decoded(table.column("since"), _parse),
            },
            dtype=object,
        )
        frame.insert(3, "run_id", table.column("run_id").to_numpy().astype(np.int64))
        return PendingChanges(frame)

    def put_pending(
        self, crm: str, items: Iterable[tuple[str, str, Pending]] | pd.DataFrame
    ) -> None:
        """Add or replace pending changes: (record id, CRM field, what and since when), or
        a frame of `PENDING_COLUMNS` (of rows with the same key, the last one counts)."""
        self.update_pending(crm, items, ())

    def drop_pending(self, crm: str, keys: Iterable[tuple[str, str]] | pd.DataFrame | None) -> None:
        """Forget pending changes (seen in the CRM, replaced, or no longer wanted): the
        (record id, CRM field) keys, a frame with `record_id` and `field` columns, or
        None for every pending change of `crm`."""
        self.update_pending(crm, (), keys)

    def update_pending(
        self,
        crm: str,
        put: Iterable[tuple[str, str, Pending]] | pd.DataFrame | pa.Table,
        drop: Iterable[tuple[str, str]] | pd.DataFrame | None,
    ) -> None:
        """`drop_pending(drop)` then `put_pending(put)`, in one transaction that rewrites
        each part of the queue it touches once. `put` may also be `pending_table`'s
        answer (made early, so a million rows' frame can be freed first)."""
        if isinstance(put, pa.Table):
            rows = put if put.num_rows else None
        else:
            frame = put if isinstance(put, pd.DataFrame) else _pending_frame(put)
            rows = pending_table(frame) if len(frame) else None
        parts = self.mirror.parts
        with self._transaction():
            if drop is None:
                parts.delete_all(crm, PENDING)
                parts.merge(crm, PENDING, rows)
                return
            if not isinstance(drop, pd.DataFrame):
                drop = pd.DataFrame(list(drop), columns=["record_id", "field"], dtype=object)
            keys = pa.table(
                {"record_id": _texts_of(drop["record_id"]), "field": _texts_of(drop["field"])}
            )
            parts.merge(crm, PENDING, rows, keys if keys.num_rows else ())

    def pending_summary(self, crm: str | None = None) -> list[dict[str, Any]]:
        """Per CRM and run: records and fields still pending, and the oldest `since`."""
        crms = [crm] if crm is not None else self.mirror.parts.crms_of(PENDING.name)
        found = []
        for name in sorted(crms):
            table = self.mirror.parts.read(name, PENDING, columns=["record_id", "run_id", "since"])
            if not table.num_rows:
                continue
            since = table.column("since").cast(pa.string())
            frame = table.set_column(2, "since", since).to_pandas()
            grouped = frame.groupby("run_id", sort=True).agg(
                records=("record_id", "nunique"),
                fields=("record_id", "size"),
                since=("since", "min"),
            )
            found += [
                {
                    "crm": name,
                    "run_id": int(run_id),
                    "records": int(records),
                    "fields": int(fields),
                    "since": _parse(since),
                }
                for run_id, records, fields, since in grouped.itertuples(name=None)
            ]
        return found

    def counts(self) -> dict[str, int]:
        """Rows per table (what a reset would lose); the records mirror, last-written
        values and scores counted in their parts too."""
        found = {
            table: int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("runs", "watermarks", "last_written", "failures", "records", "pending")
        }
        found["pending"] += self.mirror.parts.row_count_of(PENDING.name)
        found["records"] += self.mirror.parts.row_count_of("records.")
        found["last_written"] += self.mirror.parts.row_count_of(LAST_WRITTEN.name)
        return found

    # key/value

    def get_meta(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store `value` under `key` (not "schema_version", which the store keeps itself)."""
        if key == _SCHEMA_KEY:
            raise ValueError(f"{key!r} is reserved for the state schema")
        with self._transaction() as db:
            _put_meta(db, key, value)


def state_location(directory: Path, url: str | None = None) -> str:
    """Where the state of `directory` is, for messages: the directory, or the PostgreSQL
    URL (password redacted) and schema."""
    target = _pg_target(url)
    return str(directory) if target is None else f"{target.shown} (schema {target.schema})"


def _pg_target(url: str | None) -> PgTarget | None:
    """The PostgreSQL state `url` (or `ICP_STATE_URL`) names; None: SQLite."""
    url = url if url is not None else state_url()
    return parse_url(url) if url else None


def _check_file(path: Path) -> None:
    """What can be told before SQLite opens the file: kind, size, header, permissions."""
    try:
        info = path.stat()
    except OSError as exc:
        raise StateError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise StateError(path, "is a directory, not a state file")
    if not stat.S_ISREG(info.st_mode):
        raise StateError(path, "is not a regular file")
    if info.st_size == 0:
        raise StateError(
            path,
            "is empty (0 bytes). A state file is never empty: it was damaged (a full disk, "
            "a failed copy), so it is not started afresh",
        )
    owner = f" (owned by uid {info.st_uid}, this process runs as uid {os.getuid()})"
    owner = "" if info.st_uid == os.getuid() else owner
    if not os.access(path, os.R_OK):
        raise StateError(
            path, f"cannot be read: permission denied{owner}", "Run as its owner or fix its mode"
        )
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise StateError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if header != _SQLITE_HEADER:
        raise StateError(
            path,
            f"is not an ICP state file (it does not start as SQLite does; {info.st_size} bytes): "
            "damaged or foreign",
        )
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
        where = path if not os.access(path, os.W_OK) else path.parent
        raise StateError(
            path,
            f"{where} is read-only{owner}: a run must record what it writes",
            "Run as its owner, make it writable, or use another --state",
        )


def _clean_marker(path: Path) -> Path:
    return path.with_name(f"{path.name}.clean")


def _identity(path: Path) -> str:
    info = path.stat()
    return f"{info.st_ino} {info.st_size} {info.st_mtime_ns} {info.st_ctime_ns}"


_CHECKED_OPEN: set[Path] = set()
"""State files a `StateStore` of this process has open, checked (`_vouched`)."""


def _vouched(path: Path) -> bool:
    """Whether the file's pages are known good: checked by an open store, or clean-closed."""
    return path in _CHECKED_OPEN or _closed_cleanly(path)


def _closed_cleanly(path: Path) -> bool:
    """Whether the file is exactly as a clean close left it (then its pages need no check)."""
    try:
        if path.with_name(f"{path.name}-wal").exists():  # open elsewhere, or a crash
            return False
        return _clean_marker(path).read_text() == _identity(path)
    except (OSError, ValueError):
        return False


def _mark_clean(path: Path) -> None:
    """After a clean close: record the file's identity, if no other connection keeps a WAL."""
    marker = _clean_marker(path)
    try:
        if path.with_name(f"{path.name}-wal").exists():  # another connection is still open
            return
        temporary = marker.with_name(f".{marker.name}.{os.getpid()}")
        temporary.write_text(_identity(path))
        os.replace(temporary, marker)
    except OSError:  # a read-only directory: the next open checks every page
        pass


def _state_error(path: Path, exc: sqlite3.Error) -> StateError:
    text = str(exc)
    if "full" in text:
        return StateError(
            path,
            f"could not be written: {text}",
            "Free disk space and run again; nothing the state does not record was lost",
        )
    if "readonly" in text or "read-only" in text:
        return StateError(path, f"could not be written: {text}", "Make it writable")
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return StateError(path, text, "Another process holds the database; try again")
    return StateError(path, f"is damaged or not an ICP state file ({text})")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Texts:
    """Values as JSON text, each distinct one encoded once (tiers, segments, routes repeat)."""

    def __init__(self) -> None:
        self._texts: dict[tuple[type, Any], str] = {}

    def __call__(self, value: Any) -> str:
        try:
            key = (type(value), value)  # 1, 1.0 and True: equal keys, not one text
            found = self._texts.get(key)
            if found is None:
                found = self._texts[key] = dumps(value)
            return found
        except TypeError:  # unhashable
            return dumps(value)


def _pending_frame(items: Iterable[tuple[str, str, Pending]]) -> pd.DataFrame:
    """(record id, CRM field, `Pending`) items as a frame of `PENDING_COLUMNS`."""
    listed = list(items)
    return pd.DataFrame(
        {
            "record_id": [str(rid) for rid, _, _ in listed],
            "field": [str(field) for _, field, _ in listed],
            "value": [p.value for _, _, p in listed],
            "run_id": [p.run_id for _, _, p in listed],
            "since": [p.since for _, _, p in listed],
        },
        dtype=object,
    )


def pending_table(frame: pd.DataFrame) -> pa.Table:
    """A frame of `PENDING_COLUMNS` as rows of the `PENDING` parts (values as JSON text).

    Hashing is Arrow's, a field at a time: a backfill's queue is five million rows whose
    values mix numbers and text across fields (a Python text per row, or pandas' hash
    tables sized to the rows, cost about 600 MB at a million accounts)."""
    fields = _texts_of(frame["field"])
    since = _stamps(frame["since"].to_numpy(dtype=object)).dictionary_encode()
    stamps = [_text(moment) for moment in since.dictionary.to_pylist()]
    return pa.table(
        {
            "record_id": _texts_of(frame["record_id"]),
            "field": fields,
            "value": _value_texts(frame["value"].to_numpy(dtype=object), fields),
            "run_id": pa.array(frame["run_id"].to_numpy(dtype=np.int64), pa.int64()),
            "since": pa.DictionaryArray.from_arrays(since.indices, pa.array(stamps, pa.string())),
        },
        schema=PENDING.schema,
    )


def _stamps(moments: np.ndarray) -> pa.Array:
    """Aware datetimes as Arrow UTC timestamps (a naive one taken as UTC)."""
    try:
        return pa.array(moments, pa.timestamp("us", tz="UTC"))
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([_utc(moment) for moment in moments], pa.timestamp("us", tz="UTC"))


def _texts_of(column: pd.Series) -> pa.Array:
    """A column of ids or names as Arrow text (converted straight from the array when
    its values are text already, as they are)."""
    try:
        return pa.array(column.to_numpy(dtype=object), pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array(column.astype(str).to_numpy(dtype=object), pa.string())


_ONE_KIND = frozenset({"string", "floating", "integer", "boolean", "empty"})
"""`pd.api.types.infer_dtype` results whose equal values have one JSON text each (1, 1.0
and True are equal keys to `pd.factorize`, but not one text)."""


def _value_texts(values: np.ndarray, fields: pa.Array) -> pa.DictionaryArray:
    """Values as JSON text, each distinct one of a field encoded once (tiers, segments,
    routes repeat). A field's values are of one kind (numbers, or text); a field whose
    kinds mix is encoded value by value."""
    codes = np.zeros(len(values), dtype=np.int32)
    texts: list[str] = []
    by_field = pc.dictionary_encode(fields)
    field_codes = np.asarray(by_field.indices.fill_null(-1).to_numpy(zero_copy_only=False))
    for code in range(-1, len(by_field.dictionary)):
        rows = np.flatnonzero(field_codes == code)
        if not len(rows):
            continue
        mine = values[rows]
        if pd.api.types.infer_dtype(mine, skipna=True) in _ONE_KIND:
            encoded = pc.dictionary_encode(pa.array(mine, from_pandas=True), null_encoding="encode")
            distinct = [dumps(value) for value in encoded.dictionary.to_pylist()]
        else:
            encoded = pa.array(list(map(_Texts(), mine.tolist())), pa.string()).dictionary_encode()
            distinct = encoded.dictionary.to_pylist()
        codes[rows] = np.asarray(encoded.indices.to_numpy(zero_copy_only=False)) + len(texts)
        texts += distinct
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(texts, pa.string()))


def _decoded(column: pa.ChunkedArray, decode: Callable[[str], Any]) -> np.ndarray:
    """A text column's values decoded, each distinct text once."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    distinct = encoded.dictionary.to_pylist()
    values = np.empty(len(distinct), dtype=object)
    values[:] = [decode(text) for text in distinct]
    return values[encoded.indices.to_numpy(zero_copy_only=False)]


def _put_written(
    db: Connection,
    crm: str,
    run_id: int,
    items: Iterable[tuple[str, str, Any]],
    written_at: datetime,
) -> None:
    at = _text(written_at)
    text = _Texts()
    db.executemany(
        "INSERT INTO last_written (crm, record_id, field, value, run_id, written_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (crm, record_id, field) DO UPDATE SET"
        " value = excluded.value, run_id = excluded.run_id,"
        " written_at = excluded.written_at",
        ((crm, str(rid), str(field), text(value), run_id, at) for rid, field, value in items),
    )


def _put_scores(
    db: Connection, crm: str, run_id: int, scores: Iterable[ScoreRecord], at: datetime
) -> None:
    stamp = _text(at)
    db.executemany(
        "INSERT INTO scores (crm, account_id, fingerprint, version, score, tier, run_id,"
        " written_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (crm, account_id, fingerprint) DO NOTHING",
        [
            (crm, str(s.account_id), s.fingerprint, s.version, s.score, s.tier, run_id, stamp)
            for s in scores
        ],
    )


def _put_failures(
    db: Connection, crm: str, run_id: int, failures: Iterable[Failure], at: datetime
) -> None:
    stamp = _text(at)
    latest = {failure.record_id: failure for failure in failures}
    db.executemany(
        "INSERT INTO failures (crm, record_id, run_id, code, message, transient,"
        " field_values, attempts, first_failed_at, last_failed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (crm, record_id) DO UPDATE SET"
        " run_id = excluded.run_id, code = excluded.code, message = excluded.message,"
        " transient = excluded.transient, field_values = excluded.field_values,"
        " attempts = failures.attempts + 1, last_failed_at = excluded.last_failed_at",
        [
            (
                crm,
                str(f.record_id),
                run_id,
                f.code,
                f.message,
                int(f.transient),
                dumps(f.values),
                stamp,
                stamp,
            )
            for f in latest.values()
        ],
    )


def _delete_failures(db: Connection, crm: str, record_ids: Iterable[str]) -> None:
    db.executemany(
        "DELETE FROM failures WHERE crm = ? AND record_id = ?",
        [(crm, record_id) for record_id in unique_ids(record_ids)],
    )


def _put_meta(db: Connection, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET"
        " value = excluded.value",
        (key, value),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} is naive: state timestamps must be timezone-aware")
    if isinstance(moment, pd.Timestamp):
        moment = moment.to_pydatetime(warn=False)  # nanoseconds are dropped
    return moment.astimezone(UTC)


def _text(moment: datetime) -> str:
    return _utc(moment).isoformat(timespec="microseconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
